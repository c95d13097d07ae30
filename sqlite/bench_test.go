package sqlite_test

import (
	"context"
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
