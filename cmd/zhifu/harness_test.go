package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu/postgres"
)

// The end-to-end harness: the real program (Main) on port 0, over a fresh
// SQLite file or a fresh PostgreSQL database, driven over real HTTP. Every
// end-to-end test of the API runs through forEachStore so it runs on both.

// manualClock is a clock tests move by hand, so timers that wait days run
// in milliseconds.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is one running platform.
type env struct {
	t     *testing.T
	m     *testMain
	url   string
	token string // admin
	clock *manualClock
}

// forEachStore runs fn as a subtest on SQLite and on PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { fn(t, newEnv(t, backend)) })
	}
}

// testDatabase returns the --db of a fresh database of the backend: an
// SQLite file in dir, or a new PostgreSQL database (on ZHIFU_TEST_POSTGRES,
// else the local server) dropped when the test ends.
func testDatabase(t testing.TB, dir, backend string) string {
	t.Helper()
	if backend != "postgres" {
		return "sqlite://" + filepath.Join(dir, "zhifu.db")
	}
	base := postgres.DefaultTestURL
	if u := testGetenv("ZHIFU_TEST_POSTGRES"); u != "" {
		base = u
	}
	u, drop, err := postgres.CreateTestDatabase(context.Background(), base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s (set ZHIFU_TEST_POSTGRES): %v", base, err)
	}
	t.Cleanup(drop)
	return u
}

// benchDatabase is testDatabase for benchmarks, which may start on a
// prepared ledger history (zhifu bench prepare) instead of an empty
// database: ZHIFU_BENCH_HISTORY_SQLITE names a prepared SQLite file, copied
// for the run, and ZHIFU_BENCH_HISTORY_POSTGRES a prepared PostgreSQL
// database, copied as a template. The history's accounts are clear of the
// platform's, so the platform runs on it as on a database of its own.
func benchDatabase(b testing.TB, dir, backend string) string {
	b.Helper()
	switch {
	case backend == "sqlite" && testGetenv("ZHIFU_BENCH_HISTORY_SQLITE") != "":
		path := filepath.Join(dir, "zhifu.db")
		if err := copyFile(testGetenv("ZHIFU_BENCH_HISTORY_SQLITE"), path); err != nil {
			b.Fatalf("ZHIFU_BENCH_HISTORY_SQLITE: %v", err)
		}
		return "sqlite://" + path
	case backend == "postgres" && testGetenv("ZHIFU_BENCH_HISTORY_POSTGRES") != "":
		base := postgres.DefaultTestURL
		if u := testGetenv("ZHIFU_TEST_POSTGRES"); u != "" {
			base = u
		}
		u, drop, err := postgres.CreateTestDatabaseFrom(context.Background(), base, testGetenv("ZHIFU_BENCH_HISTORY_POSTGRES"))
		if err != nil {
			b.Fatalf("ZHIFU_BENCH_HISTORY_POSTGRES: %v", err)
		}
		b.Cleanup(drop)
		return u
	}
	return testDatabase(b, dir, backend)
}

// copyFile copies a closed SQLite database (one file: its WAL checkpointed
// into it at close) to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// newEnv starts the platform on a fresh database of the given backend, with
// a manual clock starting at the real time.
func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, backend)
	clock := &manualClock{now: time.Now().UTC()}
	// The tests' merchants receive notifications on 127.0.0.1, which
	// PostgreSQL's default refuses.
	tm := newTestMain(harnessEnv)
	tm.Clock = clock
	serveTestMain(t, tm, "--data", dir, "--db", db)
	return &env{t: t, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock}
}

// request sends one request and returns the status, headers and body.
func (e *env) request(method, path string, header http.Header, body string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// jsonBody turns a value (or a string taken as it is) into a request body.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	switch b := v.(type) {
	case nil:
		return ""
	case string:
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode(t *testing.T, b []byte, out any) {
	t.Helper()
	if out == nil || len(b) == 0 {
		return
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// bearer calls with a bearer token (admin or user); out receives the JSON.
func (e *env) bearer(token, method, path string, body, out any) int {
	e.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	status, _, b := e.request(method, path, h, jsonBody(e.t, body))
	decode(e.t, b, out)
	return status
}

// admin calls as the operator.
func (e *env) admin(method, path string, body, out any) int {
	e.t.Helper()
	return e.bearer(e.token, method, path, body, out)
}

// merchantKey is what a merchant signs with.
type merchantKey struct{ id, secret string }

// signMerchant returns API.md's Authorization header for a merchant request.
func signMerchant(k merchantKey, method, pathAndQuery, body string, ts time.Time, nonce string) string {
	msg := fmt.Sprintf("%s\n%s\n%d\n%s\n%s\n", method, pathAndQuery, ts.Unix(), nonce, body)
	mac := hmac.New(sha256.New, []byte(k.secret))
	mac.Write([]byte(msg))
	return fmt.Sprintf("ZHIFU-HMAC-SHA256 merchant_id=%s,timestamp=%d,nonce=%s,signature=%s",
		k.id, ts.Unix(), nonce, base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

func newNonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// merchant calls as a merchant, signed with the platform's clock time.
func (e *env) merchant(k merchantKey, method, path string, body, out any) int {
	e.t.Helper()
	s := jsonBody(e.t, body)
	h := http.Header{"Authorization": {signMerchant(k, method, path, s, e.clock.Now(), newNonce())}}
	status, _, b := e.request(method, path, h, s)
	decode(e.t, b, out)
	return status
}

// errorCode extracts the API error code from a decoded error body.
func errorCode(v map[string]any) string {
	if e, ok := v["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// query escapes one query parameter.
func query(k, v string) string { return k + "=" + url.QueryEscape(v) }

// testGetenv reads the real environment (newTestMain's Getenv is a map).
var testGetenv = os.Getenv
