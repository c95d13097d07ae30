package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu/egress"
	"zhifu/ledger"
	"zhifu/notify"
	"zhifu/postgres"
	"zhifu/sqlite"
)

// waitMax bounds how long a test waits for an event before failing; no test
// sleeps for a fixed time.
const waitMax = 20 * time.Second

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

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// env is one fresh database with the platform schema and a manual clock.
type env struct {
	t     *testing.T
	store ledger.Store
	open  func() ledger.Store // another handle on the same database, like a second process
	clock *testClock
	logs  *syncBuffer
}

// forEachStore runs fn on a fresh SQLite file and on a fresh PostgreSQL
// database.
func forEachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { fn(t, newEnv(t, backend)) })
	}
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	ctx := context.Background()
	var open func() ledger.Store
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "zhifu.db")
		open = func() ledger.Store {
			db, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
	case "postgres":
		base := postgres.DefaultTestURL
		if u := os.Getenv("ZHIFU_TEST_POSTGRES"); u != "" {
			base = u
		}
		u, drop, err := postgres.CreateTestDatabase(ctx, base)
		if err != nil {
			t.Fatalf("PostgreSQL at %s (set ZHIFU_TEST_POSTGRES): %v", base, err)
		}
		t.Cleanup(drop)
		open = func() ledger.Store {
			db, err := postgres.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	// Whole seconds, so that signature timestamps compare exactly.
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	return &env{t: t, store: open(), open: open, clock: clock, logs: &syncBuffer{}}
}

// loopback admits the receivers, which listen on 127.0.0.1.
var loopback = egress.New(egress.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})

// worker returns a worker on store (nil: the env's), logging into e.logs,
// delivering through cfg.Egress or else a guard that admits loopback.
func (e *env) worker(store ledger.Store, cfg notify.Config) *notify.Worker {
	if store == nil {
		store = e.store
	}
	if cfg.Egress == nil {
		cfg.Egress = loopback
	}
	cfg.Store, cfg.Clock = store, e.clock
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return notify.New(cfg)
}

// run starts w.Run in the background and stops it when the test ends.
func (e *env) run(w *notify.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// merchant inserts merchant id with secret, as the identity service would.
func (e *env) merchant(id, secret string) {
	e.t.Helper()
	_, err := e.store.Reader().Exec(context.Background(), `INSERT INTO merchants
		(merchant_id, app_id, name, user_id, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, "app-"+id, "shop "+id, "2088000000000001", secret, e.clock.Now().UnixNano())
	if err != nil {
		e.t.Fatal(err)
	}
}

// enqueue writes a FormatZhifu notification for merchant m to rcv.
func (e *env) enqueue(notifyID, m, u string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"notify_id":%q,"notify_type":"trade_status_sync","trade":{"trade_no":"T-%s","status":"TRADE_SUCCESS","total_amount":"12.30"}}`,
		notifyID, notifyID)
	e.enqueueMsg(notify.Message{NotifyID: notifyID, MerchantID: m, URL: u, Format: notify.FormatZhifu, Body: body})
}

func (e *env) enqueueMsg(msg notify.Message) {
	e.t.Helper()
	if err := notify.Enqueue(context.Background(), e.store.Reader(), msg, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// outboxRow is a notification's row as stored.
type outboxRow struct {
	Status      string
	Attempts    int
	Next        time.Time
	LeaseUntil  int64
	LastError   string
	DeliveredAt time.Time
}

func (e *env) row(notifyID string) outboxRow {
	e.t.Helper()
	var r outboxRow
	var attempts, next, delivered int64
	err := e.store.Reader().QueryRow(context.Background(), `SELECT status, attempts, next_attempt_at, lease_until,
		last_error, delivered_at FROM notifications WHERE notify_id = ?`, notifyID).
		Scan(&r.Status, &attempts, &next, &r.LeaseUntil, &r.LastError, &delivered)
	if err != nil {
		e.t.Fatalf("row %s: %v", notifyID, err)
	}
	r.Attempts, r.Next = int(attempts), time.Unix(0, next).UTC()
	if delivered != 0 {
		r.DeliveredAt = time.Unix(0, delivered).UTC()
	}
	return r
}

func (e *env) runOnce(w *notify.Worker) int {
	e.t.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// receiver is a merchant's notify_url: a real HTTP server on 127.0.0.1 that
// checks every signature and counts what arrives.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	clock  *testClock
	// respond decides the answer to the n-th reception (from 1) of a
	// notify_id; nil answers 200 "success".
	respond func(n int, r *http.Request) (int, string)
	// block, if set, holds every request until it is closed or the caller
	// gives up.
	block chan struct{}

	mu        sync.Mutex
	got       map[string]int // notify_id → receptions
	active    map[string]int // notify_id → requests in progress
	overlap   []string       // notify_ids received twice at the same time
	inFlight  int
	inMax     int
	badSig    []string
	arrived   chan string // every arrival's notify_id
	lastSig   string
	lastStamp int64
}

func newReceiver(t *testing.T, secret string, clock *testClock) *receiver {
	rc := &receiver{t: t, secret: secret, clock: clock, got: map[string]int{}, active: map[string]int{},
		arrived: make(chan string, 4096)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() {
		rc.unblock()
		rc.srv.Close()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.badSig) > 0 {
			t.Errorf("bad signatures: %v", rc.badSig)
		}
		if len(rc.overlap) > 0 {
			t.Errorf("notifications delivered twice at once: %v", rc.overlap)
		}
	})
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/notify?shop=1" }

func (rc *receiver) unblock() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.block != nil {
		select {
		case <-rc.block:
		default:
			close(rc.block)
		}
	}
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("receiver: %v", err)
		return
	}
	id := rc.check(r, body)
	rc.mu.Lock()
	rc.got[id]++
	n := rc.got[id]
	if rc.active[id]++; rc.active[id] > 1 {
		rc.overlap = append(rc.overlap, id)
	}
	rc.inFlight++
	rc.inMax = max(rc.inMax, rc.inFlight)
	block, respond := rc.block, rc.respond
	rc.mu.Unlock()
	rc.arrived <- id
	defer func() {
		rc.mu.Lock()
		rc.active[id]--
		rc.inFlight--
		rc.mu.Unlock()
	}()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	status, text := http.StatusOK, "success"
	if respond != nil {
		status, text = respond(n, r)
	}
	w.WriteHeader(status)
	io.WriteString(w, text)
}

// check verifies the request as a merchant would and returns its notify_id.
func (rc *receiver) check(r *http.Request, body []byte) string {
	bad := func(format string, args ...any) {
		rc.mu.Lock()
		rc.badSig = append(rc.badSig, fmt.Sprintf(format, args...))
		rc.mu.Unlock()
	}
	if r.Method != http.MethodPost {
		bad("method %s", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("sign") == "" {
			bad("alipay form %q", body)
		}
		return form.Get("notify_id")
	} else if ct != "application/json" {
		bad("content type %q", ct)
	}
	var msg struct {
		NotifyID   string          `json:"notify_id"`
		NotifyType string          `json:"notify_type"`
		Trade      json.RawMessage `json:"trade"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.NotifyType != "trade_status_sync" || len(msg.Trade) == 0 {
		bad("body %q", body)
	}
	h := r.Header.Get("Zhifu-Signature")
	ts, v1, ok := strings.Cut(h, ",v1=")
	ts, ok2 := strings.CutPrefix(ts, "t=")
	t, err := strconv.ParseInt(ts, 10, 64)
	if !ok || !ok2 || err != nil {
		bad("header %q", h)
		return msg.NotifyID
	}
	if d := rc.clock.Now().Unix() - t; d < -300 || d > 300 {
		bad("timestamp %d is %d s from the clock", t, d)
	}
	mac := hmac.New(sha256.New, []byte(rc.secret))
	fmt.Fprintf(mac, "%d.", t)
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(v1), []byte(want)) {
		bad("signature %s, want %s", v1, want)
	}
	rc.mu.Lock()
	rc.lastSig, rc.lastStamp = v1, t
	rc.mu.Unlock()
	return msg.NotifyID
}

// receptions returns how often notifyID arrived.
func (rc *receiver) receptions(notifyID string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got[notifyID]
}

func (rc *receiver) total() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, c := range rc.got {
		n += c
	}
	return n
}

// current is the number of requests in progress.
func (rc *receiver) current() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.inFlight
}

func (rc *receiver) maxInFlight() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.inMax
}

// waitArrivals waits until n more requests have arrived.
func (rc *receiver) waitArrivals(n int) {
	rc.t.Helper()
	deadline := time.After(waitMax)
	for range n {
		select {
		case <-rc.arrived:
		case <-deadline:
			rc.t.Fatalf("receiver: waited %v for %d arrivals", waitMax, n)
		}
	}
}

// observer collects the worker's attempts so tests wait on events.
type observer struct {
	mu      sync.Mutex
	list    []notify.Attempt
	changed chan struct{}
}

func newObserver() *observer { return &observer{changed: make(chan struct{})} }

func (o *observer) observe(a notify.Attempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, a)
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *observer) all() []notify.Attempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]notify.Attempt(nil), o.list...)
}

// waitFor waits until pred holds of the attempts so far.
func (o *observer) waitFor(t *testing.T, what string, pred func([]notify.Attempt) bool) []notify.Attempt {
	t.Helper()
	deadline := time.After(waitMax)
	for {
		o.mu.Lock()
		list := append([]notify.Attempt(nil), o.list...)
		ch := o.changed
		o.mu.Unlock()
		if pred(list) {
			return list
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %s; attempts so far: %+v", waitMax, what, list)
		}
	}
}

// count counts attempts with the outcome, of the notify ids accepted by
// match (nil: all).
func count(list []notify.Attempt, outcome notify.Outcome, match func(string) bool) int {
	n := 0
	for _, a := range list {
		if a.Outcome == outcome && (match == nil || match(a.NotifyID)) {
			n++
		}
	}
	return n
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
