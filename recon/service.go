package recon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/approval"
	"zhifu/channel"
	"zhifu/identity"
	"zhifu/ledger"
)

// Defaults and limits of reconciliation.
const (
	// PublishDelayDefault is how long after a day ends (Beijing) the
	// scheduler reconciles it: banks publish their statements in the small
	// hours.
	PublishDelayDefault = 2 * time.Hour
	// OverdueGraceDefault is how long past its deadline a PROCESSING
	// transaction is left to the statement sweep before it becomes a
	// review item.
	OverdueGraceDefault = 15 * time.Minute
	// WorkersDefault bounds the repairs of one run committing at once.
	WorkersDefault = 8
	// runsMax bounds the runs of one process at once.
	runsMax = 4
	// leaseTTL is how long a run's lease lasts without renewal (clock
	// time); heartbeatInterval is how often a run renews it and writes
	// its progress (real time).
	leaseTTL          = 2 * time.Minute
	heartbeatInterval = time.Second
	// runTimeout bounds one run.
	runTimeout = time.Hour
	// opTimeout bounds one bookkeeping op.
	opTimeout = 30 * time.Second
	// confirmMax bounds the records of a day the statement does not show
	// that a run asks the bank about; more means the statement is not the
	// day's (or the bank lost a part of it), and the run refuses it.
	confirmMax = 10_000
	// groupLinesMax bounds the lines of one request id in a statement.
	groupLinesMax = 64
	// tickInterval is how often the background loop looks at the clock
	// (real time); custodyInterval how often it checks custody and the
	// overdue transactions (clock time); scheduleRetry how long a
	// scheduled run that failed waits (clock time).
	tickInterval    = time.Second
	custodyInterval = time.Minute
	scheduleRetry   = 10 * time.Minute
)

// Config is what the service needs.
type Config struct {
	Store     ledger.Store
	Batcher   *ledger.Batcher
	Clock     zhifu.Clock
	Logger    *slog.Logger
	Channels  *channel.Service
	Identity  *identity.Service
	Approvals *approval.Service

	// Node names this server among those sharing a database, stably
	// across its restarts (cmd/zhifu keeps it in the data folder); empty
	// means a random name for this process.
	Node string
	// TempDir holds the sort's temporary files; empty means os.TempDir.
	TempDir string
	// FilesDir is where the statement files banks send are put for a run
	// to read ("file" of a Request names one there).
	FilesDir string
	// PublishDelay is PublishDelayDefault when 0; negative turns the
	// scheduler off.
	PublishDelay time.Duration
	// OverdueGrace is OverdueGraceDefault when 0.
	OverdueGrace time.Duration
	// Workers is WorkersDefault when 0.
	Workers int
}

// Service runs reconciliations, keeps review items and checks custody.
type Service struct {
	cfg      Config
	ledgerID uint32

	mu      sync.Mutex
	running map[string]string // bank+day → run id, the runs of this process
	slots   chan struct{}
	// live is the progress of this process's runs, by run id: fresher
	// than the row, which the heartbeat writes once a second.
	live sync.Map

	base    atomic.Pointer[context.Context] // the background loop's, for runs started by requests
	runs    sync.WaitGroup
	custody atomic.Pointer[Custody]
	// scheduling: a scheduled run of this process is going.
	scheduling atomic.Bool
	open       atomic.Int64 // review items OPEN, as last counted
	// ran counts the runs this process finished, for tests that wait.
	ran atomic.Int64
}

// New returns the service and registers its approval kind.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Batcher == nil || cfg.Channels == nil {
		return nil, fmt.Errorf("recon: a store, a batcher and the channels are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		b := make([]byte, 8)
		rand.Read(b)
		cfg.Node = "node-" + hex.EncodeToString(b)
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if cfg.PublishDelay == 0 {
		cfg.PublishDelay = PublishDelayDefault
	}
	if cfg.OverdueGrace <= 0 {
		cfg.OverdueGrace = OverdueGraceDefault
	}
	if cfg.Workers <= 0 {
		cfg.Workers = WorkersDefault
	}
	l, _ := zhifu.LedgerOf(zhifu.CNY)
	s := &Service{cfg: cfg, ledgerID: l, running: map[string]string{}, slots: make(chan struct{}, runsMax)}
	if cfg.Approvals != nil {
		cfg.Approvals.Register(KindResolve, s)
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now() }

// Run runs the background work until ctx ends: the daily schedule, the
// custody check and the overdue transactions every minute of clock time.
// Runs started by requests (Start) run under it and end with it; Run
// returns once they have.
func (s *Service) Run(ctx context.Context) {
	s.base.Store(&ctx)
	defer s.runs.Wait()
	s.cleanTemp()
	if s.cfg.PublishDelay > 0 {
		if err := s.ensureSchedule(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("recon: schedule", slog.Any("err", err))
		}
	}
	var checked time.Time
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		now := s.now()
		if now.Sub(checked) >= custodyInterval || now.Before(checked) {
			checked = now
			s.background(ctx)
		}
		if s.cfg.PublishDelay > 0 {
			s.runDue(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// cleanTemp removes the sort files of runs that can no longer be going
// (older than runTimeout): those of a process that was killed.
func (s *Service) cleanTemp() {
	names, _ := filepath.Glob(filepath.Join(s.cfg.TempDir, "recon-run-*"))
	for _, name := range names {
		if st, err := os.Stat(name); err == nil && time.Since(st.ModTime()) > runTimeout {
			os.Remove(name)
		}
	}
}

// background is the minute's work: overdue transactions become items,
// custody is checked.
func (s *Service) background(ctx context.Context) {
	if err := s.ReviewOverdue(ctx); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("recon: overdue transactions", slog.Any("err", err))
	}
	if _, err := s.CheckCustody(ctx, false); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("recon: custody check", slog.Any("err", err))
	}
}

// ReviewOverdue makes review items of every bank's transactions still
// PROCESSING past their deadline and the grace, and closes those whose
// transaction was decided since, as the background loop does every minute.
func (s *Service) ReviewOverdue(ctx context.Context) error {
	var errs []error
	for _, bank := range s.cfg.Channels.Banks() {
		if _, err := s.reviewOverdue(ctx, bank, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", bank, err))
		}
	}
	return errors.Join(errs...)
}

// Ran reports how many runs this process has finished (done or failed).
func (s *Service) Ran() int64 { return s.ran.Load() }

// do commits op in the batcher's background lane, within opTimeout.
func (s *Service) do(ctx context.Context, op ledger.Op) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return s.cfg.Batcher.DoBulk(ctx, op)
}

// transfer builds one ledger transfer of reconciliation.
func (s *Service) transfer(id string, debit, credit int64, amount int64) ledger.Transfer {
	return ledger.Transfer{ID: id, DebitAccountID: debit, CreditAccountID: credit, Amount: amount,
		Ledger: s.ledgerID, Code: zhifu.TransferRecon}
}
