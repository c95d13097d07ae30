package ledgerload

import (
	"context"
	"fmt"
	"testing"
	"time"

	"zhifu/ledger"
)

// Benchmark is the ledger benchmark every store runs: durable transfers per
// second through the batcher at several concurrencies, one transfer per call
// and 128 per call, among 10,000 funded wallets. b.N is the transfer count.
func Benchmark(b *testing.B, open func(b *testing.B) ledger.Store) {
	for _, c := range []struct{ workers, perCall int }{{1, 1}, {64, 1}, {512, 1}, {64, 128}} {
		b.Run(fmt.Sprintf("callers=%d/per-call=%d", c.workers, c.perCall), func(b *testing.B) {
			ctx := context.Background()
			st := open(b)
			cfg := Config{Workers: c.workers, PerCall: c.perCall, Accounts: 10_000, FirstAccountID: 1,
				RunID: "b", Duration: time.Hour}
			if err := Setup(ctx, st, cfg); err != nil {
				b.Fatal(err)
			}
			if m, ok := st.(Meter); ok {
				cfg.Meter = m
			}
			bt := ledger.NewBatcher(st, time.Now)
			defer bt.Close()
			cfg.Transfers = b.N
			b.ResetTimer()
			r, err := Run(ctx, bt, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if r.Failed > 0 {
				b.Fatalf("%d transfers refused", r.Failed)
			}
			b.ReportMetric(r.PerSecond, "transfers/s")
			b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
			b.ReportMetric(r.MeanBatch, "transfers/batch")
			if r.BytesPerTransfer > 0 {
				b.ReportMetric(r.BytesPerTransfer, "bytes/transfer")
			}
		})
	}
}
