package sqlite_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"zhifu/ledger"
	"zhifu/ledgerload"
	"zhifu/sqlite"
)

// BenchmarkLedger: go test -run '^$' -bench Ledger -benchtime 100000x ./sqlite
func BenchmarkLedger(b *testing.B) {
	ledgerload.Benchmark(b, func(b *testing.B) ledger.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	})
}

// BenchmarkWriteTxStatement is the fixed cost of one statement inside a
// write transaction, as an op's Prepare pays it: a one-row read by key,
// kept prepared. go test -run '^$' -bench WriteTxStatement ./sqlite
func BenchmarkWriteTxStatement(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	accounts := make([]ledger.Account, 1000)
	for i := range accounts {
		accounts[i] = ledger.Account{ID: int64(i + 1), Ledger: 156, Code: 1}
	}
	if err := db.Update(ctx, func(tx ledger.Tx) error { return tx.InsertAccounts(ctx, accounts) }); err != nil {
		b.Fatal(err)
	}
	const read = `SELECT debits_posted FROM accounts WHERE id = ?`
	for range 2 { // the first transaction only notes the statement; it is kept after
		b.ResetTimer()
		err := db.Update(ctx, func(tx ledger.Tx) error {
			var v int64
			for i := range b.N {
				if err := tx.QueryRow(ctx, read, int64(i%len(accounts)+1)).Scan(&v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEntries reads the newest 20 entries of random wallets of a
// prepared history (zhifu bench prepare; ZHIFU_BENCH_HISTORY_SQLITE names
// the file, which is opened, and so migrated, in place: give it a copy).
// A wallet of a history of 10 M transfers among 1 M wallets has about 20
// entries spread over all of it, the most runs a read can meet.
//
//	ZHIFU_BENCH_HISTORY_SQLITE=/path/copy.db go test -run '^$' -bench Entries ./sqlite
func BenchmarkEntries(b *testing.B) {
	path := os.Getenv("ZHIFU_BENCH_HISTORY_SQLITE")
	if path == "" {
		b.Skip("ZHIFU_BENCH_HISTORY_SQLITE is not set")
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var wallets int64
	if err := db.Reader().QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id > ?`, ledgerload.HistoryFirstAccountID).Scan(&wallets); err != nil || wallets == 0 {
		b.Fatalf("no prepared wallets: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	entries := 0
	b.ResetTimer()
	for range b.N {
		es, err := db.Entries(ctx, ledgerload.HistoryFirstAccountID+1+r.Int64N(wallets), 0, 20)
		if err != nil {
			b.Fatal(err)
		}
		entries += len(es)
	}
	b.ReportMetric(float64(entries)/float64(b.N), "entries/read")
}
