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

// A transfer inserted twice, which the ledger's rules never let through,
// rolls the whole transaction back (INSERT OR ROLLBACK keeps no statement
// journal), and the writer goes on working afterwards.
func TestDuplicateInsertRollsBack(t *testing.T) {
	ctx := context.Background()
	st := backend.Open(t, backend.NewDatabase(t))
	if _, err := ledger.CreateAccounts(ctx, st, []ledger.Account{{ID: 1, Ledger: 156, Code: 10},
		{ID: 2, Ledger: 156, Code: 1}}); err != nil {
		t.Fatal(err)
	}
	t1 := ledger.Transfer{ID: "t1", DebitAccountID: 1, CreditAccountID: 2, Amount: 5, Ledger: 156, Code: 1}
	if _, err := ledger.Commit(ctx, st, [][]ledger.Transfer{{t1}}, 1); err != nil {
		t.Fatal(err)
	}
	err := st.Update(ctx, func(tx ledger.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE dup_probe (x INTEGER)`); err != nil {
			return err
		}
		t2 := t1
		t2.ID = "t2"
		return tx.InsertTransfers(ctx, []ledger.Transfer{t2, t1})
	})
	if err == nil {
		t.Fatal("a duplicate transfer id was inserted")
	}
	var n int
	if err := st.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'dup_probe'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the failed transaction's table: %d (%v), want none", n, err)
	}
	if got, err := st.LookupTransfers(ctx, []string{"t2"}); err != nil || len(got) != 0 {
		t.Fatalf("the failed transaction's transfer: %v (%v), want none", got, err)
	}
	t3 := t1
	t3.ID = "t3"
	res, err := ledger.Commit(ctx, st, [][]ledger.Transfer{{t3}}, 2)
	if err != nil || res[0][0] != ledger.TransferOK {
		t.Fatalf("commit after the rollback: %v %v", res, err)
	}
}
