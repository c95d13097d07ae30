package recon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/internal/testdb"
	"zhifu/ledger"
)

// BenchmarkReconcile reconciles a day of n lines against n records of the
// platform's, every one matching, as a run reads a file a bank sent:
// lines per second and the peak of the heap while it runs. "parse" reads
// the same statement file and does nothing else, the anchor to compare
// with on the same machine in the same run.
//
//	go test -run '^$' -bench Reconcile -benchtime 3x ./recon
func BenchmarkReconcile(b *testing.B) {
	for _, store := range []string{"sqlite", "postgres"} {
		for _, n := range []int{100_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/lines=%d", store, n), func(b *testing.B) { benchReconcile(b, store, n) })
		}
	}
}

func benchReconcile(b *testing.B, store string, n int) {
	open := testdb.SQLite(b)
	if store == "postgres" {
		open = testdb.PostgreSQL(b)
	}
	r := newRig(b, open)
	if os.Getenv("ZHIFU_BENCH_RECON_LOG") != "" {
		r.svc.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	seedDay(b, r, store, n)
	name := writeDay(b, r, n)
	path := filepath.Join(r.svc.cfg.FilesDir, name)
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if got := parseOnly(b, path); got != n {
				b.Fatalf("parsed %d lines", got)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})
	// One run first, untimed, as on a server that has been running: the
	// first write after the seeding pays for the bulk insert's log.
	if _, err := r.svc.Reconcile(context.Background(), Request{Bank: "CMB", Day: testDay, File: name, StartedBy: "bench"}); err != nil {
		b.Fatal(err)
	}
	b.Run("run", func(b *testing.B) {
		var peak peakHeap
		stop := peak.watch()
		for b.Loop() {
			run, err := r.svc.Reconcile(context.Background(), Request{Bank: "CMB", Day: testDay, File: name, StartedBy: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			if got := run.Summary.Classes[Matched]; got.Lines != int64(n) || got.Records != int64(n) {
				b.Fatalf("matched %+v of %d", got, n)
			}
		}
		stop()
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		b.ReportMetric(float64(peak.max.Load())/(1<<20), "peak-heap-MiB")
	})
}

// seedDay writes n SUCCESS top-ups of CMB decided on the test day, in one
// statement of the database's own (ids TU and 28 digits, as keyed ones).
func seedDay(b *testing.B, r *rig, store string, n int) {
	b.Helper()
	settled := at(0, 10)
	q := `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
		INSERT INTO bank_txns (txn_id, kind, method, user_id, bank, amount, status, stage, bank_txn_id, resolved_by,
			created_at, updated_at, settled_at)
		SELECT printf('TU%028d', x), 'topup', 'quick', '2088000000000001', 'CMB', 100 + x % 1000, 'SUCCESS', 'done',
			printf('B%d', x), 'callback', ?, ?, ? + x FROM c`
	if store == "postgres" {
		q = `INSERT INTO bank_txns (txn_id, kind, method, user_id, bank, amount, status, stage, bank_txn_id, resolved_by,
			created_at, updated_at, settled_at)
		SELECT 'TU' || lpad(x::text, 28, '0'), 'topup', 'quick', '2088000000000001', 'CMB', 100 + x % 1000, 'SUCCESS',
			'done', 'B' || x, 'callback', $2::bigint, $3::bigint, $4::bigint + x FROM generate_series(1, $1::int) AS g(x)`
	}
	ctx := context.Background()
	err := r.st.Update(ctx, func(tx ledger.Tx) error {
		_, err := tx.Exec(ctx, q, n, settled, settled, settled)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if store == "sqlite" {
		// As a day's rows are by the next morning: in the database file,
		// not only in its write-ahead log.
		if _, err := r.st.Reader().Exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
	}
}

// writeDay writes the statement of the seeded day: a line for every
// record, in an order unrelated to the ids' (as a bank's, by time).
func writeDay(b *testing.B, r *rig, n int) string {
	b.Helper()
	f, err := os.Create(filepath.Join(r.svc.cfg.FilesDir, "day.csv"))
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := bankapi.NewStatementWriter(bw)
	from, to := dayBounds(testDay)
	if err := w.Open(0, from); err != nil {
		b.Fatal(err)
	}
	var bal int64
	const step = 7919 // prime, so i·step mod n visits every record once
	for i := range n {
		x := int64(i*step%n) + 1
		amount := 100 + x%1000
		bal += amount
		l := bankapi.StatementLine{RequestID: fmt.Sprintf("TU%028d", x), BankTxnID: fmt.Sprintf("B%d", x),
			Kind: bankapi.KindDebit, Amount: amount, Status: bankapi.StatusSuccess, SettledAt: time.Unix(0, at(0, 10)+int64(i))}
		if err := w.Line(l); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(bal, to); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return "day.csv"
}

func parseOnly(b *testing.B, path string) int {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sr, err := bankapi.NewStatementReader(io.Reader(f))
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		_, ok, err := sr.Next()
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			return n
		}
		n++
	}
}

// peakHeap samples the live heap (runtime/metrics, which does not stop
// the world) every few milliseconds and keeps the highest.
type peakHeap struct{ max atomic.Uint64 }

func (p *peakHeap) watch() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > p.max.Load() {
				p.max.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	runtime.GC()
	p.max.Store(0)
	return func() {
		close(done)
		wg.Wait()
	}
}
