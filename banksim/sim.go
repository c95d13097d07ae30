package banksim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Limits of the server side.
const (
	// dbTimeout bounds one write to the books.
	dbTimeout = 10 * time.Second
	// readHeaderTimeout and serverShutdownTimeout bound Serve's server.
	readHeaderTimeout     = 10 * time.Second
	serverShutdownTimeout = 5 * time.Second
	// settleRetryDelay spaces attempts to settle after a database error.
	settleRetryDelay = time.Second
)

// Sim is a running simulator of several banks.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	store   *store
	banks   map[string]*bankState
	handler http.Handler
	sched   *scheduler

	rngMu sync.Mutex
	rng   *rand.Rand

	// ctx ends when Close is called: workers stop and every wait inside a
	// request ends.
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup

	// mu guards closed; inflight counts requests being served, so that
	// Close waits for them before closing the books.
	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// bankState is one bank: its secret and key, counters, and current scenario
// with the capacity gates made for it.
type bankState struct {
	name     string
	secret   string
	tokenKey []byte
	stats    counters

	mu    sync.Mutex
	scen  Scenario
	api   *gate
	ebank *gate // nil when the ebank pages share the bank's scenario and gate
}

// current returns the scenario and gate in force for channel ch.
func (b *bankState) current(ch string) (Scenario, *gate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch == channelEbank && b.scen.Ebank != nil {
		return *b.scen.Ebank, b.ebank
	}
	return b.scen, b.api
}

// set installs a validated scenario with fresh gates: the bucket starts
// full.
func (b *bankState) set(sc Scenario, now time.Time) {
	sc = cloneScenario(sc)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.scen = sc
	b.api = newGate(sc, now)
	b.ebank = nil
	if sc.Ebank != nil {
		b.ebank = newGate(*sc.Ebank, now)
	}
}

// cloneScenario copies what a scenario shares by reference, so a caller
// changing its copy cannot change the bank's behind its lock.
func cloneScenario(sc Scenario) Scenario {
	sc.Maintenance = slices.Clone(sc.Maintenance)
	if sc.Ebank != nil {
		e := *sc.Ebank
		e.Maintenance = slices.Clone(e.Maintenance)
		sc.Ebank = &e
	}
	return sc
}

// New opens the books at cfg.DBPath (creating each bank's books on first
// use), starts the callback workers, and resumes settling any transaction a
// previous run left ACCEPTED.
func New(cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	st, err := openStore(ctx, cfg.DBPath)
	if err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, store: st, banks: make(map[string]*bankState), rng: cfg.Rand,
		sched: newScheduler(callbackQueueMax)}
	now := cfg.Clock.Now()
	for _, name := range cfg.Banks {
		key, err := st.ensureBank(ctx, name, cfg.SettlementFloat)
		if err != nil {
			st.close()
			return nil, err
		}
		b := &bankState{name: name, secret: cfg.Secrets[name], tokenKey: key}
		b.set(cfg.Scenarios.For(name), now)
		s.banks[name] = b
	}
	s.handler = s.routes()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.startWorkers()
	if err := s.resume(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// resume schedules the settlement of transactions left ACCEPTED.
func (s *Sim) resume(ctx context.Context) error {
	rows, err := s.store.accepted(ctx, callbackQueueMax/2)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if b := s.banks[r.Bank]; b != nil {
			s.sched.add(time.Now(), s.settleJob(b, r.Channel, r.RequestID))
		}
	}
	if len(rows) > 0 {
		s.log.Info("resuming accepted transactions", "count", len(rows))
	}
	return nil
}

// Handler returns the simulator's HTTP handler: the bank API and the
// control API.
func (s *Sim) Handler() http.Handler { return s.handler }

// Serve serves the simulator on ln until ctx ends, then shuts the server
// down (requests in flight get serverShutdownTimeout to finish). It does not
// Close the simulator.
func (s *Sim) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), serverShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenAndServe listens on addr ("127.0.0.1:0" picks a port) and serves
// until ctx ends, as Serve does.
func (s *Sim) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("banksim: listen: %w", err)
	}
	s.log.Info("banksim listening", "addr", ln.Addr().String(), "banks", s.cfg.Banks)
	return s.Serve(ctx, ln)
}

// Close stops taking requests, ends every wait of those in flight, stops
// the callback workers (callbacks not yet delivered are dropped, as a
// restarting bank may drop them), waits for all of it, and closes the books.
// It may be called more than once.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.inflight.Wait()
		s.workers.Wait()
		s.closeErr = s.store.close()
	})
	return s.closeErr
}

// enter registers a request; false once the simulator is closing.
func (s *Sim) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Banks returns the simulated banks' names.
func (s *Sim) Banks() []string { return slices.Clone(s.cfg.Banks) }

// Secret returns bank's shared secret, for wiring the platform to it.
func (s *Sim) Secret(bank string) (string, bool) {
	b := s.banks[bank]
	if b == nil {
		return "", false
	}
	return b.secret, true
}

// Scenario returns bank's current scenario.
func (s *Sim) Scenario(bank string) (Scenario, bool) {
	b := s.banks[bank]
	if b == nil {
		return Scenario{}, false
	}
	sc, _ := b.current(channelAPI)
	return cloneScenario(sc), true
}

// SetScenario replaces bank's scenario at once; capacity buckets start
// full.
func (s *Sim) SetScenario(bank string, sc Scenario) error {
	b := s.banks[bank]
	if b == nil {
		return fmt.Errorf("banksim: unknown bank %q", bank)
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("banksim: scenario: %w", err)
	}
	b.set(sc, s.cfg.Clock.Now())
	s.log.Info("scenario set", "bank", bank)
	return nil
}

// SetScenarios replaces every bank's scenario.
func (s *Sim) SetScenarios(ss Scenarios) error {
	if err := ss.validate(s.cfg.Banks); err != nil {
		return fmt.Errorf("banksim: scenario: %w", err)
	}
	now := s.cfg.Clock.Now()
	for _, name := range s.cfg.Banks {
		s.banks[name].set(ss.For(name), now)
	}
	s.log.Info("scenarios set", "banks", len(s.cfg.Banks))
	return nil
}

// Books returns bank's books now.
func (s *Sim) Books(bank string) (Books, error) {
	if s.banks[bank] == nil {
		return Books{}, fmt.Errorf("banksim: unknown bank %q", bank)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	return s.store.books(ctx, bank)
}

// CheckBooks checks every bank's books (Books.Check).
func (s *Sim) CheckBooks() error {
	var errs []error
	for _, name := range s.cfg.Banks {
		b, err := s.Books(name)
		if err == nil {
			err = b.Check()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CardBalance returns the balance of the card with token at bank, and false
// when the bank has no such card.
func (s *Sim) CardBalance(bank, token string) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	return s.store.cardBalance(ctx, bank, token)
}

// Stats returns bank's counters; zero for an unknown bank.
func (s *Sim) Stats(bank string) Stats {
	if b := s.banks[bank]; b != nil {
		return b.stats.snapshot()
	}
	return Stats{}
}

// chance draws from the injected source: true with probability p. Certain
// and impossible events draw nothing, so turning a fault on or off for one
// bank does not shift the sequence more than it must.
func (s *Sim) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	return s.uniform() < p
}

func (s *Sim) uniform() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *Sim) norm() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.NormFloat64()
}

func (s *Sim) now() time.Time { return s.cfg.Clock.Now() }
