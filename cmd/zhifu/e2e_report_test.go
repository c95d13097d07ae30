package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/banksim"
	"zhifu/channel"
	"zhifu/internal/testkit"
	"zhifu/report"
)

// The banks' monthly report end to end: a month of top-ups, withdrawals
// and card payments through the real platform and its in-process banks,
// CMB collapsing for an hour on the 15th; then the report over HTTP as
// JSON, CSV and HTML, the HTML opened in a real headless Chromium, its
// screenshot kept, and the numbers of its DOM checked against the raw call
// records and bank transactions in the database.

// rpChina is the zone the report counts months in.
var rpChina = time.FixedZone("UTC+8", 8*60*60)

// chromiumPath is Debian's chromium package.
const chromiumPath = "/usr/bin/chromium"

// driftClock is a clock the test sets by hand that also runs with real
// time from where it was set, so a bank call's latency (real time on the
// wire) shows on it while whole days pass in a moment.
type driftClock struct {
	mu   sync.Mutex
	base time.Time
	at   time.Time
}

func (c *driftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.at))
}

// Advance moves the clock forward by d.
func (c *driftClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.base = c.base.Add(d)
	c.mu.Unlock()
}

// SetForward moves the clock to t, if t is ahead.
func (c *driftClock) SetForward(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.base.Add(time.Since(c.at)); t.After(now) {
		c.base, c.at = t, time.Now()
	}
}

// rpEnv is the platform of the report test.
type rpEnv struct {
	*chEnv
	drift *driftClock
	db    string
}

// sync sets the merchants' signing clock (env.clock) to the platform's.
func (e *rpEnv) sync() {
	e.clock.mu.Lock()
	e.clock.now = e.drift.Now()
	e.clock.mu.Unlock()
}

func (e *rpEnv) advance(d time.Duration) {
	e.drift.Advance(d)
	e.sync()
}

// settle moves the clock by step until every bank transaction is final.
func (e *rpEnv) settle(t *testing.T) {
	t.Helper()
	e.waitQuiet(5 * time.Second)
	for range 200 {
		if e.unresolved(t) == 0 {
			return
		}
		e.advance(5 * time.Second)
		e.waitQuiet(5 * time.Second)
		e.waitBanksDecided(t, 5*time.Second)
	}
	t.Fatalf("%d bank transactions unresolved", e.unresolved(t))
}

func newReportEnv(t *testing.T, backend string, start time.Time) *rpEnv {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, backend)
	drift := &driftClock{base: start, at: time.Now()}
	tm := newTestMain(harnessEnv)
	tm.Clock = drift
	tm.ConfigureChannels = func(c *channel.Config) {
		c.CapacityDefault = 1e5
		c.CallTimeout = time.Second
	}
	tm.ConfigureBanks = func(c *banksim.Config) {
		c.Scenarios = banksim.Scenarios{Banks: map[string]banksim.Scenario{
			"ICBC": {Latency: banksim.Latency{MedianMs: 3, P99Ms: 12}},
			"CMB":  {Latency: banksim.Latency{MedianMs: 9, P99Ms: 30}},
			"CCB":  {Latency: banksim.Latency{MedianMs: 6, P99Ms: 20}},
		}}
	}
	serveTestMain(t, tm, "--data", dir, "--db", db)
	e := &env{t: t, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: &manualClock{now: drift.Now()}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	cl := &http.Client{Transport: tr, Timeout: time.Minute}
	t.Cleanup(func() {
		cl.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
		idClient.CloseIdleConnections()
	})
	ch := &chEnv{env: e, start: start, banks: tm.Banks, ch: tm.Channels, cl: cl}
	return &rpEnv{chEnv: ch, drift: drift, db: db}
}

// relogin gives each user a fresh session: a month outlasts a session.
func (e *rpEnv) relogin(t *testing.T, users []*chUser) {
	t.Helper()
	for _, u := range users {
		var sess struct {
			Token string `json:"token"`
		}
		s, _, b := e.request("POST", "/v1/sessions", nil, jsonBody(t, map[string]string{"login": u.login, "password": u.password}))
		if decode(t, b, &sess); sess.Token == "" {
			t.Fatalf("login %s: %d %s", u.login, s, b)
		}
		u.token = sess.Token
	}
}

func TestReportBankMonth(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("this test opens the report in headless Chromium, expected at %s: install Debian's chromium package (apt-get install chromium): %v",
			chromiumPath, err)
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { reportBankMonth(t, backend) })
	}
}

var (
	rpMonthStart = time.Date(2025, 3, 1, 0, 0, 0, 0, rpChina)
	rpMonthEnd   = rpMonthStart.AddDate(0, 1, 0)
	rpOutage     = time.Date(2025, 3, 15, 10, 0, 0, 0, rpChina)
)

func reportBankMonth(t *testing.T, backend string) {
	rng := rand.New(rand.NewPCG(testkit.Seed(t), 2))
	e := newReportEnv(t, backend, rpMonthStart.Add(-30*time.Minute))
	banks := []string{"ICBC", "CMB", "CCB"}
	users := e.newUsers(t, "rp", 3, banks, "")
	w := newTrWorld(t, e.env)
	for day := 1; day <= 31; day++ {
		e.drift.SetForward(time.Date(2025, 3, day, 9, 0, 0, 0, rpChina))
		e.sync()
		e.relogin(t, users)
		for i, bank := range banks {
			for j := range 2 {
				u := users[(i+j+day)%len(users)]
				amount := yuan(10_000 + rng.Int64N(500_000))
				if s, _, out, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": amount, "card_id": u.cards[bank]}, ""); err != nil || s != 201 {
					t.Fatalf("day %d top-up at %s: %d %v %v", day, bank, s, out, err)
				}
			}
			e.advance(7 * time.Second)
		}
		e.settle(t)
		for i, bank := range banks {
			u := users[(i+day)%len(users)]
			if s, _, out, err := e.do(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": yuan(1_000 + rng.Int64N(9_000)), "card_id": u.cards[bank]}, ""); err != nil || s != 202 {
				t.Fatalf("day %d withdrawal at %s: %d %v %v", day, bank, s, out, err)
			}
		}
		if day%3 == 0 {
			// A card payment of a trade, at each bank in turn.
			bank := banks[day/3%len(banks)]
			tradeNo := w.mustCreate(map[string]any{"total_amount": yuan(2_000 + rng.Int64N(20_000))})
			u := users[day%len(users)]
			if s, out := e.payTrade(t, u, tradeNo, map[string]string{"method": "card", "card_id": u.cards[bank]}); s != 200 && s != 202 {
				t.Fatalf("day %d card payment at %s: %d %v", day, bank, s, out)
			}
		}
		e.advance(time.Minute)
		e.settle(t)
		if day == 15 {
			cmbCollapses(t, e, users)
		}
	}
	e.drift.SetForward(rpMonthEnd.Add(30 * time.Minute))
	e.sync()
	e.settle(t)
	if err := e.ch.Calls().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := e.ch.Calls().Dropped(); d != 0 {
		t.Fatalf("%d call records dropped", d)
	}
	checkCallRecords(t, e)
	want := rpRaw(t, e)
	if want["CMB"].down < 55 {
		t.Fatalf("the raw records show CMB down %d minutes: the outage did not take", want["CMB"].down)
	}
	checkReportJSON(t, e, want)
	csvBody := checkReportCSV(t, e, want)
	checkReportCLI(t, e, csvBody)
	checkReportInChromium(t, e, backend, want)
}

// cmbCollapses takes CMB down for an hour of clock time from 10:00 on the
// 15th, sending it a top-up a minute meanwhile, and brings it back.
func cmbCollapses(t *testing.T, e *rpEnv, users []*chUser) {
	t.Helper()
	e.drift.SetForward(rpOutage)
	e.sync()
	sc, _ := e.banks.Scenario("CMB")
	down := sc
	down.Outage = banksim.OutageReject
	if err := e.banks.SetScenario("CMB", down); err != nil {
		t.Fatal(err)
	}
	e.relogin(t, users)
	for minute := range 60 {
		u := users[minute%len(users)]
		// Refused at once when the breaker is open; else sent, and failed.
		s, _, out, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "50.00", "card_id": u.cards["CMB"]}, "")
		if err != nil || s != 201 && s != 503 {
			t.Fatalf("top-up at CMB while down: %d %v %v", s, out, err)
		}
		for range 3 {
			e.waitQuiet(5 * time.Second)
			e.advance(20 * time.Second)
		}
	}
	e.drift.SetForward(rpOutage.Add(time.Hour))
	e.sync()
	if err := e.banks.SetScenario("CMB", sc); err != nil {
		t.Fatal(err)
	}
	e.advance(10 * time.Second)
	e.settle(t)
}

// checkCallRecords: every debit, credit and inquiry recorded names a bank
// transaction of the same bank, and each kind of call the month made is
// there, the refusals of CMB's outage among them (while its breaker is
// half-open, the top-ups it refused are sent again: those are its probes).
func checkCallRecords(t *testing.T, e *rpEnv) {
	t.Helper()
	ctx := context.Background()
	var orphans int64
	if err := e.m.store.Reader().QueryRow(ctx, `SELECT count(*) FROM bank_calls c WHERE c.kind IN ('debit', 'credit', 'inquiry')
		AND NOT EXISTS (SELECT 1 FROM bank_txns x WHERE x.txn_id = c.txn_id AND x.bank = c.bank)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d call records name no bank transaction of their bank", orphans)
	}
	rows, err := e.m.store.Reader().Query(ctx, `SELECT kind, outcome, count(*) FROM bank_calls GROUP BY kind, outcome`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int64{}
	for rows.Next() {
		var kind, outcome string
		var n int64
		if err := rows.Scan(&kind, &outcome, &n); err != nil {
			t.Fatal(err)
		}
		seen[kind+" "+outcome] = n
	}
	for _, k := range []string{"verify ok", "debit ok", "credit ok", "debit refused", "maintenance ok"} {
		if seen[k] == 0 {
			t.Errorf("no %s call recorded: %v", k, seen)
		}
	}
	t.Logf("calls recorded: %v", seen)
}

// rpBank is one bank's month computed from the raw rows.
type rpBank struct {
	calls, ok, down, busiestCalls, failed int64
	busiest                               time.Time
	p50, p95, p99                         int64
	txns                                  map[string][4]int64 // succeeded, failed, open, amount
}

// rpRaw reads every call record and bank transaction of the month and
// computes the report's figures from them, in Go.
func rpRaw(t *testing.T, e *rpEnv) map[string]*rpBank {
	t.Helper()
	ctx := context.Background()
	q := e.m.store.Reader()
	// Maintenance polls are left out of the report's figures.
	rows, err := q.Query(ctx, `SELECT bank, outcome, started_at, latency FROM bank_calls WHERE kind <> 'maintenance'`)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*rpBank)
	get := func(b string) *rpBank {
		if out[b] == nil {
			out[b] = &rpBank{txns: map[string][4]int64{}}
		}
		return out[b]
	}
	lat := map[string][]int64{}
	minutes := map[string]map[int64][2]int64{}
	for rows.Next() {
		var bank, outcome string
		var started, latency int64
		if err := rows.Scan(&bank, &outcome, &started, &latency); err != nil {
			t.Fatal(err)
		}
		at := time.Unix(0, started)
		if at.Before(rpMonthStart) || !at.Before(rpMonthEnd) {
			continue
		}
		b := get(bank)
		b.calls++
		m := minutes[bank]
		if m == nil {
			m = map[int64][2]int64{}
			minutes[bank] = m
		}
		v := m[at.Unix()/60]
		v[0]++
		if outcome == "ok" {
			b.ok++
			v[1]++
		} else {
			b.failed++
		}
		m[at.Unix()/60] = v
		lat[bank] = append(lat[bank], latency/int64(time.Millisecond))
	}
	rows.Close()
	for bank, ls := range lat {
		slices.Sort(ls)
		b := out[bank]
		nth := func(pct int) int64 { return ls[(pct*len(ls)+99)/100-1] }
		b.p50, b.p95, b.p99 = nth(50), nth(95), nth(99)
		for minute, v := range minutes[bank] {
			at := time.Unix(minute*60, 0)
			if v[1] == 0 && v[0] >= report.DownCallsMin {
				b.down++
			}
			if v[0] > b.busiestCalls || v[0] == b.busiestCalls && at.Before(b.busiest) {
				b.busiest, b.busiestCalls = at, v[0]
			}
		}
	}
	rows, err = q.Query(ctx, `SELECT bank, kind, method, trade_no, status, amount, created_at FROM bank_txns`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var bank, kind, method, tradeNo, status string
		var amount, created int64
		if err := rows.Scan(&bank, &kind, &method, &tradeNo, &status, &amount, &created); err != nil {
			t.Fatal(err)
		}
		if at := time.Unix(0, created); at.Before(rpMonthStart) || !at.Before(rpMonthEnd) {
			continue
		}
		k := map[string]string{"quick": report.KindTopup, "ebank": report.KindTopup, "payout": report.KindPayout,
			"refund": report.KindRefund}[method]
		if kind == "topup" && tradeNo != "" {
			k = report.KindCardPayment
		}
		b := get(bank)
		v := b.txns[k]
		switch status {
		case "SUCCESS":
			v[0]++
			v[3] += amount
		case "FAILED":
			v[1]++
		default:
			v[2]++
		}
		b.txns[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rpRanked orders the banks as the report must: success rate, then p95.
func rpRanked(want map[string]*rpBank) []string {
	var names []string
	for b := range want {
		names = append(names, b)
	}
	slices.SortFunc(names, func(x, y string) int {
		a, b := want[x], want[y]
		// a.ok/a.calls against b.ok/b.calls, in integers.
		if l, r := a.ok*b.calls, b.ok*a.calls; l != r {
			if l > r {
				return -1
			}
			return 1
		}
		if a.p95 != b.p95 {
			return int(a.p95 - b.p95)
		}
		i, _ := zhifu.BankIndex(x)
		j, _ := zhifu.BankIndex(y)
		return i - j
	})
	return names
}

func (e *rpEnv) report(t *testing.T, format string) (http.Header, []byte) {
	t.Helper()
	s, h, b := e.request("GET", "/v1/admin/reports/banks?month=2025-03&format="+format,
		http.Header{"Authorization": {"Bearer " + e.token}}, "")
	if s != 200 {
		t.Fatalf("report %s: %d %s", format, s, b)
	}
	return h, b
}

func checkReportJSON(t *testing.T, e *rpEnv, want map[string]*rpBank) {
	t.Helper()
	_, b := e.report(t, "json")
	var m struct {
		Banks []struct {
			Bank        string `json:"bank"`
			Rank        int    `json:"rank"`
			Calls, OK   int64
			P95Ms       int64 `json:"p95_ms"`
			DownMinutes int64 `json:"down_minutes"`
			Txns        []struct {
				Kind      string `json:"kind"`
				Succeeded int64  `json:"succeeded"`
				Amount    string `json:"amount"`
			} `json:"txns"`
		} `json:"banks"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("report json: %v\n%s", err, b)
	}
	ranked := rpRanked(want)
	if len(m.Banks) != len(ranked) {
		t.Fatalf("json banks %d, want %v", len(m.Banks), ranked)
	}
	for i, got := range m.Banks {
		w := want[got.Bank]
		if got.Bank != ranked[i] || got.Rank != i+1 || got.Calls != w.calls || got.OK != w.ok || got.P95Ms != w.p95 ||
			got.DownMinutes != w.down {
			t.Errorf("json bank %d: %+v, want %s %+v", i, got, ranked[i], *w)
		}
		for _, tx := range got.Txns {
			if v := w.txns[tx.Kind]; tx.Succeeded != v[0] || tx.Amount != yuan(v[3]) {
				t.Errorf("json %s %s: %+v, want %v", got.Bank, tx.Kind, tx, v)
			}
		}
	}
	if s, _, b := e.request("GET", "/v1/admin/reports/banks?month=2025-13", http.Header{"Authorization": {"Bearer " + e.token}}, ""); s != 400 || !strings.Contains(string(b), `"param":"month"`) {
		t.Errorf("month 2025-13: %d %s", s, b)
	}
	if s, _, _ := e.request("GET", "/v1/admin/reports/banks?month=2025-03", nil, ""); s != 401 {
		t.Errorf("report without a token: %d", s)
	}
}

func checkReportCSV(t *testing.T, e *rpEnv, want map[string]*rpBank) []byte {
	t.Helper()
	h, b := e.report(t, "csv")
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("csv Content-Type %q", ct)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) != 1+len(want) {
		t.Fatalf("csv: %v, %d lines:\n%s", err, len(recs), b)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for i, rec := range recs[1:] {
		bank := rec[col["bank"]]
		w := want[bank]
		if w == nil || rec[col["rank"]] != strconv.Itoa(i+1) {
			t.Errorf("csv line %v", rec)
			continue
		}
		for name, v := range map[string]int64{"calls": w.calls, "calls_ok": w.ok, "p50_ms": w.p50, "p95_ms": w.p95,
			"p99_ms": w.p99, "down_minutes": w.down, "busiest_minute_calls": w.busiestCalls, "failed_calls": w.failed,
			"topup_succeeded": w.txns[report.KindTopup][0], "payout_succeeded": w.txns[report.KindPayout][0],
			"card_payment_succeeded": w.txns[report.KindCardPayment][0]} {
			if got := rec[col[name]]; got != strconv.FormatInt(v, 10) {
				t.Errorf("csv %s %s = %s, want %d", bank, name, got, v)
			}
		}
		if got, wantAt := rec[col["busiest_minute"]], w.busiest.In(rpChina).Format("2006-01-02 15:04"); got != wantAt {
			t.Errorf("csv %s busiest minute %s, want %s", bank, got, wantAt)
		}
		if got := rec[col["topup_amount"]]; got != yuan(w.txns[report.KindTopup][3]) {
			t.Errorf("csv %s top-up amount %s, want %s", bank, got, yuan(w.txns[report.KindTopup][3]))
		}
	}
	return b
}

// checkReportCLI runs "zhifu report bank" on the same database: the same
// CSV as the API's.
func checkReportCLI(t *testing.T, e *rpEnv, want []byte) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runReport(context.Background(), []string{"bank", "--month", "2025-03", "--format", "csv", "--db", e.db},
		&out, &errb, func(string) string { return "" })
	if code != 0 || !bytes.Equal(out.Bytes(), want) {
		t.Errorf("zhifu report bank: exit %d, stderr %s\n%s\nwant\n%s", code, errb.String(), out.String(), want)
	}
	errb.Reset()
	if code := runReport(context.Background(), []string{"bank", "--db", e.db}, &out, &errb, func(string) string { return "" }); code != 2 ||
		!strings.Contains(errb.String(), "--month is required") {
		t.Errorf("zhifu report bank without --month: exit %d, %s", code, errb.String())
	}
}

// artifactsDir is where the test keeps what a person looks at:
// $ZHIFU_TEST_ARTIFACTS, else testdata/artifacts (ignored by git).
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("ZHIFU_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// chromium runs headless Chromium on url with the given extra flags and
// returns its standard output and error.
func chromium(t *testing.T, url string, extra ...string) (string, string) {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath, append(append(args, extra...), url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

func checkReportInChromium(t *testing.T, e *rpEnv, backend string, want map[string]*rpBank) {
	t.Helper()
	// Chromium reaches the report through a proxy on loopback that adds
	// the operator's token and notes every request the page makes.
	var mu sync.Mutex
	var asked []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/v1/admin/reports/banks" {
			http.NotFound(w, r)
			return
		}
		req, _ := http.NewRequest("GET", e.url+r.URL.RequestURI(), nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	url := proxy.URL + "/v1/admin/reports/banks?month=2025-03&format=html"
	h, _ := e.report(t, "html")
	if got := h.Get("Content-Security-Policy"); got != "default-src 'none'; style-src 'unsafe-inline'; img-src data:" {
		t.Errorf("Content-Security-Policy %q", got)
	}
	dir := artifactsDir(t)
	shot := filepath.Join(dir, "bank-report-"+backend+".png")
	os.Remove(shot)
	_, logs := chromium(t, url, "--hide-scrollbars", "--window-size=1100,1800", "--screenshot="+shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot of the report: %s", shot)
	dom, logs2 := chromium(t, url, "--dump-dom")
	if err := os.WriteFile(filepath.Join(dir, "bank-report-"+backend+".html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{logs, logs2} {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Refused to") {
			t.Errorf("the page broke its CSP:\n%s", l)
		}
	}
	mu.Lock()
	for _, p := range asked {
		if p != "/v1/admin/reports/banks" && p != "/favicon.ico" {
			t.Errorf("the page asked for %s", p)
		}
	}
	mu.Unlock()
	checkReportDOM(t, dom, want)
}

var (
	rpRowRE   = regexp.MustCompile(`(?s)<tr data-bank="(\w+)">(.*?)</tr>`)
	rpFieldRE = regexp.MustCompile(`data-field="(\w+)">([^<]*)<`)
	rpKindRE  = regexp.MustCompile(`(?s)<td data-kind="(\w+)">(.*?)</td>`)
)

// section is the part of the DOM from the element with id to the end of
// its table.
func section(t *testing.T, dom, id string) string {
	t.Helper()
	i := strings.Index(dom, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("the DOM has no #%s", id)
	}
	j := strings.Index(dom[i:], "</table>")
	return dom[i : i+j]
}

func fields(s string) map[string]string {
	out := map[string]string{}
	for _, m := range rpFieldRE.FindAllStringSubmatch(s, -1) {
		if _, ok := out[m[1]]; !ok {
			out[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return out
}

// checkReportDOM reads the ranking and the money tables out of the DOM
// Chromium built and compares every number with the raw records.
func checkReportDOM(t *testing.T, dom string, want map[string]*rpBank) {
	t.Helper()
	ranked := rpRanked(want)
	rows := rpRowRE.FindAllStringSubmatch(section(t, dom, "ranking"), -1)
	if len(rows) != len(ranked) {
		t.Fatalf("ranking has %d rows, want %v", len(rows), ranked)
	}
	for i, r := range rows {
		bank, f := r[1], fields(r[2])
		w := want[bank]
		if bank != ranked[i] || f["rank"] != strconv.Itoa(i+1) {
			t.Errorf("ranking row %d is %s (rank %s), want %s", i, bank, f["rank"], ranked[i])
			continue
		}
		for name, v := range map[string]int64{"calls": w.calls, "ok": w.ok, "p50_ms": w.p50, "p95_ms": w.p95,
			"p99_ms": w.p99, "down_minutes": w.down, "busiest_calls": w.busiestCalls} {
			if f[name] != strconv.FormatInt(v, 10) {
				t.Errorf("page: %s %s = %q, want %d", bank, name, f[name], v)
			}
		}
		if rate := fmt.Sprintf("%.2f", 100*float64(w.ok)/float64(w.calls)); f["success_rate"] != rate {
			t.Errorf("page: %s success rate %s%%, want %s%%", bank, f["success_rate"], rate)
		}
		if at := w.busiest.In(rpChina).Format("2006-01-02 15:04"); f["busiest_minute"] != at {
			t.Errorf("page: %s busiest minute %s, want %s", bank, f["busiest_minute"], at)
		}
	}
	for _, r := range rpRowRE.FindAllStringSubmatch(section(t, dom, "money"), -1) {
		bank := r[1]
		for _, k := range rpKindRE.FindAllStringSubmatch(r[2], -1) {
			f, v := fields(k[2]), want[bank].txns[k[1]]
			if strings.ReplaceAll(f["amount"], ",", "") != yuan(v[3]) || f["succeeded"] != strconv.FormatInt(v[0], 10) ||
				f["failed"] != strconv.FormatInt(v[1], 10) {
				t.Errorf("page: %s %s = %v, want %v", bank, k[1], f, v)
			}
		}
	}
	for _, bank := range ranked {
		if !strings.Contains(dom, `<g data-bank="`+bank+`">`) {
			t.Errorf("the charts have no line or bars of %s", bank)
		}
	}
	if want["CMB"].down > 0 && !strings.Contains(dom, "CMB") {
		t.Error("the page does not name CMB")
	}
}
