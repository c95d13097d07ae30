package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/trade"
)

// The load generator behind the overload test and benchmark: the platform
// in process on SQLite and the real clock, buyers with funded wallets (and a
// bound card, for withdrawals), trades created ahead for them to pay, and
// hundreds of clients sending payments, queries and withdrawals, closed
// loop (to measure what the platform can serve) or open loop (to offer a
// rate whatever the answers). Latency is measured from when the client
// sends; an arrival that finds every client busy is counted unsent, and
// how late the generator handed arrivals to clients is reported beside.

const (
	olBuyers = 48 // logging in hashes a password, so buyers are shared by clients
	// olClients is how many clients send requests of each kind at once in
	// an open loop (payers are other people than those who query or
	// withdraw: one kind's slow answers do not hold back another's
	// arrivals); each keeps its own connection.
	olPayClients      = 100
	olQueryClients    = 300
	olWithdrawClients = 300
	olClientsMax      = olPayClients + olQueryClients + olWithdrawClients
	// olClientTimeout is the longest a client waits for an answer: an
	// answer later than that counts as a timeout.
	olClientTimeout = 5 * time.Second
	// olStatementLines is the page a query reads: a buyer's statement.
	olStatementLines = 20
	// olAnswerMax is what the API promises under overload: every request
	// answered, served or refused, within a second of its arrival.
	olAnswerMax = time.Second
)

type olKind int

const (
	olPay olKind = iota
	olQuery
	olWithdraw
	olKinds
)

var olKindNames = [olKinds]string{"pay", "query", "withdraw"}

type olBuyer struct{ id, token, card string }

// olEnv is one platform under load.
type olEnv struct {
	*env
	client   *http.Client // the load's, with olClientTimeout
	setupCl  *http.Client // the set-up's, patient with password hashing
	buyers   []olBuyer
	merchant *identity.Merchant
	trades   chan string // created, unpaid
	paidMu   sync.Mutex
	paid     []string // answered 200 TRADE_SUCCESS
	seq      atomic.Int64
}

// newOverloadEnv starts the platform with args added to serve's flags. The
// per-user and per-merchant rates are off: the test's hundreds of clients
// share a few dozen buyers, and per-caller limits have a test of their own.
func newOverloadEnv(t testing.TB, cards bool, args ...string) *olEnv {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, "sqlite")
	tm := newTestMain(nil)
	clock := &manualClock{now: time.Now().UTC()}
	serveTestMain(t, tm, append([]string{"--data", dir, "--db", db, "--rate-user", "0", "--rate-merchant", "0"}, args...)...)
	tt, _ := t.(*testing.T)
	e := &env{t: tt, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = olClientsMax, olClientsMax
	o := &olEnv{env: e, client: &http.Client{Transport: tr, Timeout: olClientTimeout},
		setupCl: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
	t.Cleanup(func() {
		o.client.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	})
	o.setup(t, cards)
	return o
}

func (o *olEnv) setup(t testing.TB, cards bool) {
	var seller struct {
		UserID string `json:"user_id"`
	}
	if s, err := o.call(o.token, "POST", "/v1/users", map[string]string{"login": fmt.Sprintf("olseller%d", trSeq.Add(1)),
		"password": trPassword, "name": "s"}, &seller); err != nil || s != 201 {
		t.Fatalf("create seller: %d %v", s, err)
	}
	m, _, err := o.m.Identity.CreateMerchant(context.Background(), "overload shop", seller.UserID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	o.merchant = m
	o.buyers = make([]olBuyer, olBuyers)
	errs := make([]error, olBuyers)
	var wg sync.WaitGroup
	for i := range o.buyers {
		wg.Go(func() { o.buyers[i], errs[i] = o.newBuyer(i, cards) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (o *olEnv) newBuyer(i int, card bool) (olBuyer, error) {
	login := fmt.Sprintf("olbuyer%d_%d", i, trSeq.Add(1))
	var u struct {
		UserID string `json:"user_id"`
	}
	if s, err := o.call(o.token, "POST", "/v1/users", map[string]string{"login": login, "password": trPassword, "name": "b"}, &u); err != nil || s != 201 {
		return olBuyer{}, fmt.Errorf("create buyer: %d %v", s, err)
	}
	var sess struct {
		Token string `json:"token"`
	}
	if s, err := o.call("", "POST", "/v1/sessions", map[string]string{"login": login, "password": trPassword}, &sess); err != nil || s != 200 {
		return olBuyer{}, fmt.Errorf("login buyer: %d %v", s, err)
	}
	b := olBuyer{id: u.UserID, token: sess.Token}
	// A statement of olStatementLines lines, so that a query reads a full
	// page, as a wallet's statement does.
	for i := range olStatementLines {
		amount := "0.01"
		if i == 0 {
			amount = "1000000.00"
		}
		if s, err := o.call(o.token, "POST", "/v1/admin/deposits", map[string]string{"user_id": b.id, "amount": amount,
			"bank": "ICBC", "reference": fmt.Sprintf("ol-%s-%d", login, i)}, nil); err != nil || s != 201 {
			return olBuyer{}, fmt.Errorf("fund buyer: %d %v", s, err)
		}
	}
	if card {
		var c struct {
			CardID string `json:"card_id"`
		}
		no := cardNumber(int(cardSeq.Add(1)))
		if s, err := o.call(b.token, "POST", "/v1/cards", map[string]string{"bank": allBanks[i%len(allBanks)], "card_no": no, "holder": "持卡人"}, &c); err != nil || s != 201 {
			return olBuyer{}, fmt.Errorf("bind card: %d %v", s, err)
		}
		b.card = c.CardID
	}
	return b, nil
}

// call sends one JSON request; it never fails the test, so goroutines may
// use it. Refused for overload (the set-up runs many at once, logins hash
// passwords), it tries again a little later, as a client should.
func (o *olEnv) call(token, method, path string, body, out any) (int, error) {
	for try := 0; ; try++ {
		s, err := o.callOnce(token, method, path, body, out)
		if (s != 429 && s != 503) || try == olSetupTries {
			return s, err
		}
		time.Sleep(olSetupBackoff) // a client's back-off, not a wait for an event
	}
}

// The set-up's patience with refusals.
const (
	olSetupTries   = 200
	olSetupBackoff = 50 * time.Millisecond
)

func (o *olEnv) callOnce(token, method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, o.url+path, r)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := o.setupCl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// makeTrades creates n unpaid trades of 1.00 for the clients to pay,
// through the trade service (the set-up need not cross HTTP).
func (o *olEnv) makeTrades(t testing.TB, n int) {
	t.Helper()
	if o.trades == nil {
		o.trades = make(chan string, n)
	} else if cap(o.trades)-len(o.trades) < n {
		old := o.trades
		o.trades = make(chan string, len(old)+n)
		close(old)
		for no := range old {
			o.trades <- no
		}
	}
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				tr, _, err := o.m.Trades.Create(context.Background(), o.merchant, trade.CreateParams{
					OutTradeNo: fmt.Sprintf("ol%d", o.seq.Add(1)), Subject: "overload",
					TotalAmount: zhifu.Amount(100), Mode: trade.Instant})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				o.trades <- tr.TradeNo
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		t.Fatal(err)
	}
}

// olResult is one request's outcome.
type olResult struct {
	kind    olKind
	status  int
	retry   bool // a Retry-After came with it
	err     error
	latency time.Duration // from sending to the answer
	lag     time.Duration // from when it was due to sending
}

// send makes one request of kind k as buyer b.
func (o *olEnv) send(k olKind, b olBuyer, n int64) olResult {
	res := olResult{kind: k}
	var path, body string
	method := "POST"
	switch k {
	case olPay:
		select {
		case no := <-o.trades:
			path, body = "/v1/trades/"+no+"/pay", `{"method":"balance"}`
		default:
			res.err = fmt.Errorf("no trade left to pay: create more")
			return res
		}
	case olQuery:
		method, path = "GET", fmt.Sprintf("/v1/statement?limit=%d", olStatementLines)
	case olWithdraw:
		path, body = "/v1/withdrawals", `{"amount":"0.01","card_id":"`+b.card+`"}`
	}
	req, err := http.NewRequest(method, o.url+path, strings.NewReader(body))
	if err != nil {
		res.err = err
		return res
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := o.client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	res.status, res.retry, res.err = resp.StatusCode, resp.Header.Get("Retry-After") != "", err
	if k == olPay && res.status == 200 {
		var tr struct {
			TradeNo string `json:"trade_no"`
			Status  string `json:"status"`
		}
		if err := json.Unmarshal(raw, &tr); err != nil || tr.Status != "TRADE_SUCCESS" {
			res.err = fmt.Errorf("payment answered 200 with %s", raw)
			return res
		}
		o.paidMu.Lock()
		o.paid = append(o.paid, tr.TradeNo)
		o.paidMu.Unlock()
	}
	return res
}

// olStats sums one phase.
type olStats struct {
	name    string
	elapsed time.Duration
	unsent  int // arrivals the generator could not hand to a free client
	kinds   [olKinds]olKindStats
}

type olKindStats struct {
	sent, ok, shed, noRetry, other, errs int
	okLat                                []time.Duration // served
	answerMax                            time.Duration   // any answer
	lagMax                               time.Duration   // the generator's, sending
	firstErr                             string
}

func (s *olStats) add(r olResult) {
	k := &s.kinds[r.kind]
	k.sent++
	k.lagMax = max(k.lagMax, r.lag)
	switch {
	case r.err != nil:
		k.errs++
		if k.firstErr == "" {
			k.firstErr = r.err.Error()
		}
		return
	case r.status/100 == 2:
		k.ok++
		k.okLat = append(k.okLat, r.latency)
	case r.status == 429 || r.status == 503:
		k.shed++
		if !r.retry {
			k.noRetry++
		}
	default:
		k.other++
		if k.firstErr == "" {
			k.firstErr = fmt.Sprintf("status %d", r.status)
		}
	}
	k.answerMax = max(k.answerMax, r.latency)
	k.lagMax = max(k.lagMax, r.lag)
}

// rate is kind k's served requests a second.
func (s *olStats) rate(k olKind) float64 { return float64(s.kinds[k].ok) / s.elapsed.Seconds() }

// served is all kinds' served requests a second.
func (s *olStats) served() float64 {
	n := 0
	for _, k := range s.kinds {
		n += k.ok
	}
	return float64(n) / s.elapsed.Seconds()
}

// sent is the requests a second the phase sent; offered adds the
// arrivals that found every client busy.
func (s *olStats) sent() float64 {
	n := 0
	for _, k := range s.kinds {
		n += k.sent
	}
	return float64(n) / s.elapsed.Seconds()
}

func (s *olStats) offered() float64 { return s.sent() + float64(s.unsent)/s.elapsed.Seconds() }

// p returns the q quantile of kind k's served latency.
func (s *olStats) p(k olKind, q float64) time.Duration {
	lat := s.kinds[k].okLat
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[int(math.Ceil(q*float64(len(lat))))-1]
}

// shedShare is the share of kind k's requests refused.
func (s *olStats) shedShare(k olKind) float64 {
	if s.kinds[k].sent == 0 {
		return 0
	}
	return float64(s.kinds[k].shed) / float64(s.kinds[k].sent)
}

func (s *olStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %.0f/s offered, %.0f/s sent (%d arrivals found every client busy), %.0f/s served",
		s.name, s.offered(), s.sent(), s.unsent, s.served())
	for k, ks := range s.kinds {
		if ks.sent == 0 {
			continue
		}
		fmt.Fprintf(&b, "; %s sent %d ok %d (%.0f/s, p50 %v p99 %v) shed %d (%.0f%%) other %d errs %d, slowest answer %v, generator late by %v at most",
			olKindNames[k], ks.sent, ks.ok, s.rate(olKind(k)), s.p(olKind(k), 0.5).Round(time.Microsecond*100),
			s.p(olKind(k), 0.99).Round(time.Microsecond*100), ks.shed, 100*s.shedShare(olKind(k)), ks.other, ks.errs,
			ks.answerMax.Round(time.Millisecond), ks.lagMax.Round(time.Millisecond))
		if ks.firstErr != "" {
			fmt.Fprintf(&b, " (first: %s)", ks.firstErr)
		}
	}
	return b.String()
}

// olMix is requests a second by kind.
type olMix [olKinds]float64

func (m olMix) total() float64 { return m[olPay] + m[olQuery] + m[olWithdraw] }

func (m olMix) times(f float64) olMix {
	for k := range m {
		m[k] *= f
	}
	return m
}

// closedLoop runs clients that each send the next request as soon as the
// last is answered, one payment in every payEvery, for d: what the
// platform serves at that concurrency.
func (o *olEnv) closedLoop(name string, clients, payEvery int, d time.Duration) *olStats {
	st := &olStats{name: name}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for c := range clients {
		wg.Go(func() {
			b := o.buyers[c%len(o.buyers)]
			for n := int64(c); time.Now().Before(end); n++ {
				k := olQuery
				if n%int64(payEvery) == 0 {
					k = olPay
				}
				t0 := time.Now()
				r := o.send(k, b, n)
				r.latency = time.Since(t0)
				mu.Lock()
				st.add(r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return st
}

// openLoop offers mix for d whatever the answers: arrivals at fixed
// intervals, interleaved by kind, each handed to a free client of its
// kind.
func (o *olEnv) openLoop(name string, mix olMix, d time.Duration) *olStats {
	st := &olStats{name: name}
	var jobs [olKinds]chan olJob // a client takes an arrival only when free
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range olKinds {
		if mix[k] == 0 {
			continue
		}
		jobs[k] = make(chan olJob)
		clients := [olKinds]int{olPay: olPayClients, olQuery: olQueryClients, olWithdraw: olWithdrawClients}[k]
		for c := range clients {
			wg.Go(func() { o.client1(jobs[k], o.buyers[c%len(o.buyers)], st, &mu) })
		}
	}
	total := mix.total()
	var credit olMix // weighted round robin: each arrival goes to the kind most owed
	start := time.Now()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / total))
		if !due.Before(start.Add(d)) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait) // pacing the arrivals: the generator's schedule, not a wait for an event
		}
		best := olKind(0)
		for k := range olKinds {
			credit[k] += mix[k] / total
			if credit[k] > credit[best] {
				best = olKind(k)
			}
		}
		credit[best]--
		select {
		case jobs[best] <- olJob{kind: best, due: due, n: i}:
		default:
			st.unsent++
		}
	}
	for _, ch := range jobs {
		if ch != nil {
			close(ch)
		}
	}
	wg.Wait()
	st.elapsed = d
	return st
}

// olJob is one arrival of an open loop.
type olJob struct {
	kind olKind
	due  time.Time
	n    int64
}

// client1 is one client of an open loop: it sends the arrivals it takes.
func (o *olEnv) client1(jobs <-chan olJob, b olBuyer, st *olStats, mu *sync.Mutex) {
	for j := range jobs {
		t0 := time.Now()
		r := o.send(j.kind, b, j.n)
		r.latency, r.lag = time.Since(t0), t0.Sub(j.due)
		mu.Lock()
		st.add(r)
		mu.Unlock()
	}
}

// checkPaid verifies that every payment answered as paid is paid in the
// books, and that the ledger's full audit passes.
func (o *olEnv) checkPaid(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for _, no := range o.paid {
		tr, err := o.m.Trades.Get(ctx, no)
		if err != nil || tr.Status != trade.Success {
			t.Fatalf("trade %s was answered paid and is %v (%v)", no, tr, err)
		}
	}
	var c map[string]any
	if s, err := o.call(o.token, "GET", "/v1/admin/ledger/check", nil, &c); err != nil || s != 200 || c["ok"] != true {
		t.Fatalf("ledger check: %d %v %v", s, c, err)
	}
}

// olFull is the long form, for BENCHMARKS.md: ZHIFU_OVERLOAD_FULL=1.
func olFull() bool { return testGetenv("ZHIFU_OVERLOAD_FULL") != "" }

// olArgs are serve's flags for the run: ZHIFU_OVERLOAD_ADMISSION=off shows
// the platform without admission control failing the same test.
func olArgs() []string {
	if v := testGetenv("ZHIFU_OVERLOAD_ADMISSION"); v != "" {
		return []string{"--admission", v}
	}
	return nil
}

// olPayEvery: one request in olPayEvery is a payment, the rest queries.
const olPayEvery = 7

// olPhases are the phase lengths: capacity, each of calm, 1×, 2×, and 4×.
func olPhases() (capacity, phase, four time.Duration) {
	if olFull() {
		return 5 * time.Second, 5 * time.Second, 10 * time.Second
	}
	return 1500 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Second
}

// olCapacityClients measure capacity: about as many as the platform lets in
// at once, so that a closed loop measures what it serves rather than how
// fast it refuses.
const olCapacityClients = 48

// olCapacity measures what the platform serves of the mix, closed loop.
func (o *olEnv) olCapacity(t *testing.T, d time.Duration) *olStats {
	o.closedLoop("warm-up", olCapacityClients, olPayEvery, 500*time.Millisecond)
	capacity := o.closedLoop("capacity", olCapacityClients, olPayEvery, d)
	t.Log(capacity)
	return capacity
}

// TestOverload offers a mix of payments and queries (one in olPayEvery a
// payment) rising to four times what the platform served closed loop, from
// olPayClients and olQueryClients clients, and holds the platform to API.md: every request
// answered within a second, served or refused with Retry-After, none
// timing out; payments kept (at least 80% of their 1× throughput, p99
// within twice 1×'s) by shedding queries first; nothing acknowledged
// lost. ZHIFU_OVERLOAD_FULL=1 runs it longer, for BENCHMARKS.md.
func TestOverload(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	capD, phaseD, fourD := olPhases()
	o := newOverloadEnv(t, false, olArgs()...)
	o.makeTrades(t, 3000)
	c := o.olCapacity(t, capD).served()
	one := olMix{olPay: c / olPayEvery, olQuery: c * (olPayEvery - 1) / olPayEvery}
	o.makeTrades(t, int(one[olPay]*(3.5*phaseD.Seconds()+4*fourD.Seconds())*1.2))
	phases := map[string]*olStats{}
	for _, p := range []struct {
		name string
		f    float64
		d    time.Duration
	}{{"half", 0.5, phaseD}, {"1x", 1, phaseD}, {"2x", 2, phaseD}, {"4x", 4, fourD}} {
		st := o.openLoop(p.name, one.times(p.f), p.d)
		t.Log(st)
		t.Log(o.admissionMetrics())
		phases[p.name] = st
	}
	for _, st := range phases {
		olCheckAnswers(t, st)
	}
	olCheckPayments(t, phases["1x"], phases["4x"])
	if q, p := phases["4x"].shedShare(olQuery), phases["4x"].shedShare(olPay); q <= p || q < 0.25 {
		t.Errorf("at 4x, %.0f%% of queries and %.0f%% of payments were refused: want queries refused first", 100*q, 100*p)
	}
	o.checkPaid(t)
}

// olCheckAnswers holds a phase to the API's promise under overload.
func olCheckAnswers(t *testing.T, st *olStats) {
	t.Helper()
	for k, ks := range st.kinds {
		if ks.errs > 0 || ks.other > 0 {
			t.Errorf("%s: %d %s requests failed or timed out and %d had another status (first: %s)",
				st.name, ks.errs, olKindNames[k], ks.other, ks.firstErr)
		}
		if ks.noRetry > 0 {
			t.Errorf("%s: %d %s refusals without Retry-After", st.name, ks.noRetry, olKindNames[k])
		}
		if ks.answerMax > olAnswerMax && olJudgeTimes(t, st) {
			t.Errorf("%s: a %s request was answered after %v, want within %v", st.name, olKindNames[k], ks.answerMax, olAnswerMax)
		}
	}
}

// olCheckPayments holds payments under load to at least 80% of their
// throughput at 1× and their p99 to twice 1×'s. Calm is 1×: the platform
// at what it can serve, not beyond (the half-load phase before it is
// reported, not judged: on two cores shared with the load's own clients,
// serving four times the payments at 4× costs them CPU that no admission
// can give back). The everyday form, judged on a shared machine, allows
// the p99 a further olP99Slack.
func olCheckPayments(t *testing.T, calm, load *olStats) {
	t.Helper()
	if got, want := load.rate(olPay), 0.8*calm.rate(olPay); got < want {
		t.Errorf("%s: %.0f payments/s served, want at least 80%% of %s's %.0f/s", load.name, got, calm.name, calm.rate(olPay))
	}
	limit := 2 * calm.p(olPay, 0.99)
	if !olFull() {
		limit += olP99Slack
	}
	if got := load.p(olPay, 0.99); got > limit && olJudgeTimes(t, calm) && olJudgeTimes(t, load) {
		t.Errorf("%s: payments' p99 %v, want within %v (twice %s's %v)", load.name, got, limit, calm.name, calm.p(olPay, 0.99))
	}
}

// stall is how late the generator handed an arrival to a free client: the
// test process itself starved of CPU.
func (s *olStats) stall() time.Duration {
	var lag time.Duration
	for _, k := range s.kinds {
		lag = max(lag, k.lagMax)
	}
	return lag
}

// olStallJudgeMax: in the everyday form, a phase whose generator stalled
// longer than this was run on a machine too busy for its latencies to say
// anything about the platform (other work starved the test process, and
// the server in it, of CPU); its latencies are logged, not judged. The
// full form, run for BENCHMARKS.md, judges every phase.
const olStallJudgeMax = 50 * time.Millisecond

// olJudgeTimes says whether phase st's latencies are judged, and logs why
// not.
func olJudgeTimes(t *testing.T, st *olStats) bool {
	t.Helper()
	if olFull() || st.stall() <= olStallJudgeMax {
		return true
	}
	t.Logf("%s: the test process stalled %v (the machine is busy): its latencies are logged above, not judged", st.name, st.stall())
	return false
}

// olP99Slack is what the everyday form adds to twice calm's p99: other work
// on a shared two-core machine moves a p99 of tens of milliseconds by as
// much within one run (a CI run saw 4×'s pay p99 at 192 ms against a 1×
// of 43 ms, with no stall the test could see). The full form
// (ZHIFU_OVERLOAD_FULL) judges without it.
const olP99Slack = 150 * time.Millisecond

// admissionMetrics is the platform's admission figures from /metrics.
func (o *olEnv) admissionMetrics() string {
	req, _ := http.NewRequest("GET", o.url+"/metrics", nil)
	resp, err := o.client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "zhifu_admission_") && !strings.HasSuffix(line, " 0") && !strings.Contains(line, "_bucket") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}

// olWaveRate is the withdrawals a second the wave offers.
func olWaveRate() float64 {
	if olFull() {
		return 50_000
	}
	return 20_000
}

// TestOverloadWithdrawalWave offers payments at the rate the platform
// served them closed loop, first alone and then under a wave of
// withdrawals (tens of thousands a second offered, the 2010 campaign's
// "今天你提了吗" at its worst): payments keep 80% of their throughput and
// their p99 within twice that without the wave; withdrawals are refused
// with Retry-After beyond what the platform can take; every withdrawal
// accepted is in the books (the ledger check, custody included, is clean).
func TestOverloadWithdrawalWave(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	capD, phaseD, waveD := olPhases()
	o := newOverloadEnv(t, true, olArgs()...)
	o.makeTrades(t, 3000)
	capacity := o.olCapacity(t, capD)
	pays := olMix{olPay: capacity.rate(olPay)}
	o.makeTrades(t, int(pays[olPay]*(phaseD.Seconds()+waveD.Seconds())*1.2))
	calm := o.openLoop("payments", pays, phaseD)
	t.Log(calm)
	wave := pays
	wave[olWithdraw] = olWaveRate()
	st := o.openLoop("wave", wave, waveD)
	t.Log(st)
	t.Log(o.admissionMetrics())
	olCheckAnswers(t, calm)
	olCheckAnswers(t, st)
	olCheckPayments(t, calm, st)
	w := st.kinds[olWithdraw]
	switch {
	case w.ok == 0:
		t.Errorf("wave: no withdrawal accepted (%d refused)", w.shed)
	case w.shed == 0 && st.unsent > 0:
		// Every client was waiting on an answer: the generator offered no
		// more than the platform took (queued, within the queue's time),
		// so there was nothing to refuse.
		t.Logf("wave: the generator could not offer more than the %.0f/s served (%d arrivals found every client busy); no refusal was due",
			st.served(), st.unsent)
	case w.shed == 0 && olJudgeTimes(t, st):
		t.Errorf("wave: %d withdrawals accepted and none refused, want some refused past capacity", w.ok)
	}
	o.checkPaid(t)
}

// TestCallerFlood: one merchant, one user and one client address each
// flood the platform; each is refused 429 RATE_LIMITED with Retry-After
// past its bucket, and a merchant, a user and an address beside them are
// served throughout.
func TestCallerFlood(t *testing.T) {
	dir := t.TempDir()
	tm := newTestMain(nil)
	clock := &manualClock{now: time.Now().UTC()}
	tm.Clock = clock
	serveTestMain(t, tm, "--data", dir, "--db", testDatabase(t, dir, "sqlite"),
		"--rate-merchant", "20", "--rate-user", "20", "--rate-address", "20")
	e := &env{t: t, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock}
	w := newTrWorld(t, e)
	other := w.newMerchant(w.user("seller2"), "")
	flooder, calm := w.user("flooder"), w.user("calm")
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	}
	flood, quiet := from("127.0.0.1"), from("127.0.0.2")
	t.Cleanup(flood.CloseIdleConnections)
	t.Cleanup(quiet.CloseIdleConnections)

	send := func(cl *http.Client, method, path, auth string) (int, string) {
		req, _ := http.NewRequest(method, e.url+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	const floodN = 200 // the bucket holds 40 and refills 20 a second
	for _, tc := range []struct {
		name         string
		flood, quiet func() (int, string)
	}{
		{"user",
			func() (int, string) { return send(flood, "GET", "/v1/wallet", "Bearer "+flooder.token) },
			func() (int, string) { return send(flood, "GET", "/v1/wallet", "Bearer "+calm.token) }},
		{"merchant",
			func() (int, string) {
				return send(flood, "GET", "/v1/merchant", signMerchant(w.mk, "GET", "/v1/merchant", "", clock.Now(), newNonce()))
			},
			func() (int, string) {
				return send(flood, "GET", "/v1/merchant", signMerchant(other, "GET", "/v1/merchant", "", clock.Now(), newNonce()))
			}},
		{"address",
			func() (int, string) { return send(flood, "GET", "/v1/announcements", "") },
			func() (int, string) { return send(quiet, "GET", "/v1/announcements", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var limited, served atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range floodN / 8 {
						switch s, retry := tc.flood(); {
						case s == 200:
							served.Add(1)
						case s == 429 && retry != "":
							limited.Add(1)
						default:
							t.Errorf("flood: %d %q", s, retry)
						}
					}
				})
			}
			for i := range 10 {
				if s, retry := tc.quiet(); s != 200 {
					t.Errorf("the other caller's request %d during the flood: %d (Retry-After %q)", i, s, retry)
				}
			}
			wg.Wait()
			if limited.Load() < floodN/2 || served.Load() < 40 {
				t.Errorf("flood of %d: %d served, %d limited; want the bucket's 40 or more served and most limited",
					floodN, served.Load(), limited.Load())
			}
		})
	}
}
