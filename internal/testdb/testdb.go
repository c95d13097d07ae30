// Package testdb gives tests a fresh database of each store: an SQLite
// file in the test's temporary folder, and a new PostgreSQL database on
// ZHIFU_TEST_POSTGRES (else the local server), dropped when the test ends.
// Tests fail, never skip, when PostgreSQL cannot be reached.
package testdb

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"zhifu/ledger"
	"zhifu/postgres"
	"zhifu/sqlite"
)

// Each runs f as a subtest on SQLite and on PostgreSQL. open opens the
// subtest's one database; called again, it opens another connection to the
// same database (a second process's view), closed when the test ends.
func Each(t *testing.T, f func(t *testing.T, open func() ledger.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, PostgreSQL(t)) })
}

// SQLite returns an opener of one fresh SQLite database.
func SQLite(t testing.TB) func() ledger.Store {
	path := filepath.Join(t.TempDir(), "zhifu.db")
	return func() ledger.Store {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}

// PostgreSQL returns an opener of one fresh PostgreSQL database.
func PostgreSQL(t testing.TB) func() ledger.Store {
	base := os.Getenv("ZHIFU_TEST_POSTGRES")
	if base == "" {
		base = postgres.DefaultTestURL
	}
	url, drop, err := postgres.CreateTestDatabase(context.Background(), base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s is required (set ZHIFU_TEST_POSTGRES): %v", base, err)
	}
	t.Cleanup(drop)
	return func() ledger.Store {
		db, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}
