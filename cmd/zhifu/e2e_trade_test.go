package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// End-to-end tests of trades over real HTTP, on both stores. Helpers here
// carry a "tr" prefix so they cannot collide with other parts' test helpers
// in this package.

// trWorld is one platform with a merchant (and its seller wallet) ready.
type trWorld struct {
	*env
	seller trUser
	mk     merchantKey
}

// trUser is a user with a session.
type trUser struct{ id, token, login string }

// trSeq makes logins and references unique within the test binary.
var trSeq atomic.Int64

const trPassword = "correct horse battery staple"

// trTestNotifyURL is where the test merchants want notifications; nothing
// listens there, which is fine: these tests read the outbox, not deliveries.
const trTestNotifyURL = "http://127.0.0.1:9/notify"

func newTrWorld(t *testing.T, e *env) *trWorld {
	t.Helper()
	w := &trWorld{env: e}
	w.seller = w.user("seller")
	w.mk = w.newMerchant(w.seller, trTestNotifyURL)
	return w
}

// with returns w reporting to t, for use inside a subtest: helpers must
// fail the test whose goroutine they run on.
func (w *trWorld) with(t *testing.T) *trWorld {
	e := *w.env
	e.t = t
	c := *w
	c.env = &e
	return &c
}

// user creates a user and logs in.
func (w *trWorld) user(name string) trUser {
	w.t.Helper()
	login := fmt.Sprintf("%s%d", name, trSeq.Add(1))
	var created struct {
		UserID string `json:"user_id"`
	}
	if s := w.admin("POST", "/v1/users", map[string]string{"login": login, "password": trPassword, "name": name},
		&created); s != http.StatusCreated || created.UserID == "" {
		w.t.Fatalf("create user: %d %+v", s, created)
	}
	var sess struct {
		Token string `json:"token"`
	}
	s, _, b := w.request("POST", "/v1/sessions", nil,
		jsonBody(w.t, map[string]string{"login": login, "password": trPassword}))
	if decode(w.t, b, &sess); s != http.StatusOK && s != http.StatusCreated || sess.Token == "" {
		w.t.Fatalf("login: %d %s", s, b)
	}
	return trUser{id: created.UserID, token: sess.Token, login: login}
}

// newMerchant registers a merchant paid into u's wallet.
func (w *trWorld) newMerchant(u trUser, notifyURL string) merchantKey {
	w.t.Helper()
	var m struct {
		MerchantID string `json:"merchant_id"`
		Secret     string `json:"secret"`
	}
	body := map[string]string{"name": "shop", "user_id": u.id}
	if notifyURL != "" {
		body["notify_url"] = notifyURL
	}
	if s := w.admin("POST", "/v1/merchants", body, &m); s != http.StatusCreated || m.Secret == "" {
		w.t.Fatalf("create merchant: %d %+v", s, m)
	}
	return merchantKey{id: m.MerchantID, secret: m.Secret}
}

// fund deposits amount into u's wallet.
func (w *trWorld) fund(u trUser, amount string) {
	w.t.Helper()
	var d map[string]any
	if s := w.admin("POST", "/v1/admin/deposits", map[string]string{"user_id": u.id, "amount": amount,
		"bank": "ICBC", "reference": fmt.Sprintf("trref%d", trSeq.Add(1))}, &d); s != http.StatusCreated {
		w.t.Fatalf("deposit: %d %v", s, d)
	}
}

// available is u's spendable balance.
func (w *trWorld) available(u trUser) string {
	w.t.Helper()
	var b struct {
		Available string `json:"available"`
	}
	if s := w.bearer(u.token, "GET", "/v1/wallet", nil, &b); s != http.StatusOK {
		w.t.Fatalf("wallet: %d", s)
	}
	return b.Available
}

// checkLedger fails the test unless the full audit passes.
func (w *trWorld) checkLedger() {
	w.t.Helper()
	var c map[string]any
	if s := w.admin("GET", "/v1/admin/ledger/check", nil, &c); s != http.StatusOK || c["ok"] != true {
		w.t.Fatalf("ledger check: %d %v", s, c)
	}
}

// create creates a trade; fields override a default instant trade.
func (w *trWorld) create(fields map[string]any) (int, map[string]any) {
	w.t.Helper()
	body := map[string]any{"out_trade_no": fmt.Sprintf("o%d", trSeq.Add(1)), "subject": "Tea",
		"total_amount": "100.00", "mode": "instant"}
	for k, v := range fields {
		body[k] = v
	}
	var out map[string]any
	s := w.merchant(w.mk, "POST", "/v1/trades", body, &out)
	return s, out
}

// mustCreate creates a trade and returns its trade_no.
func (w *trWorld) mustCreate(fields map[string]any) string {
	w.t.Helper()
	s, tr := w.create(fields)
	if s != http.StatusCreated {
		w.t.Fatalf("create trade: %d %v", s, tr)
	}
	return tr["trade_no"].(string)
}

// pay pays with the balance.
func (w *trWorld) pay(u trUser, tradeNo string) (int, map[string]any) {
	w.t.Helper()
	var out map[string]any
	s := w.bearer(u.token, "POST", "/v1/trades/"+tradeNo+"/pay", map[string]string{"method": "balance"}, &out)
	return s, out
}

// move posts a merchant move (close, ship, collect, refunds).
func (w *trWorld) move(tradeNo, what string, body any) (int, map[string]any) {
	w.t.Helper()
	var out map[string]any
	s := w.merchant(w.mk, "POST", "/v1/trades/"+tradeNo+"/"+what, body, &out)
	return s, out
}

// get reads a trade as the merchant.
func (w *trWorld) get(tradeNo string) map[string]any {
	w.t.Helper()
	var out map[string]any
	if s := w.merchant(w.mk, "GET", "/v1/trades/"+tradeNo, nil, &out); s != http.StatusOK {
		w.t.Fatalf("get trade: %d %v", s, out)
	}
	return out
}

// runDue runs the trade timers now, as the background ticker would.
func (w *trWorld) runDue() int {
	w.t.Helper()
	n, err := w.m.Trades.RunDue(context.Background())
	if err != nil {
		w.t.Fatalf("RunDue: %v", err)
	}
	return n
}

// notifications returns the bodies of the outbox messages about tradeNo.
func (w *trWorld) notifications(tradeNo string) []string {
	w.t.Helper()
	rows, err := w.m.store.Reader().Query(context.Background(),
		`SELECT body FROM notifications WHERE body LIKE ? ORDER BY created_at`, "%"+tradeNo+"%")
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// wantStatus fails unless the answer has the status and, for errors, the
// code.
func wantStatus(t *testing.T, what string, got int, body map[string]any, want int, code string) {
	t.Helper()
	if got != want || errorCode(body) != code {
		t.Fatalf("%s: %d %v, want %d %s", what, got, body, want, code)
	}
}

func TestTradeEscrowLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "500.00")
		s, tr := w.create(map[string]any{"mode": "escrow", "subject": "茶叶 Tea", "total_amount": "100.00",
			"buyer_id": buyer.id})
		wantStatus(t, "create", s, tr, http.StatusCreated, "")
		checkTradeShape(t, tr)
		no := tr["trade_no"].(string)
		want := map[string]any{"status": "WAIT_BUYER_PAY", "mode": "escrow", "merchant_id": w.mk.id,
			"seller_id": w.seller.id, "buyer_id": buyer.id, "subject": "茶叶 Tea", "total_amount": "100.00",
			"buyer_pay_amount": "0.00", "refunded_amount": "0.00", "paid_at": nil, "closed_at": nil}
		checkFields(t, "created", tr, want)

		s, tr = w.pay(buyer, no)
		wantStatus(t, "pay", s, tr, http.StatusOK, "")
		checkFields(t, "paid", tr, map[string]any{"status": "WAIT_SELLER_SEND_GOODS", "buyer_pay_amount": "100.00"})
		if tr["paid_at"] == nil {
			t.Error("paid_at is null after payment")
		}
		if got := w.available(buyer); got != "400.00" {
			t.Errorf("buyer after paying: %s, want 400.00", got)
		}
		if got := w.available(w.seller); got != "0.00" {
			t.Errorf("seller before confirmation: %s, want 0.00 (escrow holds it)", got)
		}

		// Each move a second later, so the outbox orders the notifications
		// by time (the manual clock would give them all one timestamp).
		e.clock.Advance(time.Second)
		s, tr = w.move(no, "ship", map[string]string{"logistics_company": "SF", "tracking_no": "SF123"})
		wantStatus(t, "ship", s, tr, http.StatusOK, "")
		checkFields(t, "shipped", tr, map[string]any{"status": "WAIT_BUYER_CONFIRM_GOODS", "tracking_no": "SF123"})

		var out map[string]any
		e.clock.Advance(time.Second)
		s = w.bearer(buyer.token, "POST", "/v1/trades/"+no+"/confirm", nil, &out)
		wantStatus(t, "confirm", s, out, http.StatusOK, "")
		checkFields(t, "confirmed", out, map[string]any{"status": "TRADE_FINISHED"})
		if out["finished_at"] == nil {
			t.Error("finished_at is null after confirmation")
		}
		if got := w.available(w.seller); got != "100.00" {
			t.Errorf("seller after confirmation: %s, want 100.00", got)
		}
		checkFields(t, "read back", w.get(no), map[string]any{"status": "TRADE_FINISHED"})
		var byOut map[string]any
		s = w.merchant(w.mk, "GET", "/v1/trades?"+query("out_trade_no", tr["out_trade_no"].(string)), nil, &byOut)
		wantStatus(t, "get by out_trade_no", s, byOut, http.StatusOK, "")
		checkFields(t, "by out_trade_no", byOut, map[string]any{"trade_no": no})

		notes := w.notifications(no)
		if len(notes) != 3 {
			t.Fatalf("notifications: %d, want 3 (paid, shipped, finished): %v", len(notes), notes)
		}
		for i, st := range []string{"WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"} {
			if !strings.Contains(notes[i], `"notify_type":"trade_status_sync"`) || !strings.Contains(notes[i], `"status":"`+st+`"`) {
				t.Errorf("notification %d: %s, want status %s", i, notes[i], st)
			}
		}
		w.checkLedger()
	})
}

// checkTradeShape checks that a trade has every field API.md lists, with
// amounts as two-decimal strings and times as RFC 3339 UTC or null.
func checkTradeShape(t *testing.T, tr map[string]any) {
	t.Helper()
	for _, k := range []string{"trade_no", "out_trade_no", "merchant_id", "seller_id", "buyer_id", "mode",
		"subject", "total_amount", "buyer_pay_amount", "discount_amount", "refunded_amount", "status",
		"created_at", "paid_at", "shipped_at", "finished_at", "closed_at"} {
		v, ok := tr[k]
		if !ok {
			t.Errorf("trade lacks %q: %v", k, tr)
			continue
		}
		switch {
		case strings.HasSuffix(k, "_amount"):
			if s, ok := v.(string); !ok || len(s) < 4 || s[len(s)-3] != '.' {
				t.Errorf("%s = %#v, want a two-decimal string", k, v)
			}
		case strings.HasSuffix(k, "_at") && v != nil:
			s, _ := v.(string)
			if tm, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") || tm.IsZero() {
				t.Errorf("%s = %#v, want RFC 3339 UTC", k, v)
			}
		}
	}
	if no, _ := tr["trade_no"].(string); len(no) != 28 || strings.Trim(no, "0123456789") != "" {
		t.Errorf("trade_no %v: want 28 digits", tr["trade_no"])
	}
}

func checkFields(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: %s = %#v, want %#v", what, k, got[k], want[k])
		}
	}
}

func TestTradeInstant(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "100.00")
		no := w.mustCreate(map[string]any{"total_amount": "60.50"})
		s, tr := w.pay(buyer, no)
		wantStatus(t, "pay", s, tr, http.StatusOK, "")
		checkFields(t, "paid", tr, map[string]any{"status": "TRADE_SUCCESS", "buyer_id": buyer.id})
		if a, b := w.available(buyer), w.available(w.seller); a != "39.50" || b != "60.50" {
			t.Errorf("after paying: buyer %s seller %s, want 39.50 and 60.50", a, b)
		}
		// The refund window passes: the trade finishes and cannot be
		// refunded any more.
		w.clock.Advance(91 * 24 * time.Hour)
		w.runDue()
		checkFields(t, "after the refund window", w.get(no), map[string]any{"status": "TRADE_FINISHED"})
		s, out := w.move(no, "refunds", map[string]string{"out_request_no": "r1", "refund_amount": "1.00"})
		wantStatus(t, "refund after the window", s, out, http.StatusConflict, "TRADE_STATUS_ERROR")
		w.checkLedger()
	})
}

func TestTradeRefunds(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "100.00")
		no := w.mustCreate(map[string]any{"mode": "escrow"})
		if s, tr := w.pay(buyer, no); s != http.StatusOK {
			t.Fatalf("pay: %d %v", s, tr)
		}
		s, r := w.move(no, "refunds", map[string]string{"out_request_no": "r1", "refund_amount": "30.00", "reason": "broken"})
		wantStatus(t, "partial refund", s, r, http.StatusCreated, "")
		checkFields(t, "refund", r, map[string]any{"out_request_no": "r1", "refund_amount": "30.00", "status": "SUCCESS"})
		s, r = w.move(no, "refunds", map[string]string{"out_request_no": "r1", "refund_amount": "30.00"})
		wantStatus(t, "same refund again", s, r, http.StatusOK, "")
		checkFields(t, "same refund again", r, map[string]any{"refund_amount": "30.00", "status": "SUCCESS"})
		checkFields(t, "after a partial refund", w.get(no), map[string]any{"status": "WAIT_SELLER_SEND_GOODS",
			"refunded_amount": "30.00"})
		if got := w.available(buyer); got != "30.00" {
			t.Errorf("buyer after the partial refund: %s, want 30.00", got)
		}
		var got map[string]any
		s = w.merchant(w.mk, "GET", "/v1/trades/"+no+"/refunds/r1", nil, &got)
		wantStatus(t, "get refund", s, got, http.StatusOK, "")
		checkFields(t, "get refund", got, map[string]any{"refund_amount": "30.00", "status": "SUCCESS"})
		s = w.merchant(w.mk, "GET", "/v1/trades/"+no+"/refunds/nope", nil, &got)
		wantStatus(t, "get missing refund", s, got, http.StatusNotFound, "NOT_FOUND")

		s, r = w.move(no, "refunds", map[string]string{"out_request_no": "r2", "refund_amount": "70.00"})
		wantStatus(t, "last refund", s, r, http.StatusCreated, "")
		tr := w.get(no)
		checkFields(t, "after the full refund", tr, map[string]any{"status": "TRADE_CLOSED", "refunded_amount": "100.00"})
		if tr["closed_at"] == nil {
			t.Error("closed_at is null after the full refund")
		}
		if got := w.available(buyer); got != "100.00" {
			t.Errorf("buyer after the full refund: %s, want 100.00", got)
		}
		// The last refund repeated still answers with the refund.
		s, r = w.move(no, "refunds", map[string]string{"out_request_no": "r2", "refund_amount": "70.00"})
		wantStatus(t, "last refund again", s, r, http.StatusOK, "")
		if n := len(w.notifications(no)); n != 3 {
			t.Errorf("notifications: %d, want 3 (paid, two refunds)", n)
		}
		w.checkLedger()
	})
}

func TestTradeList(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		var nos []string
		for range 3 {
			nos = append(nos, w.mustCreate(nil))
			w.clock.Advance(time.Second) // distinct created_at, newest last
		}
		var page struct {
			Data    []map[string]any `json:"data"`
			HasMore bool             `json:"has_more"`
		}
		if s := w.merchant(w.mk, "GET", "/v1/trades?limit=2", nil, &page); s != http.StatusOK ||
			len(page.Data) != 2 || !page.HasMore || page.Data[0]["trade_no"] != nos[2] || page.Data[1]["trade_no"] != nos[1] {
			t.Fatalf("first page: %d %+v", s, page)
		}
		page.Data = nil
		if s := w.merchant(w.mk, "GET", "/v1/trades?limit=2&"+query("starting_after", nos[1]), nil, &page); s != http.StatusOK ||
			len(page.Data) != 1 || page.HasMore || page.Data[0]["trade_no"] != nos[0] {
			t.Fatalf("second page: %d %+v", s, page)
		}
		rival := w.newMerchant(w.user("rival"), "")
		page.Data = nil
		if s := w.merchant(rival, "GET", "/v1/trades", nil, &page); s != http.StatusOK || len(page.Data) != 0 {
			t.Errorf("another merchant's list: %d %+v", s, page)
		}
		var out map[string]any
		s := w.merchant(w.mk, "GET", "/v1/trades?limit=101", nil, &out)
		wantStatus(t, "limit 101", s, out, http.StatusBadRequest, "INVALID_REQUEST")
		s = w.merchant(rival, "GET", "/v1/trades?"+query("starting_after", nos[0]), nil, &out)
		wantStatus(t, "another merchant's cursor", s, out, http.StatusBadRequest, "INVALID_REQUEST")
		s = w.merchant(w.mk, "GET", "/v1/trades?out_trade_no=nope", nil, &out)
		wantStatus(t, "unknown out_trade_no", s, out, http.StatusNotFound, "NOT_FOUND")
	})
}
