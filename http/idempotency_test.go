package http

import (
	"context"
	"errors"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu"
	"zhifu/ledger"
	"zhifu/sqlite"
)

type idemClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *idemClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *idemClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const idemTestToken = "idempotency-test-token"

// idemFixture is a server over a real SQLite database whose one admin
// route runs a handler the test controls.
type idemFixture struct {
	s     *Server
	clock *idemClock
	h     nethttp.Handler
}

func newIdemFixture(t *testing.T, h handlerFunc) *idemFixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &idemClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b := ledger.NewBatcher(db, c.Now)
	t.Cleanup(func() {
		b.Close()
		db.Close()
	})
	s := NewServer(Config{Addr: "127.0.0.1:0", Ledger: db, Batcher: b, AdminToken: idemTestToken, Clock: c})
	mux := nethttp.NewServeMux()
	mux.HandleFunc("POST /thing", s.admin(h))
	return &idemFixture{s: s, clock: c, h: s.instrument(mux)}
}

type idemResponse struct {
	status   int
	body     string
	replayed bool
}

func (f *idemFixture) post(key, body string) idemResponse {
	r := httptest.NewRequest("POST", "/thing", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+idemTestToken)
	if key != "" {
		r.Header.Set(idempotencyHeader, key)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return idemResponse{w.Code, w.Body.String(), w.Header().Get("Idempotent-Replayed") == "true"}
}

func wantIdem(t *testing.T, got idemResponse, status int, code string) {
	t.Helper()
	if got.status != status || (code != "" && !strings.Contains(got.body, `"code":"`+code+`"`)) {
		t.Fatalf("got %d %s, want %d %s", got.status, got.body, status, code)
	}
}

// echo answers 201 with a counter, so a replay is told from a second run.
func echo(calls *atomic.Int64) handlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		n := calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		writeJSON(w, nethttp.StatusCreated, map[string]any{"call": n, "body": string(b)})
		return nil
	}
}

func TestIdempotencyKeyInUse(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	f := newIdemFixture(t, func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		writeJSON(w, nethttp.StatusCreated, map[string]string{"id": "first"})
		return nil
	})
	first := make(chan idemResponse)
	go func() { first <- f.post("k1", `{"a":1}`) }()
	<-entered
	wantIdem(t, f.post("k1", `{"a":1}`), 409, zhifu.IdempotencyKeyInUse)
	wantIdem(t, f.post("k1", `{"a":2}`), 422, zhifu.IdempotencyKeyReused)
	close(release)
	got := <-first
	wantIdem(t, got, 201, "")
	replay := f.post("k1", `{"a":1}`)
	if replay.status != 201 || replay.body != got.body || !replay.replayed || got.replayed {
		t.Fatalf("replay %+v of %+v", replay, got)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times", calls.Load())
	}
}

func TestIdempotencyServerErrorReleasesKey(t *testing.T) {
	var calls atomic.Int64
	f := newIdemFixture(t, func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		if calls.Add(1) == 1 {
			return errors.New("store unreachable")
		}
		writeJSON(w, nethttp.StatusCreated, map[string]string{"id": "second"})
		return nil
	})
	wantIdem(t, f.post("k", `{}`), 500, zhifu.SystemError)
	wantIdem(t, f.post("k", `{}`), 201, "")
	if got := f.post("k", `{}`); !got.replayed || calls.Load() != 2 {
		t.Fatalf("after release: %+v, %d calls", got, calls.Load())
	}
}

func TestIdempotencyClientErrorIsKept(t *testing.T) {
	var calls atomic.Int64
	f := newIdemFixture(t, func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		calls.Add(1)
		return invalidRequest("x", "bad x")
	})
	wantIdem(t, f.post("k", `{}`), 400, zhifu.InvalidRequest)
	if got := f.post("k", `{}`); got.status != 400 || !got.replayed || calls.Load() != 1 {
		t.Fatalf("4xx not replayed: %+v, %d calls", got, calls.Load())
	}
}

func TestIdempotencyExpiryAndAbandonment(t *testing.T) {
	var calls atomic.Int64
	f := newIdemFixture(t, echo(&calls))
	first := f.post("k", `{"a":1}`)
	wantIdem(t, first, 201, "")
	f.clock.Advance(idempotencyTTL - time.Second)
	wantIdem(t, f.post("k", `{"a":2}`), 422, zhifu.IdempotencyKeyReused)
	f.clock.Advance(time.Second)
	// Expired: the key is free again, whatever the body.
	if got := f.post("k", `{"a":2}`); got.status != 201 || got.replayed || calls.Load() != 2 {
		t.Fatalf("after expiry: %+v", got)
	}

	// A claim whose process died stays in use until it is abandoned.
	begin := &idemBeginOp{scope: "admin", key: "dead", hash: "h", now: f.clock.Now()}
	if err := f.s.batcher.Do(context.Background(), begin); err != nil || begin.outcome != idemStarted {
		t.Fatalf("claim: %v %d", err, begin.outcome)
	}
	begin.hash = requestHash(httptest.NewRequest("POST", "/thing", nil), []byte(`{}`))
	if _, err := f.s.store.Reader().Exec(context.Background(),
		`UPDATE idempotency_keys SET request_hash = ? WHERE idem_key = 'dead'`, begin.hash); err != nil {
		t.Fatal(err)
	}
	wantIdem(t, f.post("dead", `{}`), 409, zhifu.IdempotencyKeyInUse)
	f.clock.Advance(idempotencyAbandonedAfter)
	if got := f.post("dead", `{}`); got.status != 201 || got.replayed {
		t.Fatalf("abandoned key not taken over: %+v", got)
	}
}

func TestIdempotencyKeyRules(t *testing.T) {
	var calls atomic.Int64
	f := newIdemFixture(t, echo(&calls))
	wantIdem(t, f.post(strings.Repeat("k", idempotencyKeyLenMax+1), `{}`), 400, zhifu.InvalidRequest)
	wantIdem(t, f.post("bad\x01key", `{}`), 400, zhifu.InvalidRequest)
	wantIdem(t, f.post(strings.Repeat("k", idempotencyKeyLenMax), `{}`), 201, "")
	// Without a key every request runs.
	f.post("", `{}`)
	f.post("", `{}`)
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
}

// TestIdempotencyCleanup checks that new keys delete expired ones, so the
// table holds about a day of keys without a worker.
func TestIdempotencyCleanup(t *testing.T) {
	var calls atomic.Int64
	f := newIdemFixture(t, echo(&calls))
	for i := range 10 {
		f.post("old"+string(rune('a'+i)), `{}`)
	}
	f.clock.Advance(idempotencyTTL + time.Second)
	for i := range 3 {
		f.post("new"+string(rune('a'+i)), `{}`)
	}
	var n int
	if err := f.s.store.Reader().QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d keys left, want the 3 new ones", n)
	}
}
