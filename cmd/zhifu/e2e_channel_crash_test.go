package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"zhifu"
	"zhifu/banksim"
)

// TestChannelCrash kills the platform with SIGKILL, again and again, in the
// middle of bank traffic, and shows that no money is lost or invented. The
// banks run as their own process ("zhifu banksim"), slow, answering
// ACCEPTED and settling later, losing, repeating and reordering callbacks
// and now and then taking the money without answering; "zhifu serve" runs
// as a child on a fixed port (the banks deduplicate a request on its whole
// content, callback URL included) and is killed at a random moment of each
// round, then started again on the same database while 16 clients keep
// sending top-ups and withdrawals.
//
// Half the top-ups carry a client_ref: one that got no answer is asked
// again with it until it gets one, and must then be found, not made twice.
// A withdrawal or a top-up without client_ref that got no answer may or
// may not exist, and the platform's books say which. Once every
// transaction is final (by callback or inquiry), the test checks that every
// acknowledged one exists with its amount and card, that each wallet holds
// exactly its deposit plus its successful top-ups less its successful
// withdrawals with nothing left frozen, that the ledger audit and custody
// are clean, and that the banks' own books agree: per bank, and per card
// (the card's balance moved by exactly its successful top-ups and
// withdrawals).
func TestChannelCrash(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	rig := &crashRig{dir: dir, db: filepath.Join(dir, "zhifu.db"), adminToken: "crash-admin-token",
		controlToken: "crash-control-token", addr: crashFreeAddr(t)}
	rig.startBanks(t)
	rig.serve(t)
	defer rig.logErrors(t)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	cl := &http.Client{Transport: tr, Timeout: time.Minute}
	t.Cleanup(func() {
		cl.CloseIdleConnections()
		idClient.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	})
	e := &chEnv{env: &env{t: t, url: rig.p.url, token: rig.adminToken, clock: &manualClock{now: time.Now()}}, cl: cl}

	const clients, funds = 16, int64(1_000_000_00)
	users := e.newUsers(t, "crash", clients, allBanks, yuan(funds))
	deposits := map[string]int64{}
	for _, u := range users {
		deposits[u.id] = funds
	}
	// The cards are bound on healthy banks; the traffic meets these.
	cc := banksim.NewControlClient(rig.banksURL, rig.controlToken, nil)
	if err := cc.SetScenarios(context.Background(), banksim.Scenarios{Default: crashScenario}); err != nil {
		t.Fatal(err)
	}

	l := &crashLoad{e: e}
	var wg sync.WaitGroup
	defer func() {
		// On a failure the clients stop at once, retries and all.
		l.abort.Store(true)
		wg.Wait()
	}()
	for c, u := range users {
		r := rand.New(rand.NewPCG(seed, uint64(c)+1))
		wg.Go(func() { l.client(u, r) })
	}
	for round := 1; round <= rounds; round++ {
		wait := 500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
		time.Sleep(wait)
		before := l.snapshot()
		rig.kill(t)
		open := rig.openAtKill(t, round)
		rig.serve(t)
		after := l.snapshot()
		t.Logf("round %d: SIGKILL %s in, after %d top-ups and %d withdrawals acknowledged; open bank transactions at the kill: %s; "+
			"requests cut off: %d top-ups with client_ref, %d without, %d withdrawals", round, wait.Round(time.Millisecond),
			before.topups, before.withdrawals, open, after.keyedCut-before.keyedCut, after.plainCut-before.plainCut,
			after.withdrawalsCut-before.withdrawalsCut)
	}
	// The last process takes new traffic beside what it resumed.
	time.Sleep(time.Second)
	l.stop.Store(true)
	wg.Wait()
	for _, err := range l.errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	s := l.snapshot()
	t.Logf("load: %d top-ups and %d withdrawals acknowledged; cut off by a kill: %d top-ups with client_ref (asked again, %d of them "+
		"found committed), %d without, %d withdrawals; %d refused by a bank's state", s.topups, s.withdrawals, s.keyedCut,
		l.found.Load(), s.plainCut, s.withdrawalsCut, l.refused.Load())
	if s.topups == 0 || s.withdrawals == 0 {
		t.Fatalf("nothing acknowledged: %+v", s)
	}

	// Every transaction must reach SUCCESS or FAILED by callback or inquiry.
	start := time.Now()
	var rows map[string]crashRow
	for deadline := start.Add(3 * time.Minute); ; time.Sleep(time.Second) {
		rows = e.crashRows(t, users)
		var open []string
		for _, r := range rows {
			if r.Status != "SUCCESS" && r.Status != "FAILED" {
				open = append(open, fmt.Sprintf("%s %s %s %s %s of %s, created %s", r.kind, r.id, r.Status, r.Bank, r.Amount, r.user, r.CreatedAt))
			}
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(open)
			t.Fatalf("%d transactions still open %s after the load stopped:\n%s", len(open), time.Since(start).Round(time.Second),
				strings.Join(open[:min(len(open), 50)], "\n"))
		}
	}
	t.Logf("every transaction final %s after the load stopped", time.Since(start).Round(100*time.Millisecond))

	// Every acknowledged request exists as it was asked; one nobody was
	// told of is one whose answer a kill cut off, never one asked again by
	// its client_ref.
	acked := map[string]bool{}
	for _, a := range l.acked {
		acked[a.id] = true
		r, ok := rows[a.id]
		switch {
		case !ok:
			t.Errorf("acknowledged %s %s of %s (%s) is not in the platform's list", a.kind, a.id, a.user.login, yuan(a.fen))
		case r.kind != a.kind || r.user != a.user.id || r.fen != a.fen || r.CardID != a.card:
			t.Errorf("acknowledged %s %s of %s, %s to card %s, is listed as %s of %s, %s to card %s",
				a.kind, a.id, a.user.id, yuan(a.fen), a.card, r.kind, r.user, r.Amount, r.CardID)
		}
	}
	unheard := map[string]int64{}
	for id, r := range rows {
		if !acked[id] {
			unheard[r.kind]++
		}
	}
	if unheard["topup"] > s.plainCut || unheard["withdrawal"] > s.withdrawalsCut {
		t.Errorf("nobody was told of %d top-ups and %d withdrawals, but only %d top-ups without client_ref and %d withdrawals were cut off",
			unheard["topup"], unheard["withdrawal"], s.plainCut, s.withdrawalsCut)
	}

	// The platform's books: each wallet, and the ledger.
	held := map[string]int64{}       // user → expected available
	perBank := map[string][2]int64{} // bank → debited, credited
	perCard := map[string]int64{}    // card → change at the bank
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.kind+" "+r.Status]++
		if r.Status != "SUCCESS" {
			continue
		}
		v := perBank[r.Bank]
		if r.kind == "topup" {
			held[r.user] += r.fen
			perCard[r.CardID] -= r.fen
			v[0] += r.fen
		} else {
			held[r.user] -= r.fen
			perCard[r.CardID] += r.fen
			v[1] += r.fen
		}
		perBank[r.Bank] = v
	}
	t.Logf("outcomes: %v; committed though their answer was cut off: %d top-ups, %d withdrawals", counts, unheard["topup"], unheard["withdrawal"])
	var customers int64
	for _, u := range users {
		want := deposits[u.id] + held[u.id]
		customers += want
		avail, frozen := idBalance(t, e.env, u.idUser)
		if avail != yuan(want) || frozen != "0.00" {
			t.Errorf("%s holds %s (frozen %s), want %s: deposit %s and top-ups less withdrawals %s",
				u.login, avail, frozen, yuan(want), yuan(deposits[u.id]), zhifu.Amount(held[u.id]))
		}
	}
	var check struct {
		OK      bool `json:"ok"`
		Custody struct {
			CustomerFunds string `json:"customer_funds"`
			BankFunds     string `json:"bank_funds"`
			OK            bool   `json:"ok"`
		} `json:"custody"`
		Violations []string `json:"violations"`
	}
	if st := e.admin("GET", "/v1/admin/ledger/check", nil, &check); st != 200 || !check.OK || len(check.Violations) != 0 ||
		!check.Custody.OK || check.Custody.CustomerFunds != yuan(customers) {
		t.Errorf("ledger check: %d %+v, want ok with customer funds %s", st, check, yuan(customers))
	}

	// The banks' books, as the bank reports them.
	books, ok, err := cc.Books(context.Background())
	if err != nil || !ok {
		t.Errorf("banks' books: ok %v, %v: %+v", ok, err, books)
	}
	for _, bank := range allBanks {
		b := books[bank]
		if b.Debited != perBank[bank][0] || b.Credited != perBank[bank][1] || b.Accepted != 0 {
			t.Errorf("%s's books: debited %d, credited %d, %d undecided; the platform's top-ups %d, withdrawals %d",
				bank, b.Debited, b.Credited, b.Accepted, perBank[bank][0], perBank[bank][1])
		}
	}

	// Stopped cleanly, the platform's records and the banks' books are read
	// directly: each card's balance moved by exactly what the platform
	// says it took from and paid to that card.
	if code := rig.p.stop(t); code != 0 {
		t.Errorf("zhifu serve exited %d after SIGTERM", code)
	}
	if code := rig.banks.stop(t); code != 0 {
		t.Errorf("zhifu banksim exited %d after SIGTERM", code)
	}
	cards, resolved := rig.records(t)
	t.Logf("resolved by: %s", resolved)
	sim, err := banksim.New(banksim.Config{DBPath: rig.banksDB, Secrets: crashSecretMap(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, c := range cards {
		bal, ok, err := sim.CardBalance(c.bank, c.token)
		if err != nil || !ok {
			t.Fatalf("balance of card %s at %s: %v %v", c.id, c.bank, ok, err)
		}
		if got, want := bal-banksim.StartingBalanceDefault, perCard[c.id]; got != want {
			t.Errorf("card %s at %s moved %d at the bank, the platform's top-ups and withdrawals %d", c.id, c.bank, got, want)
		}
	}
	if err := sim.CheckBooks(); err != nil {
		t.Error(err)
	}
}

// crashScenario is every bank's behaviour during the load: slow, deciding
// after a delay, a tenth of transactions failing, callbacks lost,
// repeated and reordered, and a few transactions carried out without an
// answer. Nothing here needs the statement: every outcome can be learnt by
// inquiry within seconds.
var crashScenario = banksim.Scenario{
	Latency:               banksim.Latency{FixedMs: 10, JitterMs: 40},
	SettleDelayMs:         80,
	FailureRate:           0.1,
	TimeoutRate:           0.03,
	TimeoutHoldMs:         200,
	CallbackLossRate:      0.3,
	CallbackDuplicateRate: 0.2,
	CallbackReorderRate:   0.2,
	CallbackReorderMs:     300,
}

const crashSecrets = "ICBC=crash-icbc,CMB=crash-cmb,CCB=crash-ccb,ABC=crash-abc,BOC=crash-boc,CEB=crash-ceb"

func crashSecretMap(t *testing.T) map[string]string {
	t.Helper()
	m, err := parseBankSecrets(crashSecrets)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// crashFreeAddr picks a free port once; the platform listens there on
// every start.
func crashFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// crashRig is the two child processes and what they keep on disk.
type crashRig struct {
	dir, db, addr            string
	adminToken, controlToken string
	banks                    *child
	banksURL, banksDB        string
	p                        *child        // the platform now running
	logs                     []*syncBuffer // every platform process's log
}

var banksimListeningRE = regexp.MustCompile(`msg="banksim listening" url=(http://\S+)`)

func (r *crashRig) startBanks(t *testing.T) {
	t.Helper()
	r.banksDB = filepath.Join(r.dir, "banks.db")
	c, err := startChild(t, banksimListeningRE, "banksim", "--addr", "127.0.0.1:0", "--db", r.banksDB,
		"--control-token", r.controlToken, "--secrets", crashSecrets)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.log.String())
	}
	r.banks, r.banksURL = c, c.url
}

// serve starts "zhifu serve" on the rig's port and data.
func (r *crashRig) serve(t *testing.T) {
	t.Helper()
	c := serveOn(t, r.addr, "--data", r.dir, "--db", "sqlite://"+r.db,
		"--admin-token", r.adminToken, "--banks-url", r.banksURL, "--banks-secrets", crashSecrets)
	r.logs = append(r.logs, c.log)
	r.p = c
}

// serveOn starts "zhifu serve" listening on addr, a port picked free once
// and used again on every restart. Should another socket hold it for a
// moment, it tries again.
func serveOn(t *testing.T, addr string, args ...string) *child {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := startChild(t, listeningRE, append([]string{"serve", "--addr", addr}, args...)...)
		if err == nil {
			if c.url != "http://"+addr {
				t.Fatalf("zhifu serve listens at %s, want http://%s", c.url, addr)
			}
			return c
		}
		if !strings.Contains(c.log.String(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("zhifu serve: %v\n%s", err, c.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill sends SIGKILL to the platform and waits until it is gone.
func (r *crashRig) kill(t *testing.T) {
	t.Helper()
	if err := r.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.p.exited
}

// openAtKill counts the bank transactions not final in what the killed
// process left on disk. It reads a copy, so that the next start recovers
// the database itself.
func (r *crashRig) openAtKill(t *testing.T, round int) string {
	t.Helper()
	cp := filepath.Join(r.dir, fmt.Sprintf("kill-%d", round))
	if err := os.Mkdir(cp, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(r.db + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(cp, "zhifu.db"+suffix), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := openStore(context.Background(), "sqlite://"+filepath.Join(cp, "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		st.Close()
		os.RemoveAll(cp)
	}()
	rows, err := st.Reader().Query(context.Background(), `SELECT kind, stage, count(*) FROM bank_txns
		WHERE status IN ('QUEUED', 'PROCESSING') GROUP BY kind, stage ORDER BY kind, stage`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	total := int64(0)
	for rows.Next() {
		var kind, stage string
		var n int64
		if err := rows.Scan(&kind, &stage, &n); err != nil {
			t.Fatal(err)
		}
		total += n
		parts = append(parts, fmt.Sprintf("%s/%s %d", kind, stage, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

type crashCard struct{ id, bank, token string }

// records reads, from the stopped platform's database, every card's bank
// token and how the bank transactions were resolved.
func (r *crashRig) records(t *testing.T) ([]crashCard, string) {
	t.Helper()
	ctx := context.Background()
	st, err := openStore(ctx, "sqlite://"+r.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Reader().Query(ctx, `SELECT card_id, bank, card_token FROM cards ORDER BY card_id`)
	if err != nil {
		t.Fatal(err)
	}
	var cards []crashCard
	for rows.Next() {
		var c crashCard
		if err := rows.Scan(&c.id, &c.bank, &c.token); err != nil {
			t.Fatal(err)
		}
		cards = append(cards, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	rows, err = st.Reader().Query(ctx, `SELECT kind, resolved_by, count(*) FROM bank_txns GROUP BY kind, resolved_by ORDER BY kind, resolved_by`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var kind, by string
		var n int64
		if err := rows.Scan(&kind, &by, &n); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s/%s %d", kind, by, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cards, strings.Join(parts, ", ")
}

// logErrors shows what the platform logged as errors, for the record, and
// fails the test on a callback for a transaction the platform does not
// know: the bank had a request the platform had not written down first.
func (r *crashRig) logErrors(t *testing.T) {
	t.Helper()
	var lines []string
	for _, l := range r.logs {
		for line := range strings.SplitSeq(l.String(), "\n") {
			if strings.Contains(line, "unknown transaction") {
				t.Errorf("the platform logged: %s", line)
			} else if strings.Contains(line, "level=ERROR") {
				lines = append(lines, line)
			}
		}
	}
	if len(lines) > 0 {
		t.Logf("the platform logged %d errors, the first:\n%s", len(lines), strings.Join(lines[:min(len(lines), 10)], "\n"))
	}
}

// crashLoad is the clients' traffic and what they were told.
type crashLoad struct {
	e           *chEnv
	stop, abort atomic.Bool

	mu    sync.Mutex
	acked []crashAck
	errs  []error
	// keyedCut, plainCut and withdrawalsCut count requests whose
	// connection broke after they were sent (not those refused while the
	// platform was down): top-ups with and without client_ref, and
	// withdrawals. Each may have been committed.
	keyedCut, plainCut, withdrawalsCut int64
	found                              atomic.Int64 // top-ups asked again that the platform had committed
	refused                            atomic.Int64 // 503 for a bank's state
}

type crashAck struct {
	kind, id, card string
	user           *chUser
	fen            int64
}

// crashReq is one request a client makes, kept while it must be asked
// again.
type crashReq struct {
	topup     bool
	card, ref string // ref: the top-up's client_ref, or none
	fen       int64
	asked     bool // sent with ref before without an answer
}

type crashCounts struct {
	topups, withdrawals                int64
	keyedCut, plainCut, withdrawalsCut int64
}

func (l *crashLoad) snapshot() crashCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	var c crashCounts
	for _, a := range l.acked {
		if a.kind == "topup" {
			c.topups++
		} else {
			c.withdrawals++
		}
	}
	c.keyedCut, c.plainCut, c.withdrawalsCut = l.keyedCut, l.plainCut, l.withdrawalsCut
	return c
}

func (l *crashLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, err)
	}
}

// crashRetryGap spaces a client's requests while the platform is down.
const crashRetryGap = 20 * time.Millisecond

// client sends u's top-ups and withdrawals, one at a time, until stopped;
// a top-up with a client_ref that got no answer is asked again until it
// has one, even after the stop.
func (l *crashLoad) client(u *chUser, r *rand.Rand) {
	var retry *crashReq
	var giveUp time.Time
	for n := 1; !l.abort.Load(); n++ {
		if l.stop.Load() {
			if retry == nil {
				return
			}
			if giveUp.IsZero() {
				giveUp = time.Now().Add(time.Minute)
			} else if time.Now().After(giveUp) {
				l.fail(fmt.Errorf("top-up %s of %s: no answer for a minute after the load stopped", retry.ref, u.login))
				return
			}
		}
		q := retry
		if q == nil {
			bank := u.order[r.IntN(len(u.order))]
			q = &crashReq{topup: r.IntN(2) == 0, card: u.cards[bank], fen: amountOf(r)}
			if r.IntN(2) == 0 {
				q.ref = fmt.Sprintf("crash-%d", n)
			}
		}
		retry = nil
		// A moment between requests, as people take: the load stays below
		// what the machine can do, so the kills land in ordinary traffic.
		time.Sleep(time.Duration(r.IntN(10)) * time.Millisecond)
		if q.topup {
			retry = l.topup(u, q)
		} else {
			l.withdraw(u, q)
		}
	}
}

// mayHaveArrived reports whether a request that failed with err may have
// reached the platform: anything but a refused connection.
func mayHaveArrived(err error) bool { return !errors.Is(err, syscall.ECONNREFUSED) }

// topup sends q and returns it if it must be asked again: a top-up with a
// client_ref that got no answer.
func (l *crashLoad) topup(u *chUser, q *crashReq) *crashReq {
	body := map[string]string{"amount": yuan(q.fen), "card_id": q.card}
	if q.ref != "" {
		body["client_ref"] = q.ref
	}
	s, _, out, err := l.e.do(u.token, "POST", "/v1/topups", body, "")
	id, _ := out["topup_id"].(string)
	switch {
	case err != nil:
		if mayHaveArrived(err) && !q.asked {
			l.mu.Lock()
			if q.ref != "" {
				l.keyedCut++
				q.asked = true
			} else {
				l.plainCut++
			}
			l.mu.Unlock()
		}
		time.Sleep(crashRetryGap)
		if q.ref == "" {
			return nil
		}
		return q
	case s == 503 && q.asked:
		// The bank is refusing for now, and the first attempt is looked
		// up before that: it was not committed. Ask until answered.
		time.Sleep(crashRetryGap)
		return q
	case s == 503:
		l.refused.Add(1)
		return nil
	case id == "" || out["amount"] != yuan(q.fen) || out["card_id"] != q.card || (s != 201 && !(s == 200 && q.asked)):
		l.fail(fmt.Errorf("top-up %s of %s: %d %v", q.ref, u.login, s, out))
		return nil
	}
	if s == 200 {
		l.found.Add(1)
	}
	l.ack(crashAck{kind: "topup", id: id, card: q.card, user: u, fen: q.fen})
	return nil
}

func (l *crashLoad) withdraw(u *chUser, q *crashReq) {
	s, _, out, err := l.e.do(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": yuan(q.fen), "card_id": q.card}, "")
	id, _ := out["withdrawal_id"].(string)
	switch {
	case err != nil:
		if mayHaveArrived(err) {
			l.mu.Lock()
			l.withdrawalsCut++
			l.mu.Unlock()
		}
		time.Sleep(crashRetryGap)
	case s == 503:
		l.refused.Add(1)
	case s != 202 || id == "" || out["status"] != "QUEUED" || out["amount"] != yuan(q.fen) || out["card_id"] != q.card:
		l.fail(fmt.Errorf("withdrawal of %s: %d %v", u.login, s, out))
	default:
		l.ack(crashAck{kind: "withdrawal", id: id, card: q.card, user: u, fen: q.fen})
	}
}

func (l *crashLoad) ack(a crashAck) {
	l.mu.Lock()
	l.acked = append(l.acked, a)
	l.mu.Unlock()
}

// crashRow is a top-up or withdrawal as the platform lists it.
type crashRow struct {
	TopupID      string `json:"topup_id"`
	WithdrawalID string `json:"withdrawal_id"`
	Status       string `json:"status"`
	Amount       string `json:"amount"`
	Bank         string `json:"bank"`
	CardID       string `json:"card_id"`
	CreatedAt    string `json:"created_at"`

	id, kind, user string
	fen            int64
}

// crashRows lists every top-up and withdrawal of every user, page by page.
func (e *chEnv) crashRows(t *testing.T, users []*chUser) map[string]crashRow {
	t.Helper()
	out := map[string]crashRow{}
	for _, u := range users {
		for _, kind := range []string{"topup", "withdrawal"} {
			after := ""
			for {
				path := "/v1/" + kind + "s?limit=100"
				if after != "" {
					path += "&" + query("starting_after", after)
				}
				var page struct {
					Data    []crashRow `json:"data"`
					HasMore bool       `json:"has_more"`
				}
				if s := e.bearer(u.token, "GET", path, nil, &page); s != 200 {
					t.Fatalf("GET %s as %s: %d", path, u.login, s)
				}
				for _, r := range page.Data {
					r.id, r.kind, r.user = r.TopupID+r.WithdrawalID, kind, u.id
					a, err := zhifu.ParseAmount(r.Amount, "amount")
					if err != nil || r.id == "" {
						t.Fatalf("listed %s %+v: %v", kind, r, err)
					}
					r.fen = int64(a)
					if _, dup := out[r.id]; dup {
						t.Fatalf("%s %s listed twice", kind, r.id)
					}
					out[r.id] = r
					after = r.id
				}
				if !page.HasMore {
					break
				}
			}
		}
	}
	return out
}
