package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"zhifu/banksim"
	"zhifu/channel"
)

// A bank that fails mid-run: its breaker opens within seconds of clock
// time, payments with its cards are refused at once with
// CHANNEL_UNAVAILABLE (or routed to the buyer's other card when none is
// named), and when it recovers it is readmitted through half-open probes.

// channelState returns a bank's state and breaker from GET /v1/channels.
func (e *chEnv) channelState(t *testing.T, bank string) (state, breaker, advice string) {
	t.Helper()
	var ch struct {
		Data []map[string]any `json:"data"`
	}
	if s := e.bearer("", "GET", "/v1/channels", nil, &ch); s != 200 {
		t.Fatalf("channels: %d", s)
	}
	for _, c := range ch.Data {
		if c["bank"] == bank {
			return c["state"].(string), c["breaker"].(string), c["advice"].(string)
		}
	}
	t.Fatalf("no channel %s", bank)
	return
}

func TestChannelBankFailsMidRun(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		users := e.newUsers(t, "midrun", 4, []string{"CMB", "ICBC"}, "")
		w := newTrWorld(t, e.env)
		tick := 100 * time.Millisecond
		topup := func(u *chUser, bank string) (int, map[string]any, time.Duration) {
			start := time.Now()
			s, _, out, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "10.00", "card_id": u.cards[bank]}, "")
			if err != nil {
				t.Fatal(err)
			}
			return s, out, time.Since(start)
		}
		// Healthy traffic at CMB, ten payments a second of clock time.
		for i := range 40 {
			if s, out, _ := topup(users[i%len(users)], "CMB"); s != 201 {
				t.Fatalf("healthy top-up: %d %v", s, out)
			}
			e.waitQuiet(time.Second)
			e.clock.Advance(tick)
		}
		if st, br, _ := e.channelState(t, "CMB"); st != "healthy" || br != "closed" {
			t.Fatalf("CMB before the outage: %s %s", st, br)
		}

		// CMB collapses.
		if err := e.banks.SetScenario("CMB", banksim.Scenario{Outage: banksim.OutageReject}); err != nil {
			t.Fatal(err)
		}
		failedAt := e.clock.Now()
		var opened time.Duration
		for i := 0; opened == 0; i++ {
			if e.clock.Now().Sub(failedAt) > 10*time.Second {
				t.Fatal("CMB's breaker still closed after 10 s of failures")
			}
			s, out, _ := topup(users[i%len(users)], "CMB")
			e.waitQuiet(time.Second)
			if st, br, _ := e.channelState(t, "CMB"); br == "open" {
				if st != "down" {
					t.Fatalf("open breaker, state %s", st)
				}
				opened = e.clock.Now().Sub(failedAt)
				break
			}
			if s != 201 {
				t.Fatalf("top-up while CMB still looked healthy: %d %v", s, out)
			}
			e.clock.Advance(tick)
		}
		t.Logf("CMB's breaker opened %s of clock time after it began failing", opened)
		if opened > 3*time.Second {
			t.Errorf("breaker took %s to open, want at most 3 s", opened)
		}

		// While it is open: refused fast, with advice; routed when the
		// buyer named no card.
		_, _, advice := e.channelState(t, "CMB")
		if !strings.Contains(advice, "CMB") || !strings.Contains(advice, "another card") {
			t.Errorf("advice %q", advice)
		}
		slowest := time.Duration(0)
		for i := range 20 {
			s, out, took := topup(users[i%len(users)], "CMB")
			if s != 503 || errorCode(out) != "CHANNEL_UNAVAILABLE" || !strings.Contains(out["error"].(map[string]any)["message"].(string), "another card") {
				t.Fatalf("top-up at a bank that is down: %d %v", s, out)
			}
			slowest = max(slowest, took)
		}
		t.Logf("refusals answered within %s", slowest)
		if slowest > 500*time.Millisecond {
			t.Errorf("a refusal took %s: not fast", slowest)
		}
		buyer := users[0]
		no := w.mustCreate(nil)
		s, out := e.payTrade(t, buyer, no, map[string]string{"method": "card", "card_id": buyer.cards["CMB"]})
		wantStatus(t, "pay with the down bank's card", s, out, 503, "CHANNEL_UNAVAILABLE")
		// The trade as it now is: still waiting while ICBC works, or
		// already paid if ICBC answered and the payment settled before
		// the answer was read (the API allows both).
		if s, tr := e.payTrade(t, buyer, no, map[string]string{"method": "card"}); s != 200 ||
			(tr["status"] != "WAIT_BUYER_PAY" && (tr["status"] != "TRADE_SUCCESS" || tr["buyer_id"] != buyer.id)) {
			t.Fatalf("pay by card, none named: %d %v", s, tr)
		}
		if tps := e.tradeTopups(t, buyer, no); len(tps) != 1 || tps[0]["bank"] != "ICBC" {
			t.Fatalf("the payment was not routed to the healthy card: %v", tps)
		}

		// CMB recovers: after the cool-down, probes readmit it.
		if err := e.banks.SetScenario("CMB", banksim.Scenario{}); err != nil {
			t.Fatal(err)
		}
		recovered := e.clock.Now()
		e.clock.Advance(5 * time.Second)
		// Half-open, or already closed by the breaker's own probes.
		if _, br, _ := e.channelState(t, "CMB"); br != "half_open" && br != "closed" {
			t.Fatalf("breaker %s after the cool-down", br)
		}
		var closedAfter time.Duration
		for closedAfter == 0 {
			if e.clock.Now().Sub(recovered) > time.Minute {
				t.Fatal("CMB not readmitted within a minute of recovering")
			}
			// A payment in half-open is a probe (or is refused while the
			// probes are out); the top-ups left pending also probe.
			s, out, _ := topup(users[0], "CMB")
			if s != 201 && (s != 503 || errorCode(out) != "CHANNEL_UNAVAILABLE") {
				t.Fatalf("top-up while probing: %d %v", s, out)
			}
			e.waitQuiet(time.Second)
			if _, br, _ := e.channelState(t, "CMB"); br == "closed" {
				closedAfter = e.clock.Now().Sub(recovered)
			}
			e.clock.Advance(time.Second)
		}
		t.Logf("CMB readmitted %s of clock time after it recovered", closedAfter)
		if st, _, _ := e.channelState(t, "CMB"); st != "healthy" && st != "congested" {
			t.Errorf("CMB after readmission: %s", st)
		}
		e.settle(t, 30*time.Second, time.Hour)
		if got := w.get(no); got["status"] != "TRADE_SUCCESS" {
			t.Errorf("routed payment: %v", got)
		}
		spent := map[string]int64{buyer.id: 100_00}
		e.verify(t, users, nil, spent)
	})
}

// A bank that answers 503 to everything is noticed at once: with the clock
// standing still its breaker opens within a short run of failures, new
// top-ups for it are refused at once with CHANNEL_UNAVAILABLE, and those
// already waiting on it say so. When it is back, the waiting top-ups are
// taken up again at once: they resolve without the clock moving past the
// breaker's cool-down, not after the minutes of backoff the outage built.
func TestChannelBankDownNoticedAtOnce(t *testing.T) {
	// runMax is the longest run of failed calls the breaker may take to
	// open; the clock does not move meanwhile, so no window of time can
	// open it instead.
	const runMax = 5
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		users := e.newUsers(t, "down", 3, []string{"CMB", "ICBC"}, "")
		topup := func(u *chUser) (int, http.Header, map[string]any) {
			t.Helper()
			s, h, out, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "10.00", "card_id": u.cards["CMB"]}, "")
			if err != nil {
				t.Fatal(err)
			}
			return s, h, out
		}
		getTopup := func(u *chUser, id string) map[string]any {
			t.Helper()
			var out map[string]any
			if s := e.bearer(u.token, "GET", "/v1/topups/"+id, nil, &out); s != 200 {
				t.Fatalf("GET top-up %s: %d %v", id, s, out)
			}
			return out
		}
		if s, _, out := topup(users[0]); s != 201 {
			t.Fatalf("healthy top-up: %d %v", s, out)
		}
		e.settle(t, 5*time.Second, time.Minute)

		if err := e.banks.SetScenario("CMB", banksim.Scenario{Outage: banksim.OutageReject}); err != nil {
			t.Fatal(err)
		}
		refusedBefore := e.banks.Stats("CMB").Outages
		type waitingTopup struct {
			u  *chUser
			id string
		}
		var waiting []waitingTopup
		for {
			if len(waiting) == runMax {
				t.Fatalf("CMB's breaker still closed after %d calls in a row refused", runMax)
			}
			u := users[len(waiting)%len(users)]
			s, _, out := topup(u)
			if s != 201 || out["status"] != "PROCESSING" {
				t.Fatalf("top-up %d while CMB's breaker is closed: %d %v", len(waiting)+1, s, out)
			}
			waiting = append(waiting, waitingTopup{u, out["topup_id"].(string)})
			e.waitQuiet(5 * time.Second)
			if refused := e.banks.Stats("CMB").Outages - refusedBefore; refused != int64(len(waiting)) {
				t.Fatalf("%d top-ups, %d calls refused by CMB: want one call each", len(waiting), refused)
			}
			if _, br, _ := e.channelState(t, "CMB"); br == "open" {
				break
			}
		}
		t.Logf("CMB's breaker opened after %d refused calls, the clock standing still", len(waiting))
		if st, _, advice := e.channelState(t, "CMB"); st != "down" || !strings.Contains(advice, "another card") {
			t.Fatalf("CMB with its breaker open: %s, advice %q", st, advice)
		}

		// A new top-up is refused at once, with advice and a Retry-After.
		s, h, out := topup(users[0])
		if s != 503 || errorCode(out) != "CHANNEL_UNAVAILABLE" || h.Get("Retry-After") == "" ||
			!strings.Contains(out["error"].(map[string]any)["message"].(string), "another card") {
			t.Fatalf("top-up at a bank that is down: %d %v (Retry-After %q)", s, out, h.Get("Retry-After"))
		}
		// Those already waiting say their bank is down.
		for _, w := range waiting {
			got := getTopup(w.u, w.id)
			advice, _ := got["advice"].(string)
			if got["status"] != "PROCESSING" || got["bank_state"] != "down" || !strings.Contains(advice, "CMB") {
				t.Fatalf("a top-up waiting on a bank that is down: %v", got)
			}
		}

		// The outage lasts two minutes: the breaker probes after every
		// cool-down and finds the bank still down; the waiting top-ups'
		// next attempts drift further off.
		for range 24 {
			e.clock.Advance(channel.DefaultBreakerConfig.CoolDown)
			e.waitQuiet(5 * time.Second)
		}
		if _, br, _ := e.channelState(t, "CMB"); br == "closed" {
			t.Fatalf("breaker closed while CMB is still down")
		}
		var nextAt int64
		if err := e.m.store.Reader().QueryRow(context.Background(), `SELECT min(next_at) FROM bank_txns
			WHERE bank = 'CMB' AND status = 'PROCESSING'`).Scan(&nextAt); err != nil {
			t.Fatal(err)
		}
		backoff := time.Unix(0, nextAt).Sub(e.clock.Now())
		t.Logf("after two minutes down, the first waiting top-up is due in %s", backoff)
		if backoff <= channel.DefaultBreakerConfig.CoolDown {
			t.Fatalf("the waiting top-ups are due in %s: the test would not show them taken up early", backoff)
		}

		// CMB is back. One cool-down later the breaker probes, finds it
		// answering and closes, and the waiting top-ups go at once: the
		// clock does not move again until they are decided.
		if err := e.banks.SetScenario("CMB", banksim.Scenario{}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(channel.DefaultBreakerConfig.CoolDown)
		deadline := time.Now().Add(10 * time.Second)
		for _, w := range waiting {
			for {
				got := getTopup(w.u, w.id)
				if got["status"] == "SUCCESS" {
					if _, ok := got["bank_state"]; ok {
						t.Errorf("a settled top-up still reports its bank: %v", got)
					}
					break
				}
				if time.Now().After(deadline) {
					_, br, _ := e.channelState(t, "CMB")
					t.Fatalf("CMB is back (breaker %s), but top-up %s is still %v after 10 s with the clock still", br, w.id, got)
				}
				e.waitQuiet(100 * time.Millisecond)
			}
		}
		if st, br, _ := e.channelState(t, "CMB"); st != "healthy" || br != "closed" {
			t.Fatalf("CMB once back: %s, breaker %s", st, br)
		}
		if s, _, out := topup(users[1]); s != 201 {
			t.Fatalf("top-up once CMB is back: %d %v", s, out)
		}
		e.settle(t, 5*time.Second, time.Minute)
		e.verify(t, users, nil, nil)
	})
}
