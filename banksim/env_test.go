package banksim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

// start is the tests' clock's first reading: the morning of Double 11, 2010.
var start = time.Date(2010, 11, 11, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

// waitMax bounds every wait for an event; a test that needs it is failing.
const waitMax = 10 * time.Second

const controlToken = "control-secret"

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a simulator served over real HTTP on 127.0.0.1, with a callback
// receiver standing in for the platform.
type env struct {
	t     testing.TB
	cfg   banksim.Config
	sim   *banksim.Sim
	srv   *httptest.Server
	clock *testClock
	sink  *sink
}

// newEnv starts a simulator; edit adjusts its configuration first.
func newEnv(t testing.TB, edit func(*banksim.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: &testClock{now: start}}
	e.cfg = banksim.Config{
		DBPath:       filepath.Join(t.TempDir(), "banks.db"),
		Seed:         42,
		Clock:        e.clock,
		ControlToken: controlToken,
	}
	if edit != nil {
		edit(&e.cfg)
	}
	e.open()
	e.sink = newSink(t, e)
	return e
}

// open starts (or restarts) the simulator on e.cfg.
func (e *env) open() {
	e.t.Helper()
	sim, err := banksim.New(e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.sim = sim
	e.srv = httptest.NewServer(sim.Handler())
	e.t.Cleanup(e.close)
}

// close stops the simulator and its server; it may be called twice.
func (e *env) close() {
	e.sim.Close()
	e.srv.CloseClientConnections()
	e.srv.Close()
}

func (e *env) client(bank string) *bankapi.Client {
	secret, ok := e.sim.Secret(bank)
	if !ok {
		e.t.Fatalf("no bank %s", bank)
	}
	c := bankapi.NewClient(e.srv.URL, bank, secret, e.srv.Client())
	c.Clock = e.clock
	return c
}

func (e *env) scenario(bank string, sc banksim.Scenario) {
	e.t.Helper()
	if err := e.sim.SetScenario(bank, sc); err != nil {
		e.t.Fatalf("SetScenario: %v", err)
	}
}

// cardNo returns the n-th valid 16-digit test card number.
func cardNo(n int) string {
	base := fmt.Sprintf("622202%09d", n)
	for d := 0; d <= 9; d++ {
		if luhn(base + string(rune('0'+d))) {
			return base + string(rune('0'+d))
		}
	}
	panic("unreachable")
}

func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum, double = sum+d, !double
	}
	return sum%10 == 0
}

// card verifies the n-th test card at bank.
func (e *env) card(bank string, n int) bankapi.Card {
	e.t.Helper()
	c, err := e.client(bank).VerifyCard(context.Background(), cardNo(n), fmt.Sprintf("Holder %d", n))
	if err != nil {
		e.t.Fatalf("VerifyCard: %v", err)
	}
	return c
}

func (e *env) debit(bank, id string, card bankapi.Card, amount int64) bankapi.Transaction {
	e.t.Helper()
	t, err := e.client(bank).Debit(context.Background(), bankapi.TxnRequest{RequestID: id, CardToken: card.CardToken,
		Amount: amount, CallbackURL: e.sink.url(bank)})
	if err != nil {
		e.t.Fatalf("Debit %s: %v", id, err)
	}
	return t
}

func (e *env) balance(bank string, card bankapi.Card) int64 {
	e.t.Helper()
	b, ok, err := e.sim.CardBalance(bank, card.CardToken)
	if err != nil || !ok {
		e.t.Fatalf("CardBalance: %v %v", ok, err)
	}
	return b
}

func (e *env) checkBooks() {
	e.t.Helper()
	if err := e.sim.CheckBooks(); err != nil {
		e.t.Fatalf("books: %v", err)
	}
}

// sink receives callbacks as the platform would: it checks the signature
// with the bank's client and records what arrived.
type sink struct {
	t   testing.TB
	e   *env
	srv *httptest.Server
	got chan bankapi.Transaction
	// failFirst makes the first N deliveries answer 500.
	failFirst atomic.Int64
	bad       atomic.Int64 // callbacks whose signature did not verify
}

func newSink(t testing.TB, e *env) *sink {
	s := &sink{t: t, e: e, got: make(chan bankapi.Transaction, 10_000)}
	// Clients made now, so the handler never reads e.sim, which a restart
	// replaces.
	clients := map[string]*bankapi.Client{}
	for _, b := range e.sim.Banks() {
		clients[b] = e.client(b)
	}
	// The bank in the path says whose secret to check the signature with.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cb/{bank}", func(w http.ResponseWriter, r *http.Request) {
		c := clients[r.PathValue("bank")]
		if c == nil {
			http.NotFound(w, r)
			return
		}
		tx, err := c.ParseCallback(r)
		if err != nil {
			s.bad.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if s.failFirst.Add(-1) >= 0 {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		s.got <- tx
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) url(bank string) string { return s.srv.URL + "/cb/" + bank }

// next waits for the next callback.
func (s *sink) next() bankapi.Transaction {
	s.t.Helper()
	select {
	case tx := <-s.got:
		return tx
	case <-time.After(waitMax):
		s.t.Fatal("no callback arrived")
	}
	return bankapi.Transaction{}
}

// none checks that no callback is waiting.
func (s *sink) none() {
	s.t.Helper()
	select {
	case tx := <-s.got:
		s.t.Fatalf("unexpected callback %+v", tx)
	default:
	}
}

// waitStats waits until cond holds for bank's counters.
func (e *env) waitStats(bank string, cond func(banksim.Stats) bool) banksim.Stats {
	e.t.Helper()
	deadline := time.Now().Add(waitMax)
	for {
		st := e.sim.Stats(bank)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("stats never reached the condition: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
