package trade

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"zhifu/ledger"
	"zhifu/postgres"
	"zhifu/sqlite"
)

// testStores opens, on each store, a new database and two handles on it
// (two processes sharing it).
var testStores = map[string]func(t *testing.T) (ledger.Store, ledger.Store){
	"sqlite": func(t *testing.T) (ledger.Store, ledger.Store) {
		path := filepath.Join(t.TempDir(), "t.db")
		a, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	},
	"postgres": func(t *testing.T) (ledger.Store, ledger.Store) {
		base := os.Getenv("ZHIFU_TEST_POSTGRES")
		if base == "" {
			base = postgres.DefaultTestURL
		}
		url, drop, err := postgres.CreateTestDatabase(context.Background(), base)
		if err != nil {
			t.Fatalf("PostgreSQL is required (set ZHIFU_TEST_POSTGRES): %v", err)
		}
		t.Cleanup(drop)
		a, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	},
}
