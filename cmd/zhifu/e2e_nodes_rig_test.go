package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The several-nodes harness: "zhifu banksim" in its own process, N
// "zhifu serve" processes, each with its own data folder and port, on one
// PostgreSQL database, behind HAProxy; a merchant's notification receiver
// in the test; and clients that follow the API's retry rules.

// needTools fails the test, naming the Debian packages, when a program it
// runs is missing.
func needTools(t testing.TB, tools map[string]string) {
	t.Helper()
	var missing, pkgs []string
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
			pkgs = append(pkgs, pkg)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("this test runs %s, not found: install the Debian packages %s (apt-get install -y %s)",
			strings.Join(missing, ", "), strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
	}
}

// freePort returns a port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// nodesRig is the processes of a several-node platform.
type nodesRig struct {
	t          *testing.T
	dir, db    string
	adminToken string
	capacity   string // --bank-capacity of every node
	banks      *child
	banksURL   string
	lbURL      string
	lb         *exec.Cmd
	lbDone     chan error
	nodes      []*nodeProc
	extra      []string // more flags for every node

	mu   sync.Mutex
	logs []*syncBuffer
}

// nodeProc is one node's slot: its port and data folder, and the process
// now running there.
type nodeProc struct {
	i          int
	addr, data string
	mu         sync.Mutex
	c          *child
	starts     int
}

func (n *nodeProc) child() *child {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c
}

// newNodesRig starts the banks, HAProxy in front of n node slots, and the
// nodes, on db.
func newNodesRig(t *testing.T, db string, n int, capacity string, extra ...string) *nodesRig {
	t.Helper()
	needTools(t, map[string]string{"haproxy": "haproxy"})
	r := &nodesRig{t: t, dir: t.TempDir(), db: db, adminToken: "nodes-admin-token", capacity: capacity, extra: extra}
	c, err := startChild(t, banksimListeningRE, "banksim", "--addr", "127.0.0.1:0", "--db",
		filepath.Join(r.dir, "banks.db"), "--control-token", "nodes-control", "--secrets", crashSecrets)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.log.String())
	}
	r.banks, r.banksURL = c, c.url
	for i := range n {
		data := filepath.Join(r.dir, fmt.Sprintf("node%d", i+1))
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		r.nodes = append(r.nodes, &nodeProc{i: i, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), data: data})
	}
	r.startLB()
	for _, np := range r.nodes {
		r.serve(np)
	}
	r.waitLB(n)
	return r
}

// haproxyConfig sends each request to a node that answers /readyz,
// checked every 200 ms (two failures take it out, one success back). A request whose connection a node refused goes to
// another (redispatch); one a node cut off mid-way is answered 502, and
// the client retries it with its key. Every request gets its own server
// connection, so that no request is lost to a connection the node closed
// while idle.
const haproxyConfig = `global
	maxconn 4096
defaults
	mode http
	timeout connect 1s
	timeout client 120s
	timeout server 120s
	timeout queue 10s
	timeout check 2s
	retries 3
	option redispatch 1
	option http-server-close
frontend zhifu
	bind 127.0.0.1:%d
	default_backend nodes
backend nodes
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server inter 200ms fastinter 200ms downinter 200ms fall 2 rise 1
%s`

func (r *nodesRig) startLB() {
	t := r.t
	port := freePort(t)
	var servers strings.Builder
	for _, np := range r.nodes {
		fmt.Fprintf(&servers, "\tserver n%d %s check\n", np.i+1, np.addr)
	}
	cfg := filepath.Join(r.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, port, servers.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r.lb = exec.Command("haproxy", "-f", cfg, "-db")
	log := &syncBuffer{}
	r.lb.Stdout, r.lb.Stderr = log, log
	if err := r.lb.Start(); err != nil {
		t.Fatal(err)
	}
	r.lbDone = make(chan error, 1)
	go func() { r.lbDone <- r.lb.Wait() }()
	t.Cleanup(func() {
		r.lb.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.lbDone:
		case <-time.After(10 * time.Second):
			r.lb.Process.Kill()
		}
	})
	r.lbURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-r.lbDone:
			t.Fatalf("haproxy exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen: %v\n%s", err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLB waits until HAProxy has sent requests to n different nodes.
func (r *nodesRig) waitLB(n int) {
	seen := map[string]bool{}
	deadline := time.Now().Add(startTimeout)
	for len(seen) < n {
		resp, err := http.Get(r.lbURL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				seen[resp.Header.Get("Zhifu-Node")] = true
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("HAProxy reached %d nodes in %v, want %d", len(seen), startTimeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve starts the node of slot np (again); should its port be taken
// for a moment, it tries again.
func (r *nodesRig) serve(np *nodeProc) {
	t := r.t
	args := []string{"serve", "--addr", np.addr, "--data", np.data, "--db", r.db, "--admin-token", r.adminToken,
		"--banks-url", r.banksURL, "--banks-secrets", crashSecrets, "--public-url", r.lbURL,
		"--bank-capacity", r.capacity, "--notify-allow-cidrs", "127.0.0.0/8"}
	args = append(args, r.extra...)
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := startChild(t, listeningRE, args...)
		r.mu.Lock()
		r.logs = append(r.logs, c.log)
		r.mu.Unlock()
		if err == nil {
			np.mu.Lock()
			np.c = c
			np.starts++
			np.mu.Unlock()
			return
		}
		if !strings.Contains(c.log.String(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("zhifu serve: %v\n%s", err, c.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill sends SIGKILL to the slot's node and waits until it is gone.
func (r *nodesRig) kill(np *nodeProc) {
	c := np.child()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	<-c.exited
}

// stop sends SIGTERM to the slot's node and returns its exit code.
func (r *nodesRig) stop(np *nodeProc) int { return np.child().stop(r.t) }

// stopAll stops every node, then the banks, failing on an unclean exit.
func (r *nodesRig) stopAll() {
	for _, np := range r.nodes {
		if code := r.stop(np); code != 0 {
			r.t.Errorf("node %d exited %d after SIGTERM", np.i+1, code)
		}
	}
}

// logErrors fails the test on what must never be logged, and shows the
// first errors logged.
func (r *nodesRig) logErrors() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lines []string
	for _, l := range r.logs {
		for line := range strings.SplitSeq(l.String(), "\n") {
			switch {
			case strings.Contains(line, "unknown transaction"), strings.Contains(line, "would leave final status"):
				r.t.Errorf("a node logged: %s", line)
			case strings.Contains(line, "level=ERROR"), strings.Contains(line, "signature refused"):
				lines = append(lines, line)
			}
		}
	}
	if len(lines) > 0 {
		r.t.Logf("the nodes logged %d errors, the first:\n%s", len(lines), strings.Join(lines[:min(len(lines), 10)], "\n"))
	}
}

// receiver is a merchant's notification endpoint: it records every
// notification and answers success.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]notice // notify_id → the first copy
	n   atomic.Int64      // copies, duplicates included
}

type notice struct{ tradeNo, status string }

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{got: map[string]notice{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			NotifyID string `json:"notify_id"`
			Trade    struct {
				TradeNo string `json:"trade_no"`
				Status  string `json:"status"`
			} `json:"trade"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.NotifyID == "" {
			http.Error(w, "bad notification", 400)
			return
		}
		rc.n.Add(1)
		rc.mu.Lock()
		if _, ok := rc.got[body.NotifyID]; !ok {
			rc.got[body.NotifyID] = notice{tradeNo: body.Trade.TradeNo, status: body.Trade.Status}
		}
		rc.mu.Unlock()
		w.Write([]byte("success"))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) snapshot() map[string]notice {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]notice, len(rc.got))
	for k, v := range rc.got {
		out[k] = v
	}
	return out
}

// retrier sends requests as the API's retry rules say: a request that got
// no answer, a SYSTEM_ERROR, a 502/504 from the load balancer or
// IDEMPOTENCY_KEY_IN_USE is sent again with the same Idempotency-Key; 503
// and 429 after their Retry-After. It counts what it met.
type retrier struct {
	url    string
	cl     *http.Client
	budget time.Duration // how long one request may take, retries and all
	abort  atomic.Bool

	mu     sync.Mutex
	counts map[string]int64 // "transport", "500", "502", "503", …
}

func newRetrier(url string) *retrier {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	return &retrier{url: url, cl: &http.Client{Transport: tr, Timeout: time.Minute}, budget: 3 * time.Minute,
		counts: map[string]int64{}}
}

func (rt *retrier) count(what string) {
	rt.mu.Lock()
	rt.counts[what]++
	rt.mu.Unlock()
}

// takeCounts returns what was met since the last call.
func (rt *retrier) takeCounts() map[string]int64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := rt.counts
	rt.counts = map[string]int64{}
	return out
}

// retryAfterCap bounds a wait for Retry-After, so that the tests stay
// short; the platform's hints are a few seconds.
const retryAfterCap = time.Second

// send sends one request until it gets a final answer: auth makes the
// Authorization header for each attempt (a merchant's signature is made
// anew). It returns the status and body of that answer.
func (rt *retrier) send(method, path string, auth func(body string) string, key string, body any) (int, map[string]any, error) {
	b := jsonBodyNoT(body)
	deadline := time.Now().Add(rt.budget)
	for attempt := 1; ; attempt++ {
		if rt.abort.Load() {
			return 0, nil, errors.New("aborted")
		}
		if attempt > 1 && time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("%s %s (key %s): no final answer in %v, %d attempts", method, path, key, rt.budget, attempt-1)
		}
		req, err := http.NewRequest(method, rt.url+path, strings.NewReader(b))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if a := auth(b); a != "" {
			req.Header.Set("Authorization", a)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := rt.cl.Do(req)
		if err != nil {
			rt.count("transport")
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var out map[string]any
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		json.Unmarshal(raw, &out)
		code := errorCode(out)
		switch {
		case resp.StatusCode == 500, resp.StatusCode == 502, resp.StatusCode == 504:
			rt.count(strconv.Itoa(resp.StatusCode))
			time.Sleep(20 * time.Millisecond)
			continue
		case resp.StatusCode == 503, resp.StatusCode == 429:
			rt.count(strconv.Itoa(resp.StatusCode) + " " + code)
			wait := 50 * time.Millisecond
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = min(time.Duration(s)*time.Second, retryAfterCap)
			}
			time.Sleep(wait)
			continue
		case resp.StatusCode == 409 && code == "IDEMPOTENCY_KEY_IN_USE":
			rt.count("409 in use")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if attempt > 1 {
			rt.count("answered after a retry")
		}
		return resp.StatusCode, out, nil
	}
}

func bearerAuth(token string) func(string) string {
	return func(string) string { return "Bearer " + token }
}

// merchantAuth signs each attempt anew (nonces are single-use).
func merchantAuth(k merchantKey, method, path string) func(string) string {
	return func(body string) string { return signMerchant(k, method, path, body, time.Now(), newNonce()) }
}

// pgQuery runs a query on the platform's database from the test.
func pgRows(t *testing.T, db, query string, args ...any) [][]string {
	t.Helper()
	st, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Reader().Query(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		var a, b, c string
		if err := rows.Scan(&a, &b, &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, []string{a, b, c})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
