package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu"
	"zhifu/campaign"
)

// TestIncidentReplay replays the marketing template incident of 16 January
// 2025 (20% off every transfer, card repayment and bill payment for five
// minutes) under load across the four payment kinds, on the real clock:
//
//   - the incident's template is refused at validation, naming the limit;
//   - the same mistake made inside the limits (10% off everything, capped,
//     but with a plan a hundred times smaller than what it spends) goes
//     live on its canary and is paused by the monitor by itself within 5
//     seconds;
//   - the discounts given never exceed the budget, payments go on at the
//     full price once it is paused, and the ledger check is clean.
//
// It prints the timeline: went live, breach seen and paused, the spend at
// each moment. The everyday form runs 12 seconds of load on SQLite;
// ZHIFU_REPLAY_FULL=1 runs the incident's five minutes on both stores.
func TestIncidentReplay(t *testing.T) {
	backends, load := []string{"sqlite"}, 12*time.Second
	if testGetenv("ZHIFU_REPLAY_FULL") != "" {
		backends, load = []string{"sqlite", "postgres"}, 5*time.Minute
	}
	if testing.Short() {
		load = 6 * time.Second
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { replayIncident(t, backend, load) })
	}
}

func replayIncident(t *testing.T, backend string, load time.Duration) {
	// Thirty-two payers stand for millions: a canary of 25% (not the
	// default 5%) so that the canary holds some of them whatever the
	// campaign's hash.
	e := newChannelEnv(t, backend, chOptions{realClock: true,
		campaigns: func(c *campaign.Config) { c.CanaryShareBP = 2500 }})
	w := &trWorld{env: e.env}
	w.seller = w.user("shop")
	w.mk = w.newMerchant(w.seller, "")
	biller := w.newMerchant(w.user("grid"), "")
	var out map[string]any
	if s := w.admin("POST", "/v1/admin/billers", map[string]any{"merchant_id": biller.id, "category": "electricity"}, &out); s/100 != 2 {
		t.Fatalf("biller: %d %v", s, out)
	}
	const clients = 32
	users := e.newUsers(t, "payer", clients, []string{"ICBC", "CMB", "CCB"}, "10000000.00")
	alice, bob := w.operatorToken("ops.alice"), w.operatorToken("ops.bob")
	if s := w.admin("POST", "/v1/admin/capital", map[string]any{"bank": "ICBC", "amount": "50000.00",
		"reference": "replay-capital"}, &out); s != 201 {
		t.Fatalf("capital: %d %v", s, out)
	}

	// 14:40: the template as it was written is refused.
	now := time.Now().UTC()
	tmpl := map[string]any{"name": "government subsidy", "template": "percent_off", "percent": "20",
		"kinds": zhifu.PaymentKinds(), "max_discount": "20.00", "user_daily_cap": "100.00", "budget": "5000.00",
		"starts_at": now.Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
		"funding": map[string]any{"type": "platform"}, "plan": map[string]any{"spend_per_hour": "100.00", "payments_share": "0.001"},
		"label": "政府补贴"}
	s, _, refused, _ := e.do(alice, "POST", "/v1/admin/campaigns", tmpl, "")
	if s != 400 || errorCode(refused) != "LIMIT_EXCEEDED" {
		t.Fatalf("the incident's template: %d %v", s, refused)
	}
	t.Logf("replay: the incident's template is refused: %v", refused["error"].(map[string]any)["message"])

	// The same mistake inside the limits, approved by a second operator:
	// its plan is a pilot's (¥100 an hour, one payment in a thousand), its
	// template discounts every payment of every kind.
	tmpl["percent"] = "10"
	s, _, c, _ := e.do(alice, "POST", "/v1/admin/campaigns", tmpl, "")
	if s != 201 {
		t.Fatalf("create: %d %v", s, c)
	}
	id := c["campaign_id"].(string)
	if s, _, c, _ = e.do(bob, "POST", "/v1/admin/campaigns/"+id+"/approve", nil, ""); s != 200 {
		t.Fatalf("approve: %d %v", s, c)
	}

	// Load: every client pays in turn by the four kinds.
	var stop atomic.Bool
	var counts [4]atomic.Int64
	var failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	started := time.Now()
	for i, u := range users {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			peer := users[(i+1)%len(users)]
			for n := 0; !stop.Load(); n++ {
				amount := fmt.Sprintf("%d.%02d", 10+r.IntN(490), r.IntN(100))
				kind := n % 4
				var status int
				var body map[string]any
				var err error
				switch kind {
				case 0:
					tb := map[string]any{"out_trade_no": fmt.Sprintf("rp%d-%d", i, n), "subject": "goods",
						"total_amount": amount, "mode": "instant"}
					js := jsonBodyNoT(tb)
					h := signMerchant(w.mk, "POST", "/v1/trades", js, time.Now(), newNonce())
					var tr map[string]any
					status, tr, err = e.signed(h, "/v1/trades", js)
					if err == nil && status == 201 {
						status, _, body, err = e.do(u.token, "POST", "/v1/trades/"+tr["trade_no"].(string)+"/pay",
							map[string]any{"method": "balance"}, "")
					}
				case 1:
					status, _, body, err = e.do(u.token, "POST", "/v1/transfers", map[string]any{"to_user_id": peer.id,
						"amount": amount}, fmt.Sprintf("rt%d-%d", i, n))
				case 2:
					status, _, body, err = e.do(u.token, "POST", "/v1/bill-payments", map[string]any{"biller_id": biller.id,
						"account_no": fmt.Sprintf("ACC-%d", i), "amount": amount}, fmt.Sprintf("rb%d-%d", i, n))
				case 3:
					status, _, body, err = e.do(u.token, "POST", "/v1/card-repayments", map[string]any{"card_id": u.cards[u.order[0]],
						"amount": amount}, fmt.Sprintf("rc%d-%d", i, n))
				}
				if err != nil || status/100 != 2 {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("kind %d: %d %v %v", kind, status, body, err))
					continue
				}
				counts[kind].Add(1)
			}
		})
	}

	// The timeline: the campaign's state and spend four times a second.
	type moment struct {
		at       time.Duration
		status   string
		spend    string
		payments int64
	}
	var timeline []moment
	var live, paused map[string]any
	for sample := 0; time.Since(started) < load; sample++ {
		_, _, c, _ := e.do(bob, "GET", "/v1/admin/campaigns/"+id, nil, "")
		var total int64
		for i := range counts {
			total += counts[i].Load()
		}
		funded, _ := zhifu.ParseAmount(fmt.Sprint(c["funded"]), "funded")
		left, _ := zhifu.ParseAmount(fmt.Sprint(c["budget_left"]), "budget_left")
		m := moment{at: time.Since(started), status: fmt.Sprint(c["status"]), spend: (funded - left).String(), payments: total}
		if len(timeline) == 0 || timeline[len(timeline)-1].status != m.status || sample%4 == 0 {
			timeline = append(timeline, m)
		}
		if live == nil && c["live_at"] != nil {
			live = c
		}
		if paused == nil && c["status"] == "PAUSED" {
			paused = c
		}
		time.Sleep(250 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(started)

	var total int64
	perKind := make([]string, 4)
	for i, k := range zhifu.PaymentKinds() {
		n := counts[i].Load()
		total += n
		perKind[i] = fmt.Sprintf("%s %d", k, n)
	}
	t.Logf("replay: %d payments in %s (%.0f a second; %s), %d refused or failed", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), strings.Join(perKind, ", "), failures.Load())
	for _, m := range timeline {
		t.Logf("replay: t=%6.2fs %-8s spend %8s after %d payments", m.at.Seconds(), m.status, m.spend, m.payments)
	}
	if live == nil || paused == nil {
		t.Fatalf("the campaign never went live and paused: live %v paused %v", live, paused)
	}
	liveAt, _ := time.Parse(time.RFC3339, fmt.Sprint(paused["live_at"]))
	stoppedAt, _ := time.Parse(time.RFC3339, fmt.Sprint(paused["stopped_at"]))
	t.Logf("replay: went live %s, paused %s (%s later): %s", liveAt.Format(time.TimeOnly), stoppedAt.Format(time.TimeOnly),
		stoppedAt.Sub(liveAt), paused["status_reason"])
	// The API's times are whole seconds: 5 s of real time can read as 6.
	if d := stoppedAt.Sub(liveAt); d > 6*time.Second {
		t.Errorf("paused %s after going live, want within 5 s", d)
	}
	final := map[string]any{}
	e.bearer(bob, "GET", "/v1/admin/campaigns/"+id, nil, &final)
	funded, _ := zhifu.ParseAmount(fmt.Sprint(final["funded"]), "funded")
	left, _ := zhifu.ParseAmount(fmt.Sprint(final["budget_left"]), "budget_left")
	if left < 0 || funded-left > funded {
		t.Errorf("spent %s of a budget of %s", funded-left, funded)
	}
	t.Logf("replay: spent %s of the budget of %s before the pause", funded-left, funded)
	if f := failures.Load(); f*100 > total {
		t.Errorf("%d of %d payments failed; first: %v", f, total, firstErr.Load())
	}
	// On the real clock the banks' queues drain at their pace: wait for
	// every repayment to be paid out before the books are checked.
	for deadline := time.Now().Add(2 * time.Minute); e.unresolved(t) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d bank transactions unresolved two minutes after the load", e.unresolved(t))
		}
		e.waitQuiet(time.Second)
		time.Sleep(50 * time.Millisecond)
	}
	w.t = t
	w.checkLedger()
	var c2 map[string]any
	if s := w.admin("GET", "/v1/admin/custody", nil, &c2); s != 200 || c2["ok"] != true {
		t.Errorf("custody: %d %v", s, c2)
	}
}

// signed posts a merchant's signed body to path, safe from many
// goroutines: the status and the decoded answer.
func (e *chEnv) signed(auth, path, body string) (int, map[string]any, error) {
	req, err := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = jsonDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, err
}
