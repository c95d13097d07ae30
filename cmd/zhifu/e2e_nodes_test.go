package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/banksim"
)

// TestNodes runs three "zhifu serve" processes on one PostgreSQL database
// behind HAProxy, the banks in their own process, and shows, under mixed
// load (balance payments, unpaid trades closed by their timer, escrow
// trades finished by theirs, withdrawals, a notification for every
// change), that:
//
//   - a bank's payout pace holds across the nodes, as the bank measures it:
//     a burst of queued withdrawals is paid at the bank's background share
//     of its capacity, not at that times the nodes, and the bank refuses
//     nothing for want of capacity;
//   - a rolling restart (SIGTERM, wait, start, one node after another)
//     fails no request of a client that follows the API's retry rules;
//   - SIGKILLs of random nodes (10, or ZHIFU_TEST_NODE_KILLS) lose
//     nothing acknowledged, and a request cut off by one, sent again with
//     its key to another node, is answered at once and carried out once;
//
// and at the end that every timer fired exactly once, every notification
// was delivered (one per change, none missing), every withdrawal was paid
// exactly once at the bank, every wallet holds exactly what its answers
// say, and the ledger audit is clean.
func TestNodes(t *testing.T) {
	kills := 10
	if v := testGetenv("ZHIFU_TEST_NODE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("ZHIFU_TEST_NODE_KILLS=%q: %v", v, err)
		}
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	const capacity = 30.0 // calls/s at each bank; half of it for payouts
	db := testDatabase(t, t.TempDir(), "postgres")
	rig := newNodesRig(t, db, 3, fmt.Sprint(capacity), "--drain-wait", "700ms", "--node-stale-after", "3s")
	defer rig.logErrors()
	cc := banksim.NewControlClient(rig.banksURL, "nodes-control", nil)
	if err := cc.SetScenarios(context.Background(), banksim.Scenarios{Default: banksim.Scenario{
		RPS: capacity, Latency: banksim.Latency{FixedMs: 5, JitterMs: 10}}}); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	l := newNodesLoad(t, rig, rc, 12)
	defer l.rt.cl.CloseIdleConnections()

	// The pace: a burst of withdrawals queued at once is paid at the bank
	// at its background share of the capacity.
	l.paceBurst(t, cc, "CMB", 150, capacity*0.5)

	var wg sync.WaitGroup
	defer func() {
		l.rt.abort.Store(true)
		wg.Wait()
	}()
	for c, u := range l.buyers {
		r := rand.New(rand.NewPCG(seed, uint64(c)+1))
		wg.Go(func() { l.client(u, r) })
	}
	l.waitAcked(t, 60)
	t.Logf("steady load: %v", l.rt.takeCounts())

	// A rolling restart.
	before := l.acked.Load()
	for _, np := range rig.nodes {
		start := time.Now()
		if code := rig.stop(np); code != 0 {
			t.Errorf("node %d exited %d after SIGTERM", np.i+1, code)
		}
		stopped := time.Since(start)
		rig.serve(np)
		t.Logf("node %d: drained and stopped in %v, started again in %v", np.i+1, stopped.Round(time.Millisecond),
			(time.Since(start) - stopped).Round(time.Millisecond))
		l.waitAcked(t, 20)
	}
	rolling := l.rt.takeCounts()
	t.Logf("rolling restart: %d requests answered meanwhile; what the clients met: %v", l.acked.Load()-before, rolling)
	for what, n := range rolling {
		if what != "answered after a retry" && !strings.HasPrefix(what, "409") {
			t.Errorf("rolling restart: the clients met %d × %s", n, what)
		}
	}

	// SIGKILLs.
	before = l.acked.Load()
	for k := 1; k <= kills; k++ {
		np := rig.nodes[rng.IntN(len(rig.nodes))]
		l.waitAcked(t, 5+rng.Int64N(20))
		rig.kill(np)
		rig.serve(np)
	}
	t.Logf("%d SIGKILLs: %d requests answered meanwhile; what the clients met: %v", kills, l.acked.Load()-before,
		l.rt.takeCounts())
	l.waitAcked(t, 30)
	l.stop.Store(true)
	wg.Wait()
	for _, err := range l.errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	l.verify(t, cc)
	rig.stopAll()
}

// nodesLoad is the clients' traffic and what they were told.
type nodesLoad struct {
	t      *testing.T
	rig    *nodesRig
	rt     *retrier
	e      *chEnv
	rc     *receiver
	mk     merchantKey
	buyers []*chUser
	funds  int64 // each buyer's deposit, fen
	stop   atomic.Bool
	acked  atomic.Int64 // operations fully answered

	mu          sync.Mutex
	errs        []error
	trades      map[string]string // trade_no → the status it must end in
	withdrawals map[string]string // withdrawal_id → user id
	spent       map[string]int64  // user id → fen paid or withdrawn
}

func newNodesLoad(t *testing.T, rig *nodesRig, rc *receiver, clients int) *nodesLoad {
	t.Helper()
	e := &chEnv{env: &env{t: t, url: rig.lbURL, token: rig.adminToken, clock: &manualClock{now: time.Now()}},
		cl: &http.Client{Timeout: time.Minute}}
	l := &nodesLoad{t: t, rig: rig, rt: newRetrier(rig.lbURL), e: e, rc: rc, funds: 1_000_000_00,
		trades: map[string]string{}, withdrawals: map[string]string{}, spent: map[string]int64{}}
	l.buyers = e.newUsers(t, "nodebuyer", clients, []string{"CMB"}, yuan(l.funds))
	seller := idNewUsers(t, e.env, "nodeseller", 1)[0]
	var m map[string]any
	if s := e.admin("POST", "/v1/merchants", map[string]any{"name": "nodes shop", "user_id": seller.id,
		"notify_url": rc.srv.URL + "/notify"}, &m); s != 201 {
		t.Fatalf("merchant: %d %v", s, m)
	}
	l.mk = merchantKey{id: m["merchant_id"].(string), secret: m["secret"].(string)}
	return l
}

func (l *nodesLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Errorf(format, args...))
	}
	l.rt.abort.Store(true)
}

// waitAcked waits until n more operations are answered.
func (l *nodesLoad) waitAcked(t *testing.T, n int64) {
	t.Helper()
	want := l.acked.Load() + n
	deadline := time.Now().Add(2 * time.Minute)
	for l.acked.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations answered in 2 minutes, want %d; errors: %v", l.acked.Load(), want, l.errs)
		}
		if l.rt.abort.Load() {
			t.Fatalf("the clients stopped: %v", l.errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client runs one buyer's operations until stopped.
func (l *nodesLoad) client(u *chUser, r *rand.Rand) {
	for n := 1; !l.stop.Load() && !l.rt.abort.Load(); n++ {
		ref := fmt.Sprintf("%s-%d", u.login, n)
		var ok bool
		switch op := r.IntN(10); {
		case op < 4:
			ok = l.trade(u, ref, "instant", "")
		case op < 6:
			ok = l.trade(u, ref, "close", "")
		case op < 8:
			ok = l.trade(u, ref, "escrow", "")
		default:
			ok = l.withdraw(u, ref)
		}
		if !ok {
			return
		}
		l.acked.Add(1)
		time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
	}
}

const tradeFen = 100

// trade makes one trade of the kind: "instant" (paid), "close" (left
// unpaid for its 2 s timer to close), "escrow" (paid, shipped, finished
// by its 2 s confirm timer).
func (l *nodesLoad) trade(u *chUser, ref, kind, _ string) bool {
	create := map[string]any{"out_trade_no": ref, "subject": "nodes", "total_amount": yuan(tradeFen), "mode": "instant"}
	want := "TRADE_SUCCESS"
	switch kind {
	case "close":
		create["timeout_express"] = "2s"
		want = "TRADE_CLOSED"
	case "escrow":
		create["mode"], create["confirm_timeout"] = "escrow", "2s"
		want = "TRADE_FINISHED"
	}
	s, out, err := l.rt.send("POST", "/v1/trades", merchantAuth(l.mk, "POST", "/v1/trades"), "create-"+ref, create)
	no, _ := out["trade_no"].(string)
	if err != nil || (s != 201 && s != 200) || no == "" {
		l.fail("create %s: %d %v %v", ref, s, out, err)
		return false
	}
	l.mu.Lock()
	l.trades[no] = want
	l.mu.Unlock()
	if kind == "close" {
		return true
	}
	s, out, err = l.rt.send("POST", "/v1/trades/"+no+"/pay", bearerAuth(u.token), "pay-"+ref, map[string]any{"method": "balance"})
	paidStatus := map[string]string{"instant": "TRADE_SUCCESS", "escrow": "WAIT_SELLER_SEND_GOODS"}[kind]
	if err != nil || s != 200 || out["status"] != paidStatus {
		l.fail("pay %s (%s): %d %v %v", ref, no, s, out, err)
		return false
	}
	l.mu.Lock()
	l.spent[u.id] += tradeFen
	l.mu.Unlock()
	if kind == "escrow" {
		path := "/v1/trades/" + no + "/ship"
		s, out, err = l.rt.send("POST", path, merchantAuth(l.mk, "POST", path), "ship-"+ref, map[string]any{"tracking_no": "T" + ref})
		if err != nil || s != 200 || (out["status"] != "WAIT_BUYER_CONFIRM_GOODS" && out["status"] != "TRADE_FINISHED") {
			l.fail("ship %s (%s): %d %v %v", ref, no, s, out, err)
			return false
		}
	}
	return true
}

const withdrawFen = 100

func (l *nodesLoad) withdraw(u *chUser, ref string) bool {
	s, out, err := l.rt.send("POST", "/v1/withdrawals", bearerAuth(u.token), "wd-"+ref,
		map[string]any{"amount": yuan(withdrawFen), "card_id": u.cards["CMB"]})
	id, _ := out["withdrawal_id"].(string)
	if err != nil || (s != 202 && s != 200) || id == "" {
		l.fail("withdraw %s: %d %v %v", ref, s, out, err)
		return false
	}
	l.mu.Lock()
	l.withdrawals[id] = u.id
	l.spent[u.id] += withdrawFen
	l.mu.Unlock()
	return true
}

// paceBurst queues n withdrawals at bank at once and measures, at the
// bank, the pace of its calls while they are paid.
func (l *nodesLoad) paceBurst(t *testing.T, cc *banksim.ControlClient, bank string, n int, want float64) {
	t.Helper()
	stats := func() banksim.Stats {
		s, err := cc.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s[bank]
	}
	base := stats()
	var wg sync.WaitGroup
	per := n / len(l.buyers)
	for c, u := range l.buyers {
		wg.Go(func() {
			for i := range per {
				if !l.withdraw(u, fmt.Sprintf("burst-%d-%d", c, i)) {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(l.errs) > 0 {
		t.Fatal(l.errs)
	}
	total := int64(per * len(l.buyers))
	// The pace is measured from the tenth to the ninetieth percent paid,
	// away from the bucket's first burst and the queue's tail.
	var t10, t90 time.Time
	var r10, r90 int64
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s := stats()
		done := s.Accepted - base.Accepted
		if t10.IsZero() && done >= total/10 {
			t10, r10 = time.Now(), s.Requests-base.Requests
		}
		if done >= total*9/10 {
			t90, r90 = time.Now(), s.Requests-base.Requests
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d withdrawals reached %s in 3 minutes", done, total, bank)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rate := float64(r90-r10) / t90.Sub(t10).Seconds()
	end := stats()
	t.Logf("pace at %s: %d withdrawals queued over 3 nodes, paid at %.1f calls/s (background share %.1f/s); the bank refused %d for capacity",
		bank, total, rate, want, end.Rejected-base.Rejected)
	if rate > want*1.25 || rate < want*0.5 {
		t.Errorf("%s received %.1f calls/s while the queue drained, want about %.1f (the bank's background share, across all nodes)",
			bank, rate, want)
	}
	if end.Rejected != base.Rejected {
		t.Errorf("%s refused %d calls for capacity: the nodes together went over it", bank, end.Rejected-base.Rejected)
	}
}

// verify waits until everything has settled and checks the books.
func (l *nodesLoad) verify(t *testing.T, cc *banksim.ControlClient) {
	t.Helper()
	db := l.rig.db
	start := time.Now()
	var trades, notes, txns [][]string
	for deadline := start.Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		trades = pgRows(t, db, `SELECT trade_no, status, '' FROM trades`)
		notes = pgRows(t, db, `SELECT notify_id, status, '' FROM notifications`)
		txns = pgRows(t, db, `SELECT txn_id, status, kind FROM bank_txns`)
		var open []string
		for _, r := range trades {
			if l.trades[r[0]] != r[1] {
				open = append(open, "trade "+r[0]+" "+r[1])
			}
		}
		got := l.rc.snapshot()
		for _, r := range notes {
			if _, ok := got[r[0]]; r[1] != "delivered" || !ok {
				open = append(open, "notification "+r[0]+" "+r[1])
			}
		}
		for _, r := range txns {
			if r[1] != "SUCCESS" {
				open = append(open, "bank txn "+r[0]+" "+r[1])
			}
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(open)
			t.Fatalf("%d not settled 2 minutes after the load stopped:\n%s", len(open), strings.Join(open[:min(len(open), 30)], "\n"))
		}
	}
	t.Logf("settled %v after the load stopped: %d trades, %d notifications (%d copies received), %d withdrawals",
		time.Since(start).Round(100*time.Millisecond), len(trades), len(notes), l.rc.n.Load(), len(txns))

	// Every trade acknowledged exists, ended as it must, and nothing else.
	if len(trades) != len(l.trades) {
		t.Errorf("%d trades in the database, %d acknowledged", len(trades), len(l.trades))
	}
	// One notification per change: a timer that fired twice, or a move
	// made twice, would send a second one.
	want := map[string][]string{
		"TRADE_SUCCESS":  {"TRADE_SUCCESS"},
		"TRADE_CLOSED":   {"TRADE_CLOSED"},
		"TRADE_FINISHED": {"WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"},
	}
	per := map[string]map[string]int{}
	for _, n := range l.rc.snapshot() {
		if per[n.tradeNo] == nil {
			per[n.tradeNo] = map[string]int{}
		}
		per[n.tradeNo][n.status]++
	}
	bad := 0
	for no, final := range l.trades {
		got := per[no]
		ok := len(got) == len(want[final])
		for _, st := range want[final] {
			ok = ok && got[st] == 1
		}
		if !ok && bad < 10 {
			bad++
			t.Errorf("trade %s (%s): notifications %v, want one each of %v", no, final, got, want[final])
		}
	}
	if len(notes) != len(l.rc.snapshot()) {
		t.Errorf("%d notifications in the outbox, %d distinct received", len(notes), len(l.rc.snapshot()))
	}

	// Every withdrawal acknowledged was paid once, and the bank agrees.
	if len(txns) != len(l.withdrawals) {
		t.Errorf("%d bank transactions, %d withdrawals acknowledged", len(txns), len(l.withdrawals))
	}
	for _, r := range txns {
		if _, ok := l.withdrawals[r[0]]; !ok || r[2] != "withdrawal" {
			t.Errorf("bank transaction %s (%s) was never acknowledged", r[0], r[2])
		}
	}
	books, ok, err := cc.Books(context.Background())
	if err != nil || !ok {
		t.Errorf("banks' books: ok %v, %v", ok, err)
	}
	if got, want := books["CMB"].Credited, int64(len(l.withdrawals))*withdrawFen; got != want {
		t.Errorf("CMB credited %d to cards, the withdrawals acknowledged %d", got, want)
	}

	// Every wallet holds its deposit less what its answers say it paid.
	for _, u := range l.buyers {
		avail, frozen := idBalance(t, l.e.env, u.idUser)
		if w := yuan(l.funds - l.spent[u.id]); avail != w || frozen != "0.00" {
			t.Errorf("%s holds %s (frozen %s), want %s", u.login, avail, frozen, w)
		}
	}
	var check struct {
		OK         bool     `json:"ok"`
		Violations []string `json:"violations"`
	}
	if st := l.e.admin("GET", "/v1/admin/ledger/check", nil, &check); st != 200 || !check.OK || len(check.Violations) != 0 {
		t.Errorf("ledger check: %d %+v", st, check)
	}
	// Every node's row says how its process ended.
	for _, r := range pgRows(t, db, `SELECT incarnation, state, ended_by FROM nodes`) {
		if r[1] == "running" || r[1] == "draining" {
			continue // the nodes running now
		}
		if r[1] != "stopped" && r[1] != "dead" {
			t.Errorf("node %s is %s", r[0], r[1])
		}
	}
}
