package main

import (
	"strings"
	"testing"
	"time"

	"zhifu/banksim"
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
		if s, tr := e.payTrade(t, buyer, no, map[string]string{"method": "card"}); s != 200 || tr["status"] != "WAIT_BUYER_PAY" {
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
		if _, br, _ := e.channelState(t, "CMB"); br != "half_open" {
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
