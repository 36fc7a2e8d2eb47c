// Package config reads and checks the edge-agent configuration file
// (TOML, the keys listed in docs/design.md#config-file, [store] included).
//
// What it promises: a *Config returned without error is complete and
// consistent — defaults applied, {device_id} substituted, relative paths made
// absolute against the file's directory, and (with Load) every referenced
// file readable, every secret read. Everything that is wrong is reported at
// once as *Errors, one Problem per line naming the file, line, key and a fix,
// so an operator can repair a config in one pass. No message ever carries a
// secret: passwords, password file contents and the bootstrap login URL
// (which holds the app secret) are never quoted.
//
// The package does no logging: risky-but-allowed settings are returned by
// Config.Warnings for the caller to log.
package config
