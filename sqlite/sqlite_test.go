package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestMigrationsRecorded: a database records each migration by version and
// file name, opening it again applies nothing, and a database whose record
// names another file for a version (another program's schema) is refused.
func TestMigrationsRecorded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err = sqlite.Open(ctx, path); err != nil {
		t.Fatalf("second open: %v", err)
	}
	st.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var got []string
	rows, err := raw.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(v, " ", name))
	}
	rows.Close()
	want := "1 0001_ledger.sql|2 0002_platform.sql|3 0003_identity.sql|5 0005_gateway.sql|6 0006_channels.sql"
	if g := strings.Join(got, "|"); !strings.HasPrefix(g, want) {
		t.Errorf("recorded %s, want %s first", g, want)
	}
	if _, err := raw.Exec(`UPDATE schema_migrations SET name = '0003_other.sql' WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	if st, err := sqlite.Open(ctx, path); err == nil || !strings.Contains(err.Error(), "0003_other.sql") {
		if err == nil {
			st.Close()
		}
		t.Fatalf("open with another program's migration 3: %v", err)
	}
}
