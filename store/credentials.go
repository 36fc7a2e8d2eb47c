package store

import (
	"fmt"
)

// Cached account-service credentials live in the meta bucket; the file is
// mode 0600, which is what keeps them from other users.
var keyCredentials = []byte("bootstrap.credentials")

// Credentials returns the cached account-service credentials, nil if none.
func (db *DB) Credentials() ([]byte, error) {
	var out []byte
	err := db.view(func(t *txn) error {
		if v := t.meta.Get(keyCredentials); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return out, nil
}

// SetCredentials caches account-service credentials durably; nil removes them.
func (db *DB) SetCredentials(b []byte) error {
	err := db.update(func(t *txn) error {
		if b == nil {
			return t.meta.Delete(keyCredentials)
		}
		return t.meta.Put(keyCredentials, b)
	})
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}
