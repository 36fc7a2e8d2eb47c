package led

// Sync lets the external tests step a fake clock deterministically.
func (p *Panel) Sync() { p.sync() }
