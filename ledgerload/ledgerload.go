// Package ledgerload drives a ledger store through the batcher the way the
// platform does under load: many callers, each submitting one transfer at a
// time and waiting for it to be durable. It measures transfers per second and
// per-transfer latency; the Go benchmarks and `zhifu bench` use it.
package ledgerload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"zhifu/ledger"
)

// Limits.
const (
	workersMax  = 4096
	accountsMax = 1_000_000
	// samplesMax bounds the latency samples kept per worker.
	samplesMax = 1 << 16
)

// Config says what load to apply.
type Config struct {
	Workers   int           // concurrent callers, each with one transfer in flight
	Accounts  int           // wallets the transfers move money among
	Duration  time.Duration // how long to run
	Transfers int           // or stop after this many transfers (0: no limit)
	// PerCall is how many transfers each caller submits at once (default 1),
	// as a client that batches on its own side would.
	PerCall int
	// FirstAccountID lets several runs share a database without colliding.
	FirstAccountID int64
	// RunID makes transfer ids unique across runs on one database.
	RunID string
	// Meter, if set, says how many bytes the store has written; the run
	// reports the bytes written per transfer committed.
	Meter Meter
}

// Meter is what a store offers to say how many bytes it has written so
// far; package sqlite and package postgres implement it (each says what it
// counts).
type Meter interface {
	BytesWritten(ctx context.Context) (int64, error)
}

// Result is what a run measured.
type Result struct {
	Transfers int64
	Failed    int64 // refused by the rules (should be 0: accounts are funded)
	Elapsed   time.Duration
	PerSecond float64
	P50, P99  time.Duration
	Batches   int64
	MeanBatch float64
	// BytesPerTransfer is what the Meter counted over the run divided by
	// the transfers committed (0 without a Meter).
	BytesPerTransfer float64
}

func (r Result) String() string {
	s := fmt.Sprintf("%d transfers in %v: %.0f/s, p50 %v, p99 %v, %d batches (mean %.0f transfers)",
		r.Transfers, r.Elapsed.Round(time.Millisecond), r.PerSecond, r.P50, r.P99, r.Batches, r.MeanBatch)
	if r.BytesPerTransfer > 0 {
		s += fmt.Sprintf(", %.0f bytes written per transfer", r.BytesPerTransfer)
	}
	return s
}

// Setup creates the run's accounts: a funding bank and cfg.Accounts wallets,
// each funded so that no transfer of the run can be refused.
func Setup(ctx context.Context, st ledger.Store, cfg Config) error {
	if cfg.Accounts < 2 || cfg.Accounts > accountsMax {
		return fmt.Errorf("ledgerload: accounts must be 2..%d", accountsMax)
	}
	bank := cfg.FirstAccountID
	accounts := []ledger.Account{{ID: bank, Ledger: 156, Code: 10}}
	for i := 1; i <= cfg.Accounts; i++ {
		accounts = append(accounts, ledger.Account{ID: bank + int64(i), Ledger: 156, Code: 1,
			Flags: ledger.DebitsMustNotExceedCredits})
	}
	for len(accounts) > 0 {
		n := min(len(accounts), ledger.BatchTransfersMax)
		if _, err := ledger.CreateAccounts(ctx, st, accounts[:n]); err != nil {
			return err
		}
		accounts = accounts[n:]
	}
	var fund []ledger.Transfer
	for i := 1; i <= cfg.Accounts; i++ {
		fund = append(fund, ledger.Transfer{ID: fmt.Sprintf("%s-fund-%d", cfg.RunID, i), DebitAccountID: bank,
			CreditAccountID: bank + int64(i), Amount: 1 << 40, Ledger: 156, Code: 1})
	}
	for len(fund) > 0 {
		n := min(len(fund), ledger.BatchTransfersMax)
		if _, err := ledger.Commit(ctx, st, [][]ledger.Transfer{fund[:n]}, time.Now().UnixNano()); err != nil {
			return err
		}
		fund = fund[n:]
	}
	return nil
}

// Run applies the load through b until the duration passes or the transfer
// count is reached.
func Run(ctx context.Context, b *ledger.Batcher, cfg Config) (Result, error) {
	if cfg.Workers < 1 || cfg.Workers > workersMax {
		return Result{}, fmt.Errorf("ledgerload: workers must be 1..%d", workersMax)
	}
	perCall := max(cfg.PerCall, 1)
	if perCall > ledger.SubmissionTransfersMax {
		return Result{}, fmt.Errorf("ledgerload: per-call must be 1..%d", ledger.SubmissionTransfersMax)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var done, failed, issued atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, cfg.Workers)
	batches0 := b.Stats().Batches.Load()
	var written0 int64
	if cfg.Meter != nil {
		var err error
		if written0, err = cfg.Meter.BytesWritten(ctx); err != nil {
			return Result{}, err
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			call := make([]ledger.Transfer, perCall)
			for ctx.Err() == nil {
				n := issued.Add(int64(perCall))
				if cfg.Transfers > 0 && n > int64(cfg.Transfers) {
					return
				}
				for i := range call {
					from := rng.Int64N(int64(cfg.Accounts)) + 1
					to := (from+rng.Int64N(int64(cfg.Accounts-1)))%int64(cfg.Accounts) + 1
					call[i] = ledger.Transfer{ID: fmt.Sprintf("%s-%d-%d", cfg.RunID, w, n-int64(i)),
						DebitAccountID: cfg.FirstAccountID + from, CreditAccountID: cfg.FirstAccountID + to,
						Amount: rng.Int64N(10_000) + 1, Ledger: 156, Code: 1}
				}
				t0 := time.Now()
				res, err := b.Submit(context.Background(), call)
				d := time.Since(t0)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					cancel()
					return
				}
				for _, r := range res {
					if r != ledger.TransferOK {
						failed.Add(1)
					}
				}
				done.Add(int64(perCall))
				if len(lat[w]) < samplesMax {
					lat[w] = append(lat[w], d)
				}
			}
		}(w)
	}
	wg.Wait()
	r := Result{Transfers: done.Load(), Failed: failed.Load(), Elapsed: time.Since(start)}
	if err, _ := firstErr.Load().(error); err != nil {
		return r, err
	}
	r.PerSecond = float64(r.Transfers) / r.Elapsed.Seconds()
	if cfg.Meter != nil && r.Transfers > 0 {
		written, err := cfg.Meter.BytesWritten(context.Background())
		if err != nil {
			return r, err
		}
		r.BytesPerTransfer = float64(written-written0) / float64(r.Transfers)
	}
	r.Batches = b.Stats().Batches.Load() - batches0
	if r.Batches > 0 {
		r.MeanBatch = float64(r.Transfers) / float64(r.Batches)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		r.P50 = all[len(all)/2]
		r.P99 = all[len(all)*99/100]
	}
	return r, nil
}
