package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestTradeErrors triggers every error the trade API owns at least once, and
// checks that a refused request changes nothing.
func TestTradeErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer, other := w.user("buyer"), w.user("other")
		w.fund(buyer, "1000.00")

		t.Run("invalid requests", func(t *testing.T) { trInvalidRequests(t, w.with(t)) })
		t.Run("business keys", func(t *testing.T) { trBusinessKeys(t, w.with(t), buyer) })
		t.Run("not found", func(t *testing.T) { trNotFound(t, w.with(t), buyer, other) })
		t.Run("state table", func(t *testing.T) { trStateTable(t, w.with(t), buyer) })
		t.Run("money", func(t *testing.T) { trMoneyRefusals(t, w.with(t), buyer) })
		w.checkLedger()
	})
}

func trInvalidRequests(t *testing.T, w *trWorld) {
	cases := []struct {
		fields map[string]any
		code   string
		param  string
	}{
		{map[string]any{"out_trade_no": "has space"}, "INVALID_REQUEST", "out_trade_no"},
		{map[string]any{"out_trade_no": ""}, "INVALID_REQUEST", "out_trade_no"},
		{map[string]any{"subject": ""}, "INVALID_REQUEST", "subject"},
		{map[string]any{"mode": "later"}, "INVALID_REQUEST", "mode"},
		{map[string]any{"timeout_express": "16d"}, "INVALID_REQUEST", "timeout_express"},
		{map[string]any{"timeout_express": "1.5h"}, "INVALID_REQUEST", "timeout_express"},
		{map[string]any{"confirm_timeout": "91d"}, "INVALID_REQUEST", "confirm_timeout"},
		{map[string]any{"confirm_timeout": "0s"}, "INVALID_REQUEST", "confirm_timeout"},
		{map[string]any{"notify_url": "ftp://x"}, "INVALID_REQUEST", "notify_url"},
		{map[string]any{"buyer_id": w.seller.id}, "INVALID_REQUEST", "buyer_id"},
		{map[string]any{"total_amount": 100}, "INVALID_AMOUNT", "total_amount"},
		{map[string]any{"total_amount": "12.345"}, "INVALID_AMOUNT", "total_amount"},
		{map[string]any{"total_amount": "0.00"}, "INVALID_AMOUNT", "total_amount"},
		{map[string]any{"unknown": "x"}, "INVALID_REQUEST", "unknown"},
	}
	for _, c := range cases {
		s, out := w.create(c.fields)
		e, _ := out["error"].(map[string]any)
		if s != http.StatusBadRequest || errorCode(out) != c.code || e["param"] != c.param {
			t.Errorf("create %v: %d %v, want 400 %s on %s", c.fields, s, out, c.code, c.param)
		}
	}
	// The seller cannot pay its own trade.
	no := w.mustCreate(nil)
	w.fund(w.seller, "100.00")
	s, out := w.pay(w.seller, no)
	wantStatus(t, "seller pays own trade", s, out, http.StatusBadRequest, "INVALID_REQUEST")
	s = w.bearer(w.seller.token, "POST", "/v1/trades/"+no+"/pay", map[string]string{"method": "cash"}, &out)
	wantStatus(t, "unknown method", s, out, http.StatusBadRequest, "INVALID_REQUEST")
	s = w.bearer(w.seller.token, "POST", "/v1/trades/"+no+"/pay", map[string]string{"method": "card", "card_id": "c1"}, &out)
	wantStatus(t, "seller pays own trade by card", s, out, http.StatusBadRequest, "INVALID_REQUEST")
	s = w.bearer(w.seller.token, "POST", "/v1/trades/"+no+"/pay", map[string]string{"method": "balance+card"}, &out)
	wantStatus(t, "seller pays own trade by balance+card", s, out, http.StatusBadRequest, "INVALID_REQUEST")
	s = w.bearer("not-a-token", "POST", "/v1/trades/"+no+"/pay", map[string]string{"method": "balance"}, &out)
	wantStatus(t, "pay without a session", s, out, http.StatusUnauthorized, "UNAUTHORIZED")
	s, out = w.move(no, "ship", map[string]string{"tracking_no": string(make([]byte, 65))})
	wantStatus(t, "tracking_no too long", s, out, http.StatusBadRequest, "INVALID_REQUEST")
	checkFields(t, "after the refusals", w.get(no), map[string]any{"status": "WAIT_BUYER_PAY"})
}

func trBusinessKeys(t *testing.T, w *trWorld, buyer trUser) {
	fields := map[string]any{"out_trade_no": "K1", "subject": "Tea", "total_amount": "10.00", "mode": "escrow"}
	s, first := w.create(fields)
	wantStatus(t, "create", s, first, http.StatusCreated, "")
	// Omitted and default durations are the same parameters.
	fields["timeout_express"] = "30m"
	s, again := w.create(fields)
	wantStatus(t, "same out_trade_no again", s, again, http.StatusOK, "")
	if again["trade_no"] != first["trade_no"] {
		t.Errorf("same out_trade_no gave trade %v, then %v", first["trade_no"], again["trade_no"])
	}
	fields["total_amount"] = "11.00"
	s, out := w.create(fields)
	wantStatus(t, "out_trade_no with another amount", s, out, http.StatusConflict, "CONTEXT_INCONSISTENT")

	no := first["trade_no"].(string)
	if s, out := w.pay(buyer, no); s != http.StatusOK {
		t.Fatalf("pay: %d %v", s, out)
	}
	s, out = w.move(no, "refunds", map[string]string{"out_request_no": "R1", "refund_amount": "1.00"})
	wantStatus(t, "refund", s, out, http.StatusCreated, "")
	s, out = w.move(no, "refunds", map[string]string{"out_request_no": "R1", "refund_amount": "2.00"})
	wantStatus(t, "out_request_no with another amount", s, out, http.StatusConflict, "CONTEXT_INCONSISTENT")
	checkFields(t, "after the conflict", w.get(no), map[string]any{"refunded_amount": "1.00"})
}

func trNotFound(t *testing.T, w *trWorld, buyer, other trUser) {
	no := w.mustCreate(map[string]any{"buyer_id": buyer.id})
	rival := w.newMerchant(w.user("rival"), "")
	var out map[string]any
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/trades/" + no}, {"POST", "/v1/trades/" + no + "/close"},
		{"POST", "/v1/trades/" + no + "/ship"}, {"GET", "/v1/trades/" + no + "/refunds/r1"},
	} {
		s := w.merchant(rival, c.method, c.path, nil, &out)
		wantStatus(t, "another merchant's "+c.path, s, out, http.StatusNotFound, "NOT_FOUND")
	}
	s := w.merchant(rival, "POST", "/v1/trades/"+no+"/refunds", map[string]string{"out_request_no": "r",
		"refund_amount": "1.00"}, &out)
	wantStatus(t, "another merchant's refund", s, out, http.StatusNotFound, "NOT_FOUND")
	s = w.merchant(w.mk, "GET", "/v1/trades/20260101000000000000000000", nil, &out)
	wantStatus(t, "unknown trade", s, out, http.StatusNotFound, "NOT_FOUND")
	s = w.merchant(w.mk, "GET", "/v1/trades/garbage", nil, &out)
	wantStatus(t, "malformed trade_no", s, out, http.StatusNotFound, "NOT_FOUND")
	s, out = w.create(map[string]any{"buyer_id": "2088999999999999"})
	wantStatus(t, "unknown buyer", s, out, http.StatusNotFound, "NOT_FOUND")
	// A trade named for one buyer does not exist for anyone else.
	s, out = w.pay(other, no)
	wantStatus(t, "someone else pays a named trade", s, out, http.StatusNotFound, "NOT_FOUND")
	if s, out := w.pay(buyer, no); s != http.StatusOK {
		t.Fatalf("pay: %d %v", s, out)
	}
	s = w.bearer(other.token, "POST", "/v1/trades/"+no+"/confirm", nil, &out)
	wantStatus(t, "someone else confirms", s, out, http.StatusNotFound, "NOT_FOUND")
}

func trStateTable(t *testing.T, w *trWorld, buyer trUser) {
	no := w.mustCreate(map[string]any{"buyer_id": buyer.id})
	var out map[string]any
	s := w.bearer(buyer.token, "POST", "/v1/trades/"+no+"/confirm", nil, &out)
	wantStatus(t, "confirm an unpaid trade", s, out, http.StatusConflict, "TRADE_STATUS_ERROR")
	if s, out := w.pay(buyer, no); s != http.StatusOK {
		t.Fatalf("pay: %d %v", s, out)
	}
	s, out = w.pay(buyer, no)
	wantStatus(t, "pay again", s, out, http.StatusConflict, "TRADE_HAS_SUCCESS")
	s, out = w.move(no, "close", nil)
	wantStatus(t, "close a paid trade", s, out, http.StatusConflict, "TRADE_STATUS_ERROR")
	s, out = w.move(no, "ship", nil)
	wantStatus(t, "ship an instant trade", s, out, http.StatusConflict, "TRADE_STATUS_ERROR")

	closed := w.mustCreate(nil)
	s, out = w.move(closed, "close", nil)
	wantStatus(t, "close", s, out, http.StatusOK, "")
	checkFields(t, "closed", out, map[string]any{"status": "TRADE_CLOSED"})
	s, out = w.pay(buyer, closed)
	wantStatus(t, "pay a closed trade", s, out, http.StatusConflict, "TRADE_HAS_CLOSE")
	s, out = w.move(closed, "close", map[string]any{})
	wantStatus(t, "close again", s, out, http.StatusConflict, "TRADE_HAS_CLOSE")
}

func trMoneyRefusals(t *testing.T, w *trWorld, buyer trUser) {
	poor := w.user("poor")
	w.fund(poor, "10.00")
	no := w.mustCreate(map[string]any{"total_amount": "10.01"})
	s, out := w.pay(poor, no)
	wantStatus(t, "pay beyond the balance", s, out, http.StatusBadRequest, "BUYER_BALANCE_NOT_ENOUGH")
	checkFields(t, "after the refusal", w.get(no), map[string]any{"status": "WAIT_BUYER_PAY", "buyer_id": nil,
		"buyer_pay_amount": "0.00", "paid_at": nil})
	if got := w.available(poor); got != "10.00" {
		t.Errorf("balance after a refused payment: %s, want 10.00", got)
	}
	if n := len(w.notifications(no)); n != 0 {
		t.Errorf("a refused payment wrote %d notifications", n)
	}

	paid := w.mustCreate(map[string]any{"total_amount": "50.00"})
	if s, out := w.pay(buyer, paid); s != http.StatusOK {
		t.Fatalf("pay: %d %v", s, out)
	}
	s, out = w.move(paid, "refunds", map[string]string{"out_request_no": "x", "refund_amount": "50.01"})
	wantStatus(t, "refund more than paid", s, out, http.StatusBadRequest, "REFUND_AMOUNT_EXCEEDED")

	// The seller spends what the trade brought (it pays another shop), so
	// an instant trade's refund finds the seller's wallet short.
	other := newTrWorld(t, w.env)
	spend := other.mustCreate(map[string]any{"total_amount": w.available(w.seller)})
	if s, out := other.pay(w.seller, spend); s != http.StatusOK {
		t.Fatalf("seller pays elsewhere: %d %v", s, out)
	}
	s, out = w.move(paid, "refunds", map[string]string{"out_request_no": "y", "refund_amount": "5.00"})
	wantStatus(t, "refund beyond the seller's balance", s, out, http.StatusBadRequest, "BALANCE_NOT_ENOUGH")
	checkFields(t, "after the refused refund", w.get(paid), map[string]any{"refunded_amount": "0.00",
		"status": "TRADE_SUCCESS"})
}

// TestTradeConcurrentPay sends 200 payments of one trade at once, half to a
// second node on the same database: exactly one succeeds, the others are
// told the trade is paid, and the buyer is charged once.
func TestTradeConcurrentPay(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "1000.00")
		no := w.mustCreate(map[string]any{"total_amount": "99.99", "mode": "escrow"})
		const n = 200
		// A client of its own, whose connections are closed before the
		// platform shuts down: the server's graceful shutdown would
		// otherwise wait 5 s for connections the client opened but never
		// used.
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
		// Its own data folder: one server per data folder.
		second := trStartNode(t, e.clock, e.m.DB, t.TempDir())
		t.Cleanup(client.CloseIdleConnections)
		urls := []string{w.url, second.URL()}
		statuses := make([]int, n)
		codes := make([]string, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				statuses[i], codes[i] = trPost(client, urls[i%2]+"/v1/trades/"+no+"/pay", buyer.token, `{"method":"balance"}`)
			})
		}
		close(start)
		wg.Wait()
		ok, paid := 0, 0
		for i := range n {
			switch {
			case statuses[i] == http.StatusOK:
				ok++
			case statuses[i] == http.StatusConflict && codes[i] == "TRADE_HAS_SUCCESS":
				paid++
			default:
				t.Errorf("request %d: %d %s", i, statuses[i], codes[i])
			}
		}
		if ok != 1 || paid != n-1 {
			t.Errorf("%d succeeded and %d were told it is paid, want 1 and %d", ok, paid, n-1)
		}
		if got := w.available(buyer); got != "900.01" {
			t.Errorf("buyer after %d payments: %s, want 900.01", n, got)
		}
		w.checkLedger()
	})
}

// trPost sends one user request on client and returns the status and the
// error code; it is safe off the test's goroutine (a failure to connect is
// status 0).
func trPost(client *http.Client, url, token, body string) (int, string) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, errorCode(out)
}
