package http_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"zhifu"
	"zhifu/admission"
	zhttp "zhifu/http"
	"zhifu/ledger"
	"zhifu/sqlite"
)

// Every registered route has a row in the admission table (NewServer panics
// on one without), and every row is a registered route; only the probes go
// unlimited.
func TestEveryRouteHasAClass(t *testing.T) {
	mux := zhttp.Routes(routeServer())
	for _, p := range zhttp.RouteClasses() {
		if p == "/" {
			continue
		}
		if _, got := mux.Handler(exampleRequest(p)); got != p {
			t.Errorf("admission table row %q is not a registered route (served by %q)", p, got)
		}
	}
	// Every route literal the server registers has a row (those built by
	// concatenation are caught by NewServer's panic in routeServer).
	for _, p := range patternLiterals(t) {
		if _, got := mux.Handler(exampleRequest(p)); got == p && !slices.Contains(zhttp.RouteClasses(), p) {
			t.Errorf("route %q is registered without a row in the admission table", p)
		}
	}
	// And every route is registered through the admission wrapper: a
	// route put on the mux directly would bypass it unseen.
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		b, _ := os.ReadFile(name)
		if name != "admission.go" && !strings.HasSuffix(name, "_test.go") &&
			(strings.Contains(string(b), "mux.HandleFunc(") || strings.Contains(string(b), "mux.Handle(")) {
			t.Errorf("%s puts a route on the mux directly: register it with s.handleFunc or s.handle", name)
		}
	}
	var probes []string
	for _, p := range zhttp.RouteClasses() {
		if zhttp.IsProbe(p) {
			probes = append(probes, p)
		}
	}
	if len(probes) != 3 {
		t.Errorf("probes %v, want exactly GET /healthz, /readyz and /metrics", probes)
	}
}

// newEdgeServer is a test server with its admission and timeouts set.
func newEdgeServer(t *testing.T, set func(*zhttp.Config)) *testServer {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{db: db, batcher: ledger.NewBatcher(db, time.Now), logs: &syncBuffer{}}
	cfg := zhttp.Config{Addr: "127.0.0.1:0", Ledger: db, Batcher: ts.batcher, AdminToken: testToken,
		Logger: slog.New(slog.NewTextHandler(ts.logs, nil)), Clock: zhifu.SystemClock{}}
	set(&cfg)
	ts.Server = zhttp.NewServer(cfg)
	if err := ts.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ts.Close(ctx)
		ts.batcher.Close()
		db.Close()
	})
	return ts
}

// holdRequest starts an admin transfer whose body is held back, so the
// request keeps its slot until release is called.
func holdRequest(t *testing.T, ts *testServer) (release func()) {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := nethttp.NewRequest("POST", ts.URL()+"/v1/admin/ledger/transfers", pr)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	// The client sends the body once the handler reads it: past admission.
	got100 := make(chan struct{})
	client := &nethttp.Client{Transport: &nethttp.Transport{ExpectContinueTimeout: time.Minute}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	go func() {
		pw.Write([]byte(`{"transfers":`)) // blocks until the handler reads
		close(got100)
	}()
	<-got100
	return func() {
		pw.Write([]byte(`[]}`))
		pw.Close()
		<-done
	}
}

// At a limit of one, with one request in progress: queries wait their
// class's time and are refused 503 SYSTEM_BUSY with Retry-After; probes are
// answered; the metrics count it all; the log says so once.
func TestLimiterSheds(t *testing.T) {
	ts := newEdgeServer(t, func(c *zhttp.Config) {
		c.Admission.Limiter = admission.Config{Gradient: admission.GradientConfig{Initial: 1, Min: 1, Max: 1},
			QueueWaitMax: [admission.Classes]time.Duration{admission.Change: 20 * time.Millisecond,
				admission.Query: 20 * time.Millisecond}}
	})
	release := holdRequest(t, ts)
	for range 6 {
		resp := ts.do(t, "GET", "/v1/admin/ledger/accounts/1", testToken, nil)
		wantError(t, resp, 503, zhifu.SystemBusy, "")
		if got := resp.header.Get("Retry-After"); got != "1" {
			t.Fatalf("Retry-After = %q, want 1", got)
		}
	}
	if resp := ts.do(t, "GET", "/healthz", "", nil); resp.status != 200 {
		t.Fatalf("healthz under overload = %d, want 200", resp.status)
	}
	metrics := string(ts.do(t, "GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`zhifu_admission_shed_total{class="query",reason="queue_timeout"} 6`,
		`zhifu_admission_queued_total{class="query"} 6`,
		`zhifu_admission_admitted_total{class="change"} 1`,
		`zhifu_admission_in_flight{class="change"} 1`,
		`zhifu_admission_limit 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	release()
	if n := strings.Count(ts.logs.String(), "request shed"); n != 1 {
		t.Errorf("%d shed log lines for six refusals within a second, want 1", n)
	}
	ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200)
}

// An unauthenticated client address past its bucket is refused 429
// RATE_LIMITED with Retry-After, before anything else is done.
func TestAddressRate(t *testing.T) {
	ts := newEdgeServer(t, func(c *zhttp.Config) {
		c.Admission.Address = admission.Rate{PerSecond: 0.5, Burst: 2}
	})
	for range 2 {
		if resp := ts.do(t, "GET", "/openapi.json", "", nil); resp.status != 200 {
			t.Fatalf("within the burst: %d", resp.status)
		}
	}
	resp := ts.do(t, "GET", "/openapi.json", "", nil)
	wantError(t, resp, 429, zhifu.RateLimited, "")
	if got := resp.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (a token every 2 s)", got)
	}
	// The operator has no bucket.
	for range 3 {
		ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200)
	}
}

// A client that sends its headers slowly is cut once the header timeout
// passes, without an answer to wait for.
func TestSlowClientCut(t *testing.T) {
	ts := newEdgeServer(t, func(c *zhttp.Config) { c.ReadHeaderTimeout = 100 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// Half a request, and then nothing: slowloris.
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: zhifu.test\r\nX-Slow: 1")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on the test, not a wait
	rest, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", time.Since(start))
	}
	if strings.Contains(string(rest), "200 OK") {
		t.Fatalf("a half-sent request was answered: %q", rest)
	}
	t.Logf("cut after %v", time.Since(start))
}

// The connections open at once are bounded: with two held, a third is not
// served until one of them closes.
func TestConnectionsBounded(t *testing.T) {
	ts := newEdgeServer(t, func(c *zhttp.Config) { c.ConnsMax = 2 })
	addr := strings.TrimPrefix(ts.URL(), "http://")
	get := func(conn net.Conn) (*nethttp.Response, error) {
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: zhifu.test\r\n\r\n")); err != nil {
			return nil, err
		}
		return nethttp.ReadResponse(bufio.NewReader(conn), nil)
	}
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if resp, err := get(conn); err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection: %v %v", resp, err)
		}
		held = append(held, conn)
	}
	third, err := net.Dial("tcp", addr) // the kernel's backlog takes it
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	answered := make(chan error, 1)
	go func() {
		resp, err := get(third)
		if err == nil && resp.StatusCode != 200 {
			err = errors.New(resp.Status)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("a third connection was served while two were open (%v)", err)
	case <-time.After(200 * time.Millisecond): // a negative check needs a bound
	}
	held[0].Close()
	if err := <-answered; err != nil {
		t.Fatalf("third connection after one closed: %v", err)
	}
}
