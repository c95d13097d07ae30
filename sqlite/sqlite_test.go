package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"zhifu/ledger"
	"zhifu/sqlite"
	"zhifu/storetest"
)

var backend = storetest.Backend{
	NewDatabase: func(t *testing.T) string { return filepath.Join(t.TempDir(), "ledger.db") },
	Open: func(t *testing.T, path string) ledger.Store {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
}

func TestStore(t *testing.T) { storetest.Run(t, backend) }

func TestMain(m *testing.M) {
	if os.Getenv(storetest.CrashChildEnv) != "" {
		storetest.RunCrashChild(func(path string) (ledger.Store, error) {
			return sqlite.Open(context.Background(), path)
		})
		return
	}
	os.Exit(m.Run())
}

func TestCrash(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 3
	}
	storetest.Crash(t, backend, kills)
}
