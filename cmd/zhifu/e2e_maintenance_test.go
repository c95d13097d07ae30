package main

import (
	"strconv"
	"testing"
	"time"
)

// An operator announces a platform maintenance window an hour ahead: it is
// listed at once, nothing changes before it starts, and inside it payments
// and changes answer 503 MAINTENANCE with Retry-After (the seconds until it
// ends) while reads, logins, operators and the banks' callbacks are
// served; after it, everything is. A bank's window closes only what goes
// through that bank.
func TestMaintenanceWindows(t *testing.T) {
	e := newChannelEnv(t, "sqlite", chOptions{})
	w := newTrWorld(t, e.env)
	buyer := w.user("buyer")
	w.fund(buyer, "1000.00")
	u := e.newUsers(t, "carded", 1, []string{"ICBC", "CMB"}, "")[0]
	now := e.clock.Now()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }

	var a map[string]any
	s := e.admin("POST", "/v1/admin/announcements", map[string]string{"scope": "platform",
		"starts_at": at(time.Hour), "ends_at": at(2 * time.Hour), "message": "database upgrade"}, &a)
	if s != 201 || a["scope"] != "platform" || a["bank"] != "" {
		t.Fatalf("announce the platform's window: %d %v", s, a)
	}
	for _, bad := range []map[string]string{
		{"scope": "platform", "bank": "ICBC", "starts_at": at(time.Hour), "ends_at": at(2 * time.Hour)},
		{"scope": "moon", "starts_at": at(time.Hour), "ends_at": at(2 * time.Hour)},
		{"starts_at": at(time.Hour), "ends_at": at(2 * time.Hour)},
	} {
		var out map[string]any
		if s := e.admin("POST", "/v1/admin/announcements", bad, &out); s != 400 || errorCode(out) != "INVALID_REQUEST" {
			t.Errorf("announce %v: %d %v, want 400 INVALID_REQUEST", bad, s, out)
		}
	}
	var as struct {
		Data []map[string]any `json:"data"`
	}
	if s := e.bearer("", "GET", "/v1/announcements", nil, &as); s != 200 || len(as.Data) != 1 ||
		as.Data[0]["scope"] != "platform" || as.Data[0]["message"] != "database upgrade" {
		t.Fatalf("announcements ahead of the window: %d %v", s, as)
	}

	// Before the window: served.
	if s, tr := w.pay(buyer, w.mustCreate(nil)); s != 200 {
		t.Fatalf("payment before the window: %d %v", s, tr)
	}

	e.clock.Advance(time.Hour + time.Minute) // 59 minutes left
	closed := func(what string, s int, retry string, out map[string]any) {
		t.Helper()
		n, err := strconv.Atoi(retry)
		if s != 503 || errorCode(out) != "MAINTENANCE" || err != nil || n < 59*60-5 || n > 59*60 {
			t.Errorf("%s during the platform's window: %d %v Retry-After %q, want 503 MAINTENANCE, 3540", what, s, out, retry)
		}
	}
	body := map[string]any{"out_trade_no": "mw1", "subject": "x", "total_amount": "1.00", "mode": "instant"}
	sig := signMerchant(w.mk, "POST", "/v1/trades", jsonBody(t, body), e.clock.Now(), newNonce())
	st, hdr, b := e.request("POST", "/v1/trades", map[string][]string{"Authorization": {sig}}, jsonBody(t, body))
	var out map[string]any
	decode(t, b, &out)
	closed("creating a trade", st, hdr.Get("Retry-After"), out)
	st, hdr, out, _ = e.do(buyer.token, "POST", "/v1/transfers", map[string]string{"to_user_id": u.id, "amount": "1.00"}, "")
	closed("a transfer", st, hdr.Get("Retry-After"), out)
	st, hdr, out, _ = e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "1.00", "card_id": u.cards["CMB"]}, "")
	closed("a top-up", st, hdr.Get("Retry-After"), out)
	st, hdr, out, _ = e.do(buyer.token, "POST", "/v1/paycodes", nil, "")
	closed("a payment code", st, hdr.Get("Retry-After"), out)

	// Still served: reads, logins, operators, the banks' callbacks (this
	// one is refused for its signature, not for the window).
	if s := e.bearer(buyer.token, "GET", "/v1/wallet", nil, nil); s != 200 {
		t.Errorf("wallet during the window: %d", s)
	}
	if s := e.bearer(buyer.token, "GET", "/v1/statement", nil, nil); s != 200 {
		t.Errorf("statement during the window: %d", s)
	}
	if s, _, _ := e.request("POST", "/v1/sessions", nil, jsonBody(t, map[string]string{"login": buyer.login, "password": trPassword})); s != 200 {
		t.Errorf("login during the window: %d", s)
	}
	w.checkLedger()
	w.fund(buyer, "1.00")
	if s, _, out, _ := e.do("", "POST", "/v1/channels/ICBC/callback", map[string]string{"txn_id": "x"}, ""); s == 503 {
		t.Errorf("a bank callback during the window: %d %v, want it served", s, out)
	}

	e.clock.Advance(time.Hour) // the window is over
	if s, tr := w.pay(buyer, w.mustCreate(nil)); s != 200 {
		t.Fatalf("payment after the window: %d %v", s, tr)
	}

	// A bank's window: ICBC's cards are refused, CMB's and the balance
	// are served.
	now = e.clock.Now()
	if s := e.admin("POST", "/v1/admin/announcements", map[string]string{"bank": "ICBC",
		"starts_at": at(time.Hour), "ends_at": at(2 * time.Hour)}, &a); s != 201 || a["scope"] != "bank" {
		t.Fatalf("announce ICBC's window: %d %v", s, a)
	}
	e.clock.Advance(90 * time.Minute) // inside, 30 minutes left
	st, hdr, out, _ = e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "1.00", "card_id": u.cards["ICBC"]}, "")
	if n, _ := strconv.Atoi(hdr.Get("Retry-After")); st != 503 || errorCode(out) != "MAINTENANCE" || n < 29*60 || n > 30*60 {
		t.Errorf("ICBC top-up in ICBC's window: %d %v Retry-After %q", st, out, hdr.Get("Retry-After"))
	}
	if st, _, out, _ := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "1.00", "card_id": u.cards["CMB"]}, ""); st/100 != 2 {
		t.Errorf("CMB top-up in ICBC's window: %d %v", st, out)
	}
	if s, tr := w.pay(buyer, w.mustCreate(nil)); s != 200 {
		t.Errorf("balance payment in ICBC's window: %d %v", s, tr)
	}
}
