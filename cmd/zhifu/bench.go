package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"zhifu/ledger"
	"zhifu/ledgerload"
)

// "zhifu bench" prepares and measures ledgers outside the test binary:
//
//	zhifu bench prepare --db URL --accounts 1000000 --transfers 10000000
//	zhifu bench ledger  --db URL --accounts 1000000 --workers 64 --per-call 128 --duration 10s
//
// prepare writes a history through the ledger's own rules (and continues
// one cut short); ledger runs load on it, as the Go benchmarks do on empty
// ledgers, so throughput can be compared at 0, 1 M and 10 M transfers of
// history. Both print their progress and figures on standard output.

// benchConfig is what the bench subcommands read.
type benchConfig struct {
	action                                       string // prepare or ledger
	db, accounts, transfers, workers, perCall, d string
	cpuProfile                                   string
}

const benchUsage = `Usage: zhifu bench prepare|ledger [flags]

  prepare   write a ledger history: --db, --accounts, --transfers
  ledger    run load on a prepared history: --db, --accounts, --workers, --per-call, --duration
            (--cpu-profile FILE writes a CPU profile of the run, for go tool pprof)
`

func (m *Main) benchFlags() []serveFlag {
	b := &m.bench
	return []serveFlag{
		{"db", "ZHIFU_DB", "sqlite:///abs/path.db or a postgres:// URL", &b.db, ""},
		{"accounts", "ZHIFU_BENCH_ACCOUNTS", "wallets in the history", &b.accounts, "1000000"},
		{"transfers", "ZHIFU_BENCH_TRANSFERS", "prepare: transfers of history to write", &b.transfers, "10000000"},
		{"workers", "ZHIFU_BENCH_WORKERS", "ledger: concurrent callers", &b.workers, "64"},
		{"per-call", "ZHIFU_BENCH_PER_CALL", "ledger: transfers each caller submits at once", &b.perCall, "128"},
		{"duration", "ZHIFU_BENCH_DURATION", "ledger: how long to run", &b.d, "10s"},
		{"cpu-profile", "ZHIFU_BENCH_CPU_PROFILE", "ledger: write a CPU profile of the run to this file", &b.cpuProfile, ""},
	}
}

func (m *Main) parseBenchFlags(args []string) error {
	if len(args) == 0 || (args[0] != "prepare" && args[0] != "ledger") {
		return &UsageError{Msg: "zhifu bench needs prepare or ledger", Usage: benchUsage}
	}
	m.bench.action = args[0]
	if err := m.parseFlagSet("zhifu bench "+args[0], m.benchFlags(), args[1:]); err != nil {
		return err
	}
	if m.bench.db == "" {
		return &UsageError{Msg: "--db is required", Usage: benchUsage}
	}
	return nil
}

// runBench runs the bench subcommand to its end.
func (m *Main) runBench(ctx context.Context) error {
	b := m.bench
	accounts, err := strconv.Atoi(b.accounts)
	if err != nil {
		return fmt.Errorf("--accounts: %w", err)
	}
	st, err := openStore(ctx, b.db)
	if err != nil {
		return err
	}
	defer st.Close()
	if b.action == "prepare" {
		n, err := strconv.ParseInt(b.transfers, 10, 64)
		if err != nil {
			return fmt.Errorf("--transfers: %w", err)
		}
		start, last := time.Now(), time.Now()
		return ledgerload.PrepareHistory(ctx, st, ledgerload.HistoryConfig{Accounts: accounts, Transfers: n,
			Progress: func(done, total int64) {
				if time.Since(last) >= 5*time.Second || done == total {
					last = time.Now()
					el := time.Since(start).Seconds()
					fmt.Fprintf(m.Stdout, "%d of %d transfers (%.0f%%) in %.0f s, %.0f/s\n",
						done, total, 100*float64(done)/float64(max(total, 1)), el, float64(done)/max(el, 1e-9))
				}
			}})
	}
	workers, err := strconv.Atoi(b.workers)
	if err != nil {
		return fmt.Errorf("--workers: %w", err)
	}
	perCall, err := strconv.Atoi(b.perCall)
	if err != nil {
		return fmt.Errorf("--per-call: %w", err)
	}
	d, err := time.ParseDuration(b.d)
	if err != nil {
		return fmt.Errorf("--duration: %w", err)
	}
	cfg := ledgerload.HistoryLoad(accounts, fmt.Sprintf("run%d", time.Now().UnixNano()))
	cfg.Workers, cfg.PerCall, cfg.Duration = workers, perCall, d
	if m, ok := st.(ledgerload.Meter); ok {
		cfg.Meter = m
	}
	bt := ledger.NewBatcher(st, time.Now)
	defer bt.Close()
	if b.cpuProfile != "" {
		f, err := os.Create(b.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	r, err := ledgerload.Run(ctx, bt, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, r)
	return nil
}
