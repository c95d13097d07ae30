package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"zhifu/campaign"
)

// cpWorld is a platform whose campaigns go live for every payer from the
// first tick (a canary of 100%) and are judged every 50 ms.
func newCampaignWorld(t *testing.T, backend string) *trWorld {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, backend)
	clock := &manualClock{now: time.Now().UTC()}
	tm := newTestMain(harnessEnv)
	tm.Clock = clock
	tm.ConfigureCampaigns = func(c *campaign.Config) { c.CanaryShareBP, c.Tick = 10000, 50*time.Millisecond }
	serveTestMain(t, tm, "--data", dir, "--db", db)
	return newTrWorld(t, &env{t: t, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock})
}

// operatorToken creates an operator and logs them in.
func (w *trWorld) operatorToken(login string) string {
	w.t.Helper()
	var op, sess map[string]any
	if s := w.admin("POST", "/v1/admin/operators", map[string]any{"login": login, "password": "a long passphrase",
		"name": login}, &op); s != 201 {
		w.t.Fatalf("operator %s: %d %v", login, s, op)
	}
	if s := w.bearer("", "POST", "/v1/admin/sessions", map[string]any{"login": login, "password": "a long passphrase"},
		&sess); s != 200 {
		w.t.Fatalf("operator login: %d %v", s, sess)
	}
	return sess["token"].(string)
}

// waitCampaign polls campaign id until its status is want.
func (w *trWorld) waitCampaign(tok, id, want string) map[string]any {
	w.t.Helper()
	var c map[string]any
	for range 200 {
		if s := w.bearer(tok, "GET", "/v1/admin/campaigns/"+id, nil, &c); s != 200 {
			w.t.Fatalf("campaign: %d %v", s, c)
		}
		if c["status"] == want {
			return c
		}
		time.Sleep(25 * time.Millisecond)
	}
	w.t.Fatalf("campaign %s is %v, want %s", id, c["status"], want)
	return nil
}

// TestCampaigns runs a campaign's life over real HTTP on both stores: the
// incident's template refused, self-approval refused, a second operator's
// approval funding the budget, a discounted payment (the buyer pays less,
// the seller gets the whole price), a refund returning the discount to the
// budget, the dry run, the kill, the budget back in own funds, the audit.
func TestCampaigns(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			w := newCampaignWorld(t, backend)
			alice, bob := w.operatorToken("alice"), w.operatorToken("bob")
			var capital map[string]any
			if s := w.admin("POST", "/v1/admin/capital", map[string]any{"bank": "ICBC", "amount": "50000.00",
				"reference": "capital-1"}, &capital); s != 201 {
				t.Fatalf("capital: %d %v", s, capital)
			}
			now := w.clock.Now()
			body := map[string]any{"name": "Double 11", "template": "percent_off", "percent": "20",
				"kinds": []string{"trade", "transfer", "card_repayment", "bill_payment"}, "max_discount": "5.00",
				"user_daily_cap": "20.00", "budget": "1000.00", "starts_at": now.Format(time.RFC3339),
				"ends_at": now.Add(24 * time.Hour).Format(time.RFC3339), "funding": map[string]any{"type": "platform"},
				"plan": map[string]any{"spend_per_hour": "500.00"}, "label": "双11立减"}
			var out map[string]any
			if s := w.bearer(alice, "POST", "/v1/admin/campaigns", body, &out); s != 400 ||
				errorCode(out) != "LIMIT_EXCEEDED" || !strings.Contains(fmt.Sprint(out), "percent") {
				t.Fatalf("20%% off everything: %d %v", s, out)
			}
			body["percent"], body["kinds"] = "10", []string{"trade"}
			var c map[string]any
			if s := w.bearer(alice, "POST", "/v1/admin/campaigns", body, &c); s != 201 || c["status"] != "PENDING_APPROVAL" ||
				c["approval_id"] == "" || c["budget_left"] != "0.00" {
				t.Fatalf("create: %d %v", s, c)
			}
			id := c["campaign_id"].(string)
			if s := w.bearer(alice, "POST", "/v1/admin/campaigns/"+id+"/approve", nil, &out); s != 403 || errorCode(out) != "FORBIDDEN" {
				t.Fatalf("self-approval: %d %v", s, out)
			}
			if s := w.bearer(bob, "POST", "/v1/admin/campaigns/"+id+"/approve", nil, &c); s != 200 || c["funded"] != "1000.00" {
				t.Fatalf("approval: %d %v", s, c)
			}
			w.waitCampaign(bob, id, "CANARY")

			buyer := w.user("buyer")
			w.fund(buyer, "200.00")
			no := w.mustCreate(map[string]any{"total_amount": "100.00"})
			var tr map[string]any
			if s := w.bearer(buyer.token, "POST", "/v1/trades/"+no+"/pay", map[string]any{"method": "balance"}, &tr); s != 200 ||
				tr["discount_amount"] != "5.00" || tr["buyer_pay_amount"] != "95.00" || tr["campaign_label"] != "双11立减" {
				t.Fatalf("discounted payment: %d %v", s, tr)
			}
			if got := w.available(buyer); got != "105.00" {
				t.Fatalf("buyer has %s after paying 95.00 of 200.00", got)
			}
			if got := w.available(w.seller); got != "100.00" {
				t.Fatalf("seller has %s, want the whole price", got)
			}
			var st struct {
				Data []map[string]any `json:"data"`
			}
			if s := w.bearer(buyer.token, "GET", "/v1/statement", nil, &st); s != 200 || len(st.Data) == 0 ||
				st.Data[0]["type"] != "payment" || st.Data[0]["amount"] != "-95.00" || st.Data[0]["discount_amount"] != "5.00" {
				t.Fatalf("buyer's statement: %d %v", s, st.Data)
			}
			var rf map[string]any
			if s := w.merchant(w.mk, "POST", "/v1/trades/"+no+"/refunds", map[string]any{"refund_amount": "100.00",
				"out_request_no": "r1"}, &rf); s != 200 && s != 201 {
				t.Fatalf("refund: %d %v", s, rf)
			}
			if got := w.available(buyer); got != "200.00" {
				t.Fatalf("buyer has %s after the refund; the discount goes back to the budget, not the buyer", got)
			}
			if s := w.bearer(bob, "GET", "/v1/admin/campaigns/"+id, nil, &c); s != 200 || c["budget_left"] != "1000.00" {
				t.Fatalf("budget after the refund: %d %v", s, c)
			}
			var dry map[string]any
			if s := w.bearer(alice, "POST", "/v1/admin/campaigns/"+id+"/dry-run", nil, &dry); s != 200 ||
				dry["payments"].(float64) < 1 || dry["discounted"].(float64) < 1 || dry["discount"] != "5.00" {
				t.Fatalf("dry run: %d %v", s, dry)
			}
			if s := w.bearer(bob, "POST", "/v1/admin/campaigns/"+id+"/kill", map[string]any{}, &out); s != 400 {
				t.Fatalf("kill without a reason: %d %v", s, out)
			}
			if s := w.bearer(bob, "POST", "/v1/admin/campaigns/"+id+"/kill", map[string]any{"reason": "wrong audience"}, &c); s != 200 ||
				c["status"] != "KILLED" || c["status_reason"] != "wrong audience" {
				t.Fatalf("kill: %d %v", s, c)
			}
			no2 := w.mustCreate(map[string]any{"total_amount": "10.00"})
			if s := w.bearer(buyer.token, "POST", "/v1/trades/"+no2+"/pay", map[string]any{"method": "balance"}, &tr); s != 200 ||
				tr["discount_amount"] != "0.00" {
				t.Fatalf("payment after the kill: %d %v", s, tr)
			}
			// The budget returns to own funds once every node has stopped.
			w.clock.Advance(campaign.DefaultStopGrace)
			for i := 0; ; i++ {
				w.bearer(bob, "GET", "/v1/admin/campaigns/"+id, nil, &c)
				if c["budget_left"] == "0.00" && c["returned"] == "1000.00" {
					break
				}
				if i == 200 {
					t.Fatalf("budget not returned: %v", c)
				}
				time.Sleep(25 * time.Millisecond)
			}
			var audit struct {
				Data []map[string]any `json:"data"`
			}
			if s := w.bearer(bob, "GET", "/v1/admin/audit?limit=100", nil, &audit); s != http.StatusOK {
				t.Fatalf("audit: %d", s)
			}
			seen := map[string]bool{}
			for _, a := range audit.Data {
				seen[fmt.Sprint(a["action"])] = true
			}
			for _, want := range []string{"campaign.create", "approval.approve", "campaign.canary", "campaign.kill", "campaign.return"} {
				if !seen[want] {
					t.Errorf("audit log lacks %s: %v", want, seen)
				}
			}
			w.checkLedger()
		})
	}
}
