package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu"
	zhttp "zhifu/http"
	"zhifu/ledger"
	"zhifu/sqlite"
)

const testToken = "test-admin-token-5f2c9a"

// testServer is a real server on port 0 over a real SQLite database.
type testServer struct {
	*zhttp.Server
	db      *sqlite.DB
	batcher *ledger.Batcher
	logs    *syncBuffer
}

// syncBuffer collects log output written from many goroutines.
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

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{db: db, batcher: ledger.NewBatcher(db, time.Now), logs: &syncBuffer{}}
	ts.Server = zhttp.NewServer(zhttp.Config{
		Addr:       "127.0.0.1:0",
		Ledger:     db,
		Batcher:    ts.batcher,
		AdminToken: testToken,
		Logger:     slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:      zhifu.SystemClock{},
	})
	if err := ts.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ts.Close(ctx); err != nil {
			t.Error(err)
		}
		ts.batcher.Close()
		db.Close()
		if strings.Contains(ts.logs.String(), testToken) {
			t.Error("the admin token appears in the log")
		}
	})
	return ts
}

type response struct {
	status int
	header nethttp.Header
	body   []byte
}

// do sends a request. body is sent as is when it is a string or []byte and
// as JSON otherwise; token "" sends no Authorization header.
func (ts *testServer) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	h := nethttp.Header{}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return ts.doWith(t, method, path, token, h, body)
}

// doWith is do with the request headers given.
func (ts *testServer) doWith(t *testing.T, method, path, token string, h nethttp.Header, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := nethttp.NewRequest(method, ts.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// admin sends an authenticated request and wants status.
func (ts *testServer) admin(t *testing.T, method, path string, body any, status int) response {
	t.Helper()
	resp := ts.do(t, method, path, testToken, body)
	if resp.status != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.status, status, resp.body)
	}
	return resp
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

type apiError struct {
	Error struct {
		Code, Message, Param string
	}
}

// wantError checks the API's error shape, and Retry-After where API.md
// requires it.
func wantError(t *testing.T, resp response, status int, code, param string) {
	t.Helper()
	if resp.status != status {
		t.Errorf("status = %d, want %d; body %s", resp.status, status, resp.body)
	}
	e := decode[apiError](t, resp.body)
	if e.Error.Code != code || e.Error.Param != param {
		t.Errorf("error = %s/%q, want %s/%q; message %q", e.Error.Code, e.Error.Param, code, param, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Error("error message is empty")
	}
	if status == 429 || status == 503 {
		if resp.header.Get("Retry-After") == "" {
			t.Error("no Retry-After on a", status)
		}
	}
}

func TestHealthz(t *testing.T) {
	ts := newTestServer(t)
	resp := ts.do(t, "GET", "/healthz", "", nil)
	if resp.status != 200 || string(resp.body) != "ok" {
		t.Errorf("healthz = %d %q, want 200 ok", resp.status, resp.body)
	}
}

func TestReadyz(t *testing.T) {
	ts := newTestServer(t)
	if resp := ts.do(t, "GET", "/readyz", "", nil); resp.status != 200 {
		t.Fatalf("readyz = %d, want 200", resp.status)
	}
	t.Run("store unreachable", func(t *testing.T) {
		ts := newTestServer(t)
		ts.db.Close()
		wantError(t, ts.do(t, "GET", "/readyz", "", nil), 503, zhifu.SystemBusy, "")
	})
	t.Run("shutting down", func(t *testing.T) {
		ts := newTestServer(t)
		if err := ts.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		wantError(t, response{w.Code, w.Header(), w.Body.Bytes()}, 503, zhifu.SystemBusy, "")
	})
}

func TestUnknownRoute(t *testing.T) {
	ts := newTestServer(t)
	wantError(t, ts.do(t, "GET", "/v1/nothing-here", "", nil), 404, zhifu.NotFound, "")
}

func TestAdminAuth(t *testing.T) {
	ts := newTestServer(t)
	routes := []struct{ method, path string }{
		{"POST", "/v1/admin/ledger/accounts"},
		{"POST", "/v1/admin/ledger/transfers"},
		{"GET", "/v1/admin/ledger/accounts/1"},
		{"GET", "/v1/admin/ledger/accounts/1/entries"},
		{"GET", "/v1/admin/ledger/check"},
	}
	headers := map[string]string{
		"missing":      "",
		"wrong token":  "Bearer not-the-token",
		"token prefix": "Bearer " + testToken[:len(testToken)-1],
		"token suffix": "Bearer " + testToken + "x",
		"empty bearer": "Bearer ",
		"basic scheme": "Basic " + testToken,
		"bare token":   testToken,
	}
	for _, rt := range routes {
		for name, h := range headers {
			t.Run(rt.method+" "+rt.path+"/"+name, func(t *testing.T) {
				req, _ := nethttp.NewRequest(rt.method, ts.URL()+rt.path, strings.NewReader(`{}`))
				if h != "" {
					req.Header.Set("Authorization", h)
				}
				resp, err := nethttp.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				wantError(t, response{resp.StatusCode, resp.Header, b}, 401, zhifu.Unauthorized, "")
			})
		}
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		req, _ := nethttp.NewRequest("GET", ts.URL()+"/v1/admin/ledger/check", nil)
		req.Header.Set("Authorization", "bearer "+testToken)
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status = %d, want 200", resp.StatusCode)
		}
	})
}

func TestNoAdminTokenRefusesAll(t *testing.T) {
	s := zhttp.NewServer(zhttp.Config{})
	for _, h := range []string{"", "Bearer ", "Bearer x"} {
		req := httptest.NewRequest("GET", "/v1/admin/ledger/check", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != 401 {
			t.Errorf("Authorization %q: status %d, want 401", h, w.Code)
		}
	}
}

// TestStatusOfEveryCode reads the codes from zhifu/error.go, so that a code
// added there without a row in the status table fails here.
func TestStatusOfEveryCode(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "error.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		if v, ok := n.(*ast.ValueSpec); ok && len(v.Values) == 1 {
			if lit, ok := v.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				c, _ := strconv.Unquote(lit.Value)
				codes = append(codes, c)
			}
		}
		return true
	})
	if len(codes) < 20 {
		t.Fatalf("found only %d codes in error.go", len(codes))
	}
	for _, c := range codes {
		if got := zhttp.StatusOf(c); got == 500 && c != zhifu.SystemError {
			t.Errorf("StatusOf(%s) = 500: no row in the status table", c)
		}
	}
	want := map[string]int{
		zhifu.InvalidAmount: 400, zhifu.LedgerRejected: 400, zhifu.Unauthorized: 401,
		zhifu.InvalidSignature: 401, zhifu.CardNotFound: 404, zhifu.TradeHasSuccess: 409,
		zhifu.RequestTooLarge: 413, zhifu.IdempotencyKeyReused: 422, zhifu.RateLimited: 429,
		zhifu.SystemError: 500, zhifu.ChannelUnavailable: 503, "NO_SUCH_CODE": 500,
	}
	for c, s := range want {
		if got := zhttp.StatusOf(c); got != s {
			t.Errorf("StatusOf(%s) = %d, want %d", c, got, s)
		}
	}
}

// TestStoreFailureIsSystemError: an error the server cannot classify is a
// generic 500 for the client and the detail for the log.
func TestStoreFailureIsSystemError(t *testing.T) {
	ts := newTestServer(t)
	ts.db.Close()
	resp := ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 500)
	wantError(t, resp, 500, zhifu.SystemError, "")
	if bytes.Contains(resp.body, []byte("sql")) {
		t.Errorf("500 body leaks the detail: %s", resp.body)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "request failed") || !strings.Contains(logs, "closed") {
		t.Errorf("log lacks the failure's detail:\n%s", logs)
	}
}

func TestBatcherClosedIsBusy(t *testing.T) {
	ts := newTestServer(t)
	createAccounts(t, ts, account("1", "CNY", 1), account("2", "CNY", 10))
	ts.batcher.Close()
	resp := ts.admin(t, "POST", "/v1/admin/ledger/transfers", transfers(transfer("t1", "2", "1", "1.00")), 503)
	wantError(t, resp, 503, zhifu.SystemBusy, "")
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t)
	createAccounts(t, ts, account("1", "CNY", 1), account("2", "CNY", 10))
	postTransfers(t, ts, transfer("t1", "2", "1", "1.00"))
	ts.do(t, "GET", "/v1/admin/ledger/check", "", nil) // 401
	resp := ts.do(t, "GET", "/metrics", "", nil)
	if resp.status != 200 {
		t.Fatalf("metrics status %d", resp.status)
	}
	for _, want := range []string{
		`zhifu_http_requests_total{route="POST /v1/admin/ledger/transfers",status="200"} 1`,
		`zhifu_http_requests_total{route="GET /v1/admin/ledger/check",status="401"} 1`,
		`zhifu_http_request_duration_seconds_bucket{route="POST /v1/admin/ledger/accounts",status="200",le="+Inf"} 1`,
		"zhifu_ledger_batches_total 2", // the transfers, and the audit line of the accounts made outside the batcher
		"zhifu_ledger_transfers_total 1",
		"zhifu_ledger_last_batch_size 1",
		"zhifu_ledger_queue_rejections_total 0",
		"zhifu_ledger_commit_seconds_total ",
		"go_goroutines ",
	} {
		if !bytes.Contains(resp.body, []byte(want)) {
			t.Errorf("metrics lack %q:\n%s", want, resp.body)
		}
	}
}

// TestCloseFinishesInFlight sends a request whose body is still arriving
// when Close begins: the listener closes, but the request completes.
func TestCloseFinishesInFlight(t *testing.T) {
	ts := newTestServer(t)
	createAccounts(t, ts, account("1", "CNY", 1), account("2", "CNY", 10))

	shutdown := make(chan struct{})
	ts.OnShutdown(func() { close(shutdown) })
	pr, pw := io.Pipe()
	req, _ := nethttp.NewRequest("POST", ts.URL()+"/v1/admin/ledger/transfers", pr)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	// With Expect: 100-continue the client sends the body only once the
	// handler starts reading it, so the request is surely in flight.
	req.Header.Set("Expect", "100-continue")
	client := &nethttp.Client{Transport: &nethttp.Transport{ExpectContinueTimeout: time.Minute}}
	type result struct {
		resp *nethttp.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		done <- result{resp, err}
	}()
	body, _ := json.Marshal(transfers(transfer("t1", "2", "1", "5.00")))
	half := len(body) / 2
	if _, err := pw.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- ts.Close(context.Background()) }()
	<-shutdown
	if _, err := net.Dial("tcp", strings.TrimPrefix(ts.URL(), "http://")); err == nil {
		t.Error("a new connection was accepted after Close began")
	}
	if _, err := pw.Write(body[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("in-flight request failed: %v", r.err)
	}
	b, _ := io.ReadAll(r.resp.Body)
	r.resp.Body.Close()
	if r.resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"result":"ok"`)) {
		t.Errorf("in-flight request = %d %s, want 200 ok", r.resp.StatusCode, b)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
}
