package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"zhifu/campaign"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/banksim"
	"zhifu/channel"
)

// The bank channels' end-to-end harness: the real program over a fresh
// database of either store, its simulated banks in-process on their own
// port, both on one manual clock; everything driven over real HTTP.

// chOptions adjust a channel test's platform.
type chOptions struct {
	// channels adjusts the channels' configuration after the test
	// defaults (ample capacity, 1 s calls).
	channels func(*channel.Config)
	// banks adjusts the simulator's.
	banks func(*banksim.Config)
	// campaigns adjusts the campaign service's.
	campaigns func(*campaign.Config)
	// realClock runs the platform and its banks on the system clock, for
	// the load tests that measure real latency and pace; e.clock then only
	// signs merchant requests.
	realClock bool
}

// chEnv is one platform with its banks.
type chEnv struct {
	*env
	start time.Time
	banks *banksim.Sim
	ch    *channel.Service
	cl    *http.Client
}

// newChannelEnv starts the platform as newEnv does, with the channels
// configured for tests.
func newChannelEnv(t testing.TB, backend string, o chOptions) *chEnv {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, backend)
	clock := &manualClock{now: time.Now().UTC()}
	tm := newTestMain(harnessEnv)
	if !o.realClock {
		tm.Clock = clock
	}
	tm.ConfigureChannels = func(c *channel.Config) {
		// Capacity far above what a test sends, so that the buckets,
		// which refill only as the manual clock moves, never pace it
		// unless a test asks.
		c.CapacityDefault = 1e5
		c.CallTimeout = time.Second
		if o.channels != nil {
			o.channels(c)
		}
	}
	tm.ConfigureBanks = o.banks
	tm.ConfigureCampaigns = o.campaigns
	serveTestMain(t, tm, "--data", dir, "--db", db)
	// env's helpers need a *testing.T; a benchmark uses e.do only.
	tt, _ := t.(*testing.T)
	e := &env{t: tt, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	cl := &http.Client{Transport: tr, Timeout: time.Minute}
	// Runs before Close: idle connections would hold the server's
	// graceful shutdown.
	t.Cleanup(func() {
		cl.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
		idClient.CloseIdleConnections()
	})
	return &chEnv{env: e, start: clock.Now(), banks: tm.Banks, ch: tm.Channels, cl: cl}
}

// forEachChannelStore runs fn on SQLite and PostgreSQL.
func forEachChannelStore(t *testing.T, o chOptions, fn func(t *testing.T, e *chEnv)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { fn(t, newChannelEnv(t, backend, o)) })
	}
}

// do sends one request, safe from many goroutines (no t.Fatal): the
// status and the decoded body.
func (e *chEnv) do(token, method, path string, body any, key string) (int, http.Header, map[string]any, error) {
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(jsonBodyNoT(body)))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := e.cl.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	dec := jsonDecoder(resp.Body)
	if err := dec.Decode(&out); err != nil && resp.Header.Get("Content-Type") != "" &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, out, nil
}

// chUser is a user with bound cards, one per bank named.
type chUser struct {
	idUser
	cards map[string]string // bank → card_id
	order []string          // banks in binding order
}

// cardNumber makes a 16-digit number passing the Luhn check, different
// for every n.
func cardNumber(n int) string {
	digits := fmt.Sprintf("622202%09d", n)
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return digits + fmt.Sprint((10-sum%10)%10)
}

var cardSeq atomic.Int64

// newUsers registers n users, binds each a card at every bank of banks
// (rotated so that first cards spread over the banks), and credits each
// funds by an operator deposit when funds is not "".
func (e *chEnv) newUsers(t *testing.T, prefix string, n int, banks []string, funds string) []*chUser {
	t.Helper()
	ids := idNewUsers(t, e.env, prefix, n)
	users := make([]*chUser, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range ids {
		u := &chUser{idUser: id, cards: map[string]string{}}
		users[i] = u
		wg.Go(func() {
			for j := range banks {
				bank := banks[(i+j)%len(banks)]
				no := cardNumber(int(cardSeq.Add(1)))
				s, _, out, err := e.do(u.token, "POST", "/v1/cards",
					map[string]string{"bank": bank, "card_no": no, "holder": "持卡人 " + u.login}, "")
				if err != nil || s != 201 || out["last4"] != no[len(no)-4:] {
					errs[i] = fmt.Errorf("bind %s card of %s: %d %v %v", bank, u.login, s, out, err)
					return
				}
				u.cards[bank] = out["card_id"].(string)
				u.order = append(u.order, bank)
			}
			if funds != "" {
				s, _, out, err := e.do(e.token, "POST", "/v1/admin/deposits", map[string]any{"user_id": u.id,
					"amount": funds, "bank": banks[i%len(banks)], "reference": "fund-" + u.login}, "")
				if err != nil || s != 201 {
					errs[i] = fmt.Errorf("fund %s: %d %v %v", u.login, s, out, err)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return users
}

// unresolved counts the bank transactions not final.
func (e *chEnv) unresolved(t *testing.T) int {
	t.Helper()
	var n int64
	if err := e.m.store.Reader().QueryRow(context.Background(),
		`SELECT count(*) FROM bank_txns WHERE status IN ('QUEUED', 'PROCESSING')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// waitQuiet waits until the channels' workers have nothing left to do now,
// at most d of real time.
func (e *chEnv) waitQuiet(d time.Duration) bool {
	e.ch.Kick()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if e.ch.Quiet() {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	if e.t != nil {
		e.t.Logf("channels not quiet after %s: %s", d, e.ch.WorkState())
	}
	return false
}

// settle moves the clock by step until every bank transaction is final, at
// most until limit of clock time has passed; it fails the test if some
// are left. Each step waits for the workers to finish what became due.
func (e *chEnv) settle(t *testing.T, step, limit time.Duration) {
	t.Helper()
	e.waitQuiet(5 * time.Second)
	for moved := time.Duration(0); ; moved += step {
		if e.unresolved(t) == 0 {
			return
		}
		if moved >= limit {
			break
		}
		e.clock.Advance(step)
		e.waitQuiet(5 * time.Second)
		e.waitBanksDecided(t, 5*time.Second)
	}
	rows, err := e.m.store.Reader().Query(context.Background(), `SELECT txn_id, kind, bank, status, stage, attempts
		FROM bank_txns WHERE status IN ('QUEUED', 'PROCESSING') LIMIT 5`)
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var id, kind, bank, status, stage string
			var attempts int64
			rows.Scan(&id, &kind, &bank, &status, &stage, &attempts)
			t.Logf("unresolved: %s %s %s %s %s after %d attempts", id, kind, bank, status, stage, attempts)
		}
	}
	t.Fatalf("%d bank transactions unresolved after %s of clock time", e.unresolved(t), limit)
}

// waitBanksDecided waits, at most d of real time, until the banks have
// decided every transaction they accepted: a settle delay is real time
// (time on the wire), which moving the clock does not shorten. Then it
// lets the workers take in the callbacks.
func (e *chEnv) waitBanksDecided(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		accepted := int64(0)
		for _, bank := range e.banks.Banks() {
			b, err := e.banks.Books(bank)
			if err != nil {
				t.Fatal(err)
			}
			accepted += b.Accepted
		}
		if accepted == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("banks still have %d transactions undecided", accepted)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.waitQuiet(time.Second)
}

// chTxn is a bank transaction row as the verification reads it.
type chTxn struct {
	id, kind, user, bank, status string
	amount                       int64
}

func (e *chEnv) txns(t *testing.T) []chTxn {
	t.Helper()
	rows, err := e.m.store.Reader().Query(context.Background(),
		`SELECT txn_id, kind, user_id, bank, status, amount FROM bank_txns ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []chTxn
	for rows.Next() {
		var x chTxn
		if err := rows.Scan(&x.id, &x.kind, &x.user, &x.bank, &x.status, &x.amount); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

// statementLines reads every bank's statements from the test's first day
// to the clock's, keyed by request id.
func (e *chEnv) statementLines(t *testing.T) map[string]bankapi.StatementLine {
	t.Helper()
	bj := time.FixedZone("CST", 8*3600)
	day := func(x time.Time) time.Time {
		y, m, d := x.In(bj).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, bj)
	}
	out := map[string]bankapi.StatementLine{}
	for _, bank := range e.banks.Banks() {
		secret, _ := e.banks.Secret(bank)
		c := bankapi.NewClient(e.m.BanksEndpoint(), bank, secret, nil)
		c.Clock = e.clock
		for d := day(e.start); !d.After(day(e.clock.Now())); d = d.AddDate(0, 0, 1) {
			// A scenario may still inject errors: ask again, a bounded
			// number of times.
			var st bankapi.Statement
			var err error
			for range 20 {
				if st, err = c.Statement(context.Background(), d.Format(time.DateOnly)); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("statement of %s on %s: %v", bank, d.Format(time.DateOnly), err)
			}
			for _, l := range st.Lines {
				if _, dup := out[l.RequestID]; dup {
					t.Fatalf("request %s twice in %s's statements", l.RequestID, bank)
				}
				out[l.RequestID] = l
			}
		}
	}
	return out
}

// verify checks everything the issue asks of a run, after settle:
//
//   - no bank transaction unresolved;
//   - every debit the bank made (statement SUCCESS) credited to the wallet
//     exactly once ("topup:<id>" exists with its amount) and every one it
//     did not make credited never; the same for payouts ("wd:<id>:paid"
//     or ":return", never both);
//   - every bank's books balance and equal, in the net, the platform's
//     top-ups less its payouts there;
//   - the wallets hold exactly deposits plus top-ups less payouts less
//     what they paid for trades, nothing frozen;
//   - the ledger check (with custody against the banks' books) is clean.
func (e *chEnv) verify(t *testing.T, users []*chUser, deposits map[string]int64, spent map[string]int64) {
	t.Helper()
	if n := e.unresolved(t); n != 0 {
		t.Fatalf("%d bank transactions unresolved", n)
	}
	lines := e.statementLines(t)
	txns := e.txns(t)
	var ids []string
	for _, x := range txns {
		if x.kind == "topup" {
			ids = append(ids, "topup:"+x.id)
		} else {
			ids = append(ids, "wd:"+x.id+":paid", "wd:"+x.id+":return")
		}
	}
	moved := map[string]int64{}
	for i := 0; i < len(ids); i += 1000 {
		trs, err := e.m.store.LookupTransfers(context.Background(), ids[i:min(i+1000, len(ids))])
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range trs {
			moved[tr.ID] = tr.Amount
		}
	}
	net := map[string]int64{}  // bank → top-ups − payouts, by the platform
	held := map[string]int64{} // user → top-ups − payouts
	counts := map[string]int{}
	known := map[string]bool{}
	for _, x := range txns {
		known[x.id] = true
		l, inStatement := lines[x.id]
		bankDid := inStatement && l.Status == bankapi.StatusSuccess
		counts[x.kind+" "+x.status]++
		switch x.kind {
		case "topup":
			credited, ok := moved["topup:"+x.id]
			switch {
			case x.status == "SUCCESS" && (!bankDid || l.Kind != bankapi.KindDebit || l.Amount != x.amount):
				t.Errorf("top-up %s SUCCESS but the bank's statement has %+v", x.id, l)
			case x.status == "SUCCESS" && (!ok || credited != x.amount):
				t.Errorf("top-up %s SUCCESS but credited %d (found %v), want %d", x.id, credited, ok, x.amount)
			case x.status == "FAILED" && bankDid:
				t.Errorf("top-up %s FAILED but the bank debited it: %+v", x.id, l)
			case x.status == "FAILED" && ok:
				t.Errorf("top-up %s FAILED but credited", x.id)
			}
			if x.status == "SUCCESS" {
				net[x.bank] += x.amount
				held[x.user] += x.amount
			}
		default:
			_, paid := moved["wd:"+x.id+":paid"]
			_, back := moved["wd:"+x.id+":return"]
			switch {
			case x.status == "SUCCESS" && (!bankDid || l.Kind != bankapi.KindCredit || l.Amount != x.amount || !paid || back):
				t.Errorf("withdrawal %s SUCCESS: statement %+v, paid %v, returned %v", x.id, l, paid, back)
			case x.status == "FAILED" && (bankDid || paid || !back):
				t.Errorf("withdrawal %s FAILED: bank paid %v, ledger paid %v, returned %v", x.id, bankDid, paid, back)
			}
			if x.status == "SUCCESS" {
				net[x.bank] -= x.amount
				held[x.user] -= x.amount
			}
		}
	}
	for id, l := range lines {
		if !known[id] && l.Status == bankapi.StatusSuccess {
			t.Errorf("the bank moved money for %s, which the platform does not know", id)
		}
	}
	for _, bank := range e.banks.Banks() {
		b, err := e.banks.Books(bank)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Check(); err != nil {
			t.Errorf("books of %s: %v", bank, err)
		}
		if got := b.Debited - b.Credited; got != net[bank] {
			t.Errorf("%s's books net %d (debited %d, credited %d), the platform's %d", bank, got, b.Debited, b.Credited, net[bank])
		}
		if b.Accepted != 0 {
			t.Errorf("%s still has %d transactions undecided", bank, b.Accepted)
		}
	}
	for _, u := range users {
		avail, frozen := idBalance(t, e.env, u.idUser)
		want := zhifu.Amount(deposits[u.id] + held[u.id] - spent[u.id])
		if avail != want.String() || frozen != "0.00" {
			t.Errorf("%s holds %s (frozen %s), want %s", u.login, avail, frozen, want)
		}
	}
	idCheckLedger(t, e.env)
	t.Logf("verified: %v", counts)
}

// amountOf returns a random amount in fen between 1.00 and 500.00.
func amountOf(r *rand.Rand) int64 { return 100 + r.Int64N(49_901) }

// jsonBodyNoT is jsonBody for goroutines that may not call t.Fatal.
func jsonBodyNoT(v any) string {
	switch b := v.(type) {
	case nil:
		return ""
	case string:
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func jsonDecoder(r io.Reader) *json.Decoder { return json.NewDecoder(r) }

// yuan writes fen as an API amount.
func yuan(fen int64) string { return zhifu.Amount(fen).String() }
