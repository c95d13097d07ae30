package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"zhifu/ledger"
	"zhifu/ledgerload"
	"zhifu/sqlite"
)

// BenchmarkLedger measures durable transfers per second through the batcher
// at several concurrencies. b.N is the number of transfers.
func BenchmarkLedger(b *testing.B) {
	for _, c := range []struct{ workers, perCall int }{{1, 1}, {64, 1}, {512, 1}, {64, 128}} {
		workers := c.workers
		b.Run(fmt.Sprintf("callers=%d/per-call=%d", workers, c.perCall), func(b *testing.B) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			cfg := ledgerload.Config{Workers: workers, Accounts: 10_000, FirstAccountID: 1, RunID: "b",
				Duration: time.Hour, PerCall: c.perCall}
			if err := ledgerload.Setup(ctx, db, cfg); err != nil {
				b.Fatal(err)
			}
			bt := ledger.NewBatcher(db, time.Now)
			defer bt.Close()
			cfg.Transfers = b.N
			b.ResetTimer()
			r, err := ledgerload.Run(ctx, bt, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.PerSecond, "transfers/s")
			b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
			b.ReportMetric(r.MeanBatch, "transfers/batch")
		})
	}
}
