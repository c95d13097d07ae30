package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"zhifu/ledgerload"
	"zhifu/postgres"
	"zhifu/sqlite"
)

// benchClients is how many clients run create+pay loops at once.
const benchClients = 64

// BenchmarkPaidTrades measures paid trades per second end to end over HTTP:
// each of 64 clients loops on a signed merchant create (POST /v1/trades)
// followed by the buyer's balance payment (POST /v1/trades/{no}/pay), each
// answered only once durable. It reports trades/s and the p50 and p99
// latency of one create+pay pair.
//
//	go test -run '^$' -bench PaidTrades -benchtime 5000x ./cmd/zhifu
//
// ZHIFU_BENCH_HISTORY_SQLITE and ZHIFU_BENCH_HISTORY_POSTGRES start it on
// a prepared ledger history instead of an empty database (benchDatabase).
//
// On SQLite it reports the bytes written per trade, and with
// ZHIFU_BENCH_WAL_PAGES=1 the pages each commit wrote, by table and index
// (walPages).
//
// Setting ZHIFU_BENCH_CPUPROFILE=prefix writes a CPU profile of the timed
// loop alone to prefix-<backend>.prof (go test -cpuprofile would mostly
// show the set-up's password hashing).
func BenchmarkPaidTrades(b *testing.B) { benchPaidTrades(b, false) }

// BenchmarkPaidTradesKeyed is BenchmarkPaidTrades with an Idempotency-Key
// on the create and on the pay, as a careful client sends them.
//
//	go test -run '^$' -bench PaidTradesKeyed -benchtime 5000x ./cmd/zhifu
func BenchmarkPaidTradesKeyed(b *testing.B) { benchPaidTrades(b, true) }

func benchPaidTrades(b *testing.B, keyed bool) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			bench := newTradeBench(b, backend)
			bench.keyed = keyed
			if prefix := testGetenv("ZHIFU_BENCH_CPUPROFILE"); prefix != "" && b.N > 1 {
				f, err := os.Create(prefix + "-" + backend + ".prof")
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				defer pprof.StopCPUProfile()
			}
			bench.run(b)
		})
	}
}

// tradeBench is one platform with a merchant and funded buyers.
type tradeBench struct {
	m      *testMain
	url    string
	client *http.Client
	mk     merchantKey
	buyers []string // session tokens
	keyed  bool     // send an Idempotency-Key with every create and pay
}

func newTradeBench(b *testing.B, backend string) *tradeBench {
	return newTradeBenchWith(b, backend, nil)
}

// newTradeBenchWith is newTradeBench with configure run on the main
// before it serves.
func newTradeBenchWith(b *testing.B, backend string, configure func(*testMain)) *tradeBench {
	b.Helper()
	dir := b.TempDir()
	db := benchDatabase(b, dir, backend)
	tm := newTestMain(nil)
	if configure != nil {
		configure(tm)
	}
	// One merchant and a few dozen buyers drive the whole platform here, as
	// no single caller may in production: the per-caller rates are off.
	serveTestMain(b, tm, "--data", dir, "--db", db, "--rate-merchant", "0", "--rate-user", "0")
	tb := &tradeBench{m: tm, url: tm.URL(),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}}
	// Registered after Main's Close, so it runs before it: idle client
	// connections would hold the server's graceful shutdown.
	b.Cleanup(tb.client.CloseIdleConnections)
	tb.setup(b)
	return tb
}

// setup creates the seller, the merchant and one funded buyer per client.
func (tb *tradeBench) setup(b *testing.B) {
	admin := "Bearer " + tb.m.AdminToken()
	var seller struct {
		UserID string `json:"user_id"`
	}
	tb.must(b, "POST", "/v1/users", admin, `{"login":"benchseller","password":"bench password 1","name":"s"}`, &seller)
	var m struct {
		MerchantID string `json:"merchant_id"`
		Secret     string `json:"secret"`
	}
	tb.must(b, "POST", "/v1/merchants", admin, fmt.Sprintf(`{"name":"bench","user_id":%q}`, seller.UserID), &m)
	tb.mk = merchantKey{id: m.MerchantID, secret: m.Secret}
	tb.buyers = make([]string, benchClients)
	var wg sync.WaitGroup
	errs := make([]error, benchClients)
	for i := range benchClients {
		wg.Go(func() { tb.buyers[i], errs[i] = tb.fundedBuyer(admin, i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

func (tb *tradeBench) fundedBuyer(admin string, i int) (string, error) {
	login := fmt.Sprintf(`{"login":"benchbuyer%d","password":"bench password 1"}`, i)
	var u struct {
		UserID string `json:"user_id"`
	}
	if err := tb.setupCall("POST", "/v1/users", admin, login[:len(login)-1]+`,"name":"b"}`, &u); err != nil {
		return "", err
	}
	var sess struct {
		Token string `json:"token"`
	}
	if err := tb.setupCall("POST", "/v1/sessions", "", login, &sess); err != nil {
		return "", err
	}
	dep := fmt.Sprintf(`{"user_id":%q,"amount":"100000000.00","bank":"ICBC","reference":"bench%d"}`, u.UserID, i)
	return sess.Token, tb.setupCall("POST", "/v1/admin/deposits", admin, dep, nil)
}

// Limits.
const (
	// setupBusyRetries bounds how often setup asks again after a 503.
	setupBusyRetries = 20
	// setupBusyWait is how long it waits before it does.
	setupBusyWait = 250 * time.Millisecond
)

// setupCall is call for the setup's requests, which come all at once (64
// password hashes, say): the platform's admission limit may shed some with
// 503 SYSTEM_BUSY, and setup, like any client, asks again. The measured
// run's requests are never retried: a shed request there fails the run.
// A request shed so was refused before it changed anything.
func (tb *tradeBench) setupCall(method, path, auth, body string, out any) error {
	var err error
	for range setupBusyRetries {
		if err = tb.call(method, path, auth, body, out); err == nil || !strings.Contains(err.Error(), ": 503 ") {
			return err
		}
		time.Sleep(setupBusyWait)
	}
	return err
}

func (tb *tradeBench) must(b *testing.B, method, path, auth, body string, out any) {
	b.Helper()
	if err := tb.setupCall(method, path, auth, body, out); err != nil {
		b.Fatal(err)
	}
}

// call sends one request and fails unless it answers 2xx.
func (tb *tradeBench) call(method, path, auth, body string, out any) error {
	return tb.callKeyed(method, path, auth, "", body, out)
}

// callKeyed is call with an Idempotency-Key, unless key is "".
func (tb *tradeBench) callKeyed(method, path, auth, key, body string, out any) error {
	req, err := http.NewRequest(method, tb.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := tb.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// benchTrade is the trade each client creates, as the body the merchant
// signs (out_trade_no b<seq>, 1.00 yuan, instant).
func benchTrade(seq int64) string {
	return fmt.Sprintf(`{"out_trade_no":"b%d","subject":"bench","total_amount":"1.00","mode":"instant"}`, seq)
}

// pair creates a trade as the merchant and pays it as buyer.
func (tb *tradeBench) pair(seq int64, buyer string) error {
	body := benchTrade(seq)
	auth := signMerchant(tb.mk, "POST", "/v1/trades", body, time.Now(), newNonce())
	var tr struct {
		TradeNo string `json:"trade_no"`
	}
	createKey, payKey := "", ""
	if tb.keyed {
		createKey, payKey = fmt.Sprint("create-", seq), fmt.Sprint("pay-", seq)
	}
	if err := tb.callKeyed("POST", "/v1/trades", auth, createKey, body, &tr); err != nil {
		return err
	}
	var paid struct {
		Status string `json:"status"`
	}
	if err := tb.callKeyed("POST", "/v1/trades/"+tr.TradeNo+"/pay", "Bearer "+buyer, payKey, `{"method":"balance"}`, &paid); err != nil {
		return err
	}
	if paid.Status != "TRADE_SUCCESS" {
		return fmt.Errorf("paid trade is %s", paid.Status)
	}
	return nil
}

// meterWrites starts counting the bytes the store writes; the function it
// returns reports them per unit of work done since. On SQLite they are every
// write call of this process, the HTTP answers (a few hundred bytes a
// request) among them; on PostgreSQL the server's WAL.
func (tb *tradeBench) meterWrites(b *testing.B) func(unit string, n int64) {
	meter, ok := tb.m.store.(ledgerload.Meter)
	if !ok {
		return func(string, int64) {}
	}
	written0, err := meter.BytesWritten(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return func(unit string, n int64) {
		written, err := meter.BytesWritten(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(written-written0)/float64(n), unit)
	}
}

// walPages, with ZHIFU_BENCH_WAL_PAGES set and on SQLite, marks the
// write-ahead log; the function it returns reports the pages a commit wrote
// since, in all (pages/commit) and by table and index (in the log), so that
// the bytes written can be traced to the indexes that write them. The run
// should leave the log short of its checkpoint (256 MiB, some 10,000 paid
// trades): a checkpoint restarts it, and only what follows is counted.
func (tb *tradeBench) walPages(b *testing.B) func() {
	db, ok := tb.m.store.(*sqlite.DB)
	if !ok || testGetenv("ZHIFU_BENCH_WAL_PAGES") == "" {
		return func() {}
	}
	mark, err := db.WALMark()
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		got, err := db.WALPages(context.Background(), mark)
		if err != nil {
			b.Fatal(err)
		}
		if got.Restarted {
			b.Logf("the log was checkpointed during the run; run fewer trades to count its pages")
			return
		}
		if got.Commits == 0 {
			return
		}
		names := slices.Collect(maps.Keys(got.Pages))
		sort.Slice(names, func(i, j int) bool { return got.Pages[names[i]] > got.Pages[names[j]] })
		total := 0
		var lines strings.Builder
		for _, name := range names {
			total += got.Pages[name]
			fmt.Fprintf(&lines, "\n%8.2f %s", float64(got.Pages[name])/float64(got.Commits), name)
		}
		b.ReportMetric(float64(total)/float64(got.Commits), "pages/commit")
		b.Logf("%d commits, %d frames; pages a commit by table and index:%s", got.Commits, got.Frames, lines.String())
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (tb *tradeBench) run(b *testing.B) { tb.runWith(b, tb.pair) }

// runWith is run with pair as what each client does for one trade.
func (tb *tradeBench) runWith(b *testing.B, pair func(seq int64, buyer string) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, benchClients)
	errs := make([]error, benchClients)
	n := int64(b.N)
	var wg sync.WaitGroup
	st := tb.m.batcher.Stats()
	batches0, ops0, nanos0 := st.Batches.Load(), st.Ops.Load(), st.CommitNanos.Load()
	pg, _ := tb.m.store.(*postgres.DB)
	var trips0 int64
	if pg != nil {
		trips0 = pg.RoundTrips()
	}
	cpu0 := processCPU(b)
	reportWritten := tb.meterWrites(b)
	reportPages := tb.walPages(b)
	b.ResetTimer()
	start := time.Now()
	for c := range benchClients {
		wg.Go(func() {
			for {
				seq := next.Add(1)
				if seq > n {
					return
				}
				t0 := time.Now()
				if err := pair(seq, tb.buyers[c]); err != nil {
					errs[c] = err
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	// CPU time of this process (the platform and its 64 clients; not a
	// PostgreSQL server's) per trade: steadier than the rate on a shared
	// machine, where this one cannot count instructions.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(n), "cpu-us/trade")
	reportWritten("bytes/trade", n)
	reportPages()
	batches, ops := st.Batches.Load()-batches0, st.Ops.Load()-ops0
	if batches > 0 {
		// What the group commit did meanwhile: how many ops (merchant
		// nonces, sessions, trades) shared a transaction, and how long one
		// transaction took.
		b.ReportMetric(float64(ops)/float64(batches), "ops/batch")
		b.ReportMetric(float64(st.CommitNanos.Load()-nanos0)/float64(batches)/1e6, "commit-ms")
		b.ReportMetric(float64(ops)/float64(n), "ops/trade")
		if pg != nil {
			// Every write transaction's, the few outside the batcher
			// (timers, heartbeats) among them.
			b.ReportMetric(float64(pg.RoundTrips()-trips0)/float64(batches), "trips/batch")
		}
	}
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "trades/s", lat, elapsed)
}
