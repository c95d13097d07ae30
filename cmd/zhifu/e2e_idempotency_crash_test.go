package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"zhifu"
)

// TestIdempotencyCrash kills "zhifu serve" with SIGKILL again and again
// while clients send keyed requests (transfers, top-ups, withdrawals,
// trades created and paid), on SQLite and PostgreSQL. A client whose
// request got no answer sends it again with the same Idempotency-Key
// until it gets one. After each restart that retry must be answered at
// once: never IDEMPOTENCY_KEY_IN_USE, since nothing is running any more.
// At the end every request was answered, and every wallet holds exactly
// what the answers say: nothing applied twice, nothing lost.
func TestIdempotencyCrash(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 2
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { idemCrash(t, backend, rounds) })
	}
}

// idemRig is one platform process at a time on one port and data folder.
type idemRig struct {
	t             *testing.T
	dir, db, addr string
	token         string
	p             *child
	logs          []*syncBuffer
	restarts      atomic.Int64 // how many times the platform was started
	up            atomic.Bool
}

func (r *idemRig) serve() {
	r.t.Helper()
	c := serveOn(r.t, r.addr, "--data", r.dir, "--db", r.db, "--admin-token", r.token)
	r.logs = append(r.logs, c.log)
	r.p = c
	r.restarts.Add(1)
	r.up.Store(true)
}

func (r *idemRig) kill() {
	r.t.Helper()
	r.up.Store(false)
	if err := r.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	<-r.p.exited
}

// idemLoad is the clients' shared record.
type idemLoad struct {
	e    *chEnv
	rig  *idemRig
	stop atomic.Bool

	mu   sync.Mutex
	errs []string
	// moved is each user's expected change of available balance, from the
	// answers; paid is what the seller received.
	moved          map[string]int64
	topups, wds    []string // ids, for the final check of their outcome
	topupOf, wdOf  map[string]*chUser
	amountOf       map[string]int64
	cut, recovered atomic.Int64 // requests whose answer a kill cut off; those answered after a restart
	answered       atomic.Int64
}

func (l *idemLoad) fail(format string, args ...any) {
	l.mu.Lock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
	l.mu.Unlock()
	l.stop.Store(true)
}

// send sends one keyed request until it is answered, and returns the
// answer. A connection cut, 500 or 503 is asked again with the same key;
// a 409 IDEMPOTENCY_KEY_IN_USE is a failure, since each client has one
// request in flight.
func (l *idemLoad) send(token, method, path string, body map[string]any, key string, sign *merchantKey) (int, map[string]any, bool) {
	cut := false
	for attempt := 0; ; attempt++ {
		if l.stop.Load() && attempt > 0 && !l.rig.up.Load() {
			return 0, nil, false
		}
		var status int
		var out map[string]any
		var err error
		if sign != nil {
			status, out, err = l.signed(*sign, method, path, body, key)
		} else {
			status, _, out, err = l.e.do(token, method, path, body, key)
		}
		switch {
		case err != nil || status == 500 || status == 503:
			if !cut {
				cut = true
				l.cut.Add(1)
			}
			if attempt > 2000 {
				l.fail("%s %s key %s: no answer after %d attempts: %d %v %v", method, path, key, attempt, status, out, err)
				return 0, nil, false
			}
			time.Sleep(20 * time.Millisecond)
			continue
		case status == 409 && errorCode(out) == zhifu.IdempotencyKeyInUse:
			l.fail("%s %s key %s: %d %v after %d attempts (cut off: %v)", method, path, key, status, out, attempt, cut)
			return 0, nil, false
		}
		if cut {
			l.recovered.Add(1)
		}
		l.answered.Add(1)
		return status, out, true
	}
}

// signed sends a merchant request, signed afresh on every attempt (a new
// nonce and timestamp; the body, and so the key's request, unchanged).
func (l *idemLoad) signed(k merchantKey, method, path string, body map[string]any, key string) (int, map[string]any, error) {
	s := jsonBodyNoT(body)
	req, err := http.NewRequest(method, l.e.url+path, strings.NewReader(s))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", signMerchant(k, method, path, s, time.Now(), newNonce()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := l.e.cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := jsonDecoder(resp.Body).Decode(&out); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, out, nil
}

func (l *idemLoad) add(user string, fen int64) {
	l.mu.Lock()
	l.moved[user] += fen
	l.mu.Unlock()
}

// client sends one keyed request after another until told to stop.
func (l *idemLoad) client(c int, u, peer *chUser, seller *chUser, mk merchantKey, r *rand.Rand) {
	for n := 0; !l.stop.Load(); n++ {
		key := fmt.Sprintf("c%d-%d", c, n)
		fen := 1 + r.Int64N(500)
		amount := yuan(fen)
		card := u.cards["ICBC"]
		switch r.IntN(4) {
		case 0:
			st, out, ok := l.send(u.token, "POST", "/v1/transfers",
				map[string]any{"to_user_id": peer.id, "amount": amount}, key, nil)
			if !ok {
				return
			}
			if st != 201 || out["status"] != "SUCCESS" {
				l.fail("transfer %s: %d %v", key, st, out)
				return
			}
			l.add(u.id, -fen)
			l.add(peer.id, fen)
		case 1:
			st, out, ok := l.send(u.token, "POST", "/v1/withdrawals", map[string]any{"amount": amount, "card_id": card}, key, nil)
			if !ok {
				return
			}
			if st != 202 {
				l.fail("withdrawal %s: %d %v", key, st, out)
				return
			}
			id := out["withdrawal_id"].(string)
			l.mu.Lock()
			l.wds = append(l.wds, id)
			l.wdOf[id], l.amountOf[id] = u, fen
			l.mu.Unlock()
		case 2:
			st, out, ok := l.send(u.token, "POST", "/v1/topups", map[string]any{"amount": amount, "card_id": card}, key, nil)
			if !ok {
				return
			}
			if st != 200 && st != 201 {
				l.fail("top-up %s: %d %v", key, st, out)
				return
			}
			id := out["topup_id"].(string)
			l.mu.Lock()
			l.topups = append(l.topups, id)
			l.topupOf[id], l.amountOf[id] = u, fen
			l.mu.Unlock()
		case 3:
			st, out, ok := l.send("", "POST", "/v1/trades", map[string]any{"out_trade_no": key, "subject": "crash",
				"total_amount": amount, "mode": "instant"}, key+"-create", &mk)
			if !ok {
				return
			}
			if st != 201 {
				l.fail("create trade %s: %d %v", key, st, out)
				return
			}
			tradeNo := out["trade_no"].(string)
			st, out, ok = l.send(u.token, "POST", "/v1/trades/"+tradeNo+"/pay", map[string]any{"method": "balance"}, key+"-pay", nil)
			if !ok {
				return
			}
			if st != 200 || out["status"] != "TRADE_SUCCESS" {
				l.fail("pay %s: %d %v", tradeNo, st, out)
				return
			}
			l.add(u.id, -fen)
			l.add(seller.id, fen)
		}
	}
}

func idemCrash(t *testing.T, backend string, rounds int) {
	seed := uint64(time.Now().UnixNano())
	if s := testGetenv("ZHIFU_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (ZHIFU_TEST_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	rig := &idemRig{t: t, dir: dir, db: testDatabase(t, dir, backend), addr: crashFreeAddr(t), token: "idem-crash-admin"}
	rig.serve()
	defer func() {
		if t.Failed() {
			for i, l := range rig.logs {
				t.Logf("platform process %d log (last lines):\n%s", i+1, lastLines(l.String(), 20))
			}
		}
	}()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		cl.CloseIdleConnections()
		idClient.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	})
	e := &chEnv{env: &env{t: t, url: rig.p.url, token: rig.token, clock: &manualClock{now: time.Now()}}, cl: cl}
	const clients, funds = 8, int64(10_000_00)
	users := e.newUsers(t, "ik"+backend[:2], clients+1, []string{"ICBC"}, yuan(funds))
	seller, buyers := users[clients], users[:clients]
	mk := idNewMerchant(t, e.env, seller.id)

	l := &idemLoad{e: e, rig: rig, moved: map[string]int64{}, topupOf: map[string]*chUser{},
		wdOf: map[string]*chUser{}, amountOf: map[string]int64{}}
	var wg sync.WaitGroup
	for c, u := range buyers {
		r := rand.New(rand.NewPCG(seed, uint64(c)+1))
		wg.Go(func() { l.client(c, u, buyers[(c+1)%clients], seller, mk, r) })
	}
	for round := 1; round <= rounds && !l.stop.Load(); round++ {
		wait := 300*time.Millisecond + time.Duration(rng.Int64N(int64(900*time.Millisecond)))
		time.Sleep(wait)
		before := l.answered.Load()
		rig.kill()
		rig.serve()
		t.Logf("round %d: SIGKILL after %s; %d answers so far", round, wait.Round(time.Millisecond), before)
	}
	time.Sleep(500 * time.Millisecond)
	l.stop.Store(true)
	wg.Wait()
	for _, err := range l.errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d requests answered; %d cut off by a kill, every one answered after the restart (%d)",
		l.answered.Load(), l.cut.Load(), l.recovered.Load())
	if l.recovered.Load() != l.cut.Load() {
		t.Errorf("%d requests cut off but %d answered afterwards", l.cut.Load(), l.recovered.Load())
	}

	// Top-ups and withdrawals finish at the bank; each moves its amount
	// once, on success.
	final := func(path string) (string, bool) {
		st, _, out, err := e.do(e.token, "GET", path, nil, "")
		if err != nil || st != 200 {
			return "", false
		}
		s, _ := out["status"].(string)
		return s, s == "SUCCESS" || s == "FAILED"
	}
	deadline := time.Now().Add(2 * time.Minute)
	settle := func(ids []string, of map[string]*chUser, path string, sign int64) {
		for _, id := range ids {
			u := of[id]
			for {
				st, _, out, err := e.do(u.token, "GET", path+id, nil, "")
				s, _ := out["status"].(string)
				if err == nil && st == 200 && (s == "SUCCESS" || s == "FAILED") {
					if s == "SUCCESS" {
						l.add(u.id, sign*l.amountOf[id])
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s%s still %d %v", path, id, st, out)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	_ = final
	settle(l.topups, l.topupOf, "/v1/topups/", 1)
	settle(l.wds, l.wdOf, "/v1/withdrawals/", -1)

	for _, u := range users {
		avail, frozen := idBalance(t, e.env, u.idUser)
		if want := yuan(funds + l.moved[u.id]); avail != want || frozen != "0.00" {
			t.Errorf("%s holds %s (frozen %s), want %s", u.login, avail, frozen, want)
		}
	}
	var check struct {
		OK         bool     `json:"ok"`
		Violations []string `json:"violations"`
	}
	if st := e.admin("GET", "/v1/admin/ledger/check", nil, &check); st != 200 || !check.OK {
		t.Errorf("ledger check: %d %+v", st, check)
	}
	t.Logf("%d top-ups and %d withdrawals, %d platform starts", len(l.topups), len(l.wds), rig.restarts.Load())
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
