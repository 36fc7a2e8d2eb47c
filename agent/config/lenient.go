package config

import toml "github.com/pelletier/go-toml/v2"

// Lenient is what can be read from a configuration file that Load may
// refuse: where the control socket is and which LEDs there are. The CLI
// verbs need no more (and must work for an operator who may read the config
// but not the secret files it points at); `run` needs no more to show a
// refused file's config state on the status LED and to answer on the
// control socket meanwhile. Each key is taken only when it holds a value of
// the right type; nothing else in the file is checked.
type Lenient struct {
	// DataDir is data_dir, made absolute against the file's directory as
	// Load does; DefaultDataDir when it is absent, empty or not a string.
	DataDir  string
	DeviceID string // "" when absent
	Backend  string // BackendSim when hw.backend says so, else BackendPeriph
	LEDs     LEDs   // the [leds] keys that are strings (active_low a bool)
}

// ParseLenient reads data (the file at path, which may be "") leniently. It
// fails only when data is not TOML at all.
func ParseLenient(data []byte, path string) (*Lenient, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	str := func(table, key string) string {
		m := doc
		if table != "" {
			m, _ = doc[table].(map[string]any)
		}
		s, _ := m[key].(string)
		return s
	}
	l := &Lenient{
		DataDir:  newLoader(nil, path).resolve(str("", "data_dir")),
		DeviceID: str("", "device_id"),
		Backend:  BackendPeriph,
		LEDs:     LEDs{Status: str("leds", "status"), Activity: str("leds", "activity"), Fault: str("leds", "fault")},
	}
	if l.DataDir == "" {
		l.DataDir = DefaultDataDir
	}
	if str("hw", "backend") == BackendSim {
		l.Backend = BackendSim
	}
	if leds, ok := doc["leds"].(map[string]any); ok {
		l.LEDs.ActiveLow, _ = leds["active_low"].(bool)
	}
	return l, nil
}
