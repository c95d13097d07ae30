package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"zhifu/ledger"
	"zhifu/sqlite"
	"zhifu/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewDatabase: func(t *testing.T) string { return filepath.Join(t.TempDir(), "ledger.db") },
		Open: func(t *testing.T, path string) ledger.Store {
			db, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	})
}
