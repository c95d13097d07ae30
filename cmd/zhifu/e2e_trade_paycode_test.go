package main

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"
)

// trPayCode asks for a payment code as u.
func (w *trWorld) payCode(u trUser) string {
	w.t.Helper()
	var pc struct {
		AuthCode  string `json:"auth_code"`
		ExpiresAt string `json:"expires_at"`
	}
	if s := w.bearer(u.token, "POST", "/v1/paycodes", nil, &pc); s != http.StatusCreated {
		w.t.Fatalf("paycode: %d", s)
	}
	exp, err := time.Parse(time.RFC3339, pc.ExpiresAt)
	if len(pc.AuthCode) != 18 || !strings.HasPrefix(pc.AuthCode, "28") || err != nil {
		w.t.Fatalf("paycode %+v: want 18 digits starting 28 and an RFC 3339 expiry", pc)
	}
	if d := exp.Sub(w.clock.Now()); d < 59*time.Second || d > 60*time.Second {
		w.t.Errorf("paycode expires in %v, want 60s", d)
	}
	return pc.AuthCode
}

func TestTradePayCode(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "100.00")
		code := w.payCode(buyer)

		no := w.mustCreate(map[string]any{"total_amount": "25.00"})
		s, tr := w.move(no, "collect", map[string]string{"auth_code": code})
		wantStatus(t, "collect", s, tr, http.StatusOK, "")
		checkFields(t, "collected", tr, map[string]any{"status": "TRADE_SUCCESS", "buyer_id": buyer.id})
		if got := w.available(buyer); got != "75.00" {
			t.Errorf("buyer after collect: %s, want 75.00", got)
		}
		// Collecting the same trade again says it is paid; the code
		// cannot pay a second trade.
		s, out := w.move(no, "collect", map[string]string{"auth_code": code})
		wantStatus(t, "collect again", s, out, http.StatusConflict, "TRADE_HAS_SUCCESS")
		second := w.mustCreate(map[string]any{"total_amount": "1.00"})
		s, out = w.move(second, "collect", map[string]string{"auth_code": code})
		wantStatus(t, "reuse a code", s, out, http.StatusBadRequest, "INVALID_REQUEST")
		trParam(t, out, "auth_code")
		s, out = w.move(second, "collect", map[string]string{"auth_code": "280000000000000000"})
		wantStatus(t, "unknown code", s, out, http.StatusBadRequest, "INVALID_REQUEST")
		s, out = w.move(second, "collect", map[string]string{"auth_code": "12"})
		wantStatus(t, "malformed code", s, out, http.StatusBadRequest, "INVALID_REQUEST")

		// A refused payment leaves the code usable.
		big := w.mustCreate(map[string]any{"total_amount": "500.00"})
		fresh := w.payCode(buyer)
		s, out = w.move(big, "collect", map[string]string{"auth_code": fresh})
		wantStatus(t, "collect beyond the balance", s, out, http.StatusBadRequest, "BUYER_BALANCE_NOT_ENOUGH")
		s, out = w.move(second, "collect", map[string]string{"auth_code": fresh})
		wantStatus(t, "the same code on a smaller trade", s, out, http.StatusOK, "")

		// Codes expire after 60 seconds of the platform's clock.
		third := w.mustCreate(map[string]any{"total_amount": "1.00"})
		old := w.payCode(buyer)
		w.clock.Advance(60 * time.Second)
		s, out = w.move(third, "collect", map[string]string{"auth_code": old})
		wantStatus(t, "expired code", s, out, http.StatusBadRequest, "INVALID_REQUEST")
		checkFields(t, "after the expired code", w.get(third), map[string]any{"status": "WAIT_BUYER_PAY"})
		if got := w.available(buyer); got != "74.00" {
			t.Errorf("buyer at the end: %s, want 74.00", got)
		}
		w.checkLedger()
	})
}

func trParam(t *testing.T, body map[string]any, want string) {
	t.Helper()
	if e, _ := body["error"].(map[string]any); e["param"] != want {
		t.Errorf("error %v: param want %q", body, want)
	}
}

// bill fetches the merchant's CSV bill of date.
func (w *trWorld) bill(date string) (int, [][]string, string) {
	w.t.Helper()
	path := "/v1/bills?" + query("date", date)
	h := http.Header{"Authorization": {signMerchant(w.mk, "GET", path, "", w.clock.Now(), newNonce())}}
	s, hdr, b := w.request("GET", path, h, "")
	if s != http.StatusOK {
		return s, nil, string(b)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		w.t.Errorf("bill Content-Type %q", ct)
	}
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		w.t.Fatalf("bill is not CSV: %v\n%s", err, b)
	}
	return s, recs, string(b)
}

func TestTradeBill(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "1000.00")
		a := w.mustCreate(map[string]any{"total_amount": "10.00", "subject": "=cmd|' /C calc'!A0"})
		b := w.mustCreate(map[string]any{"total_amount": "20.00", "mode": "escrow"})
		w.mustCreate(map[string]any{"total_amount": "30.00"}) // never paid: not on the bill
		for _, no := range []string{a, b} {
			if s, out := w.pay(buyer, no); s != http.StatusOK {
				t.Fatalf("pay: %d %v", s, out)
			}
		}
		if s, out := w.move(b, "refunds", map[string]string{"out_request_no": "rf1", "refund_amount": "5.00",
			"reason": "late"}); s != http.StatusCreated {
			t.Fatalf("refund: %d %v", s, out)
		}
		china := time.FixedZone("UTC+8", 8*3600)
		today := w.clock.Now().In(china).Format("2006-01-02")
		s, recs, raw := w.bill(today)
		if s != http.StatusOK {
			t.Fatalf("bill: %d %s", s, raw)
		}
		header := "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户," +
			"订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称," +
			"商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
		if len(recs) != 4 || strings.Join(recs[0], ",") != header {
			t.Fatalf("bill has %d lines:\n%s", len(recs), raw)
		}
		lines := map[string][]string{}
		for _, r := range recs[1:] {
			if len(r) != 25 {
				t.Fatalf("line of %d columns: %v", len(r), r)
			}
			lines[r[0]+"/"+r[2]] = r
		}
		checkLine := func(key, amount, reqNo string) {
			t.Helper()
			r, ok := lines[key]
			if !ok || r[11] != amount || r[12] != amount || r[10] != buyer.id || r[21] != reqNo {
				t.Errorf("line %s: %v, want amount %s request %q", key, r, amount, reqNo)
			}
		}
		checkLine(a+"/交易", "10.00", "")
		checkLine(b+"/交易", "20.00", "")
		checkLine(b+"/退款", "-5.00", "rf1")
		if subj := lines[a+"/交易"][3]; !strings.HasPrefix(subj, "'=") {
			t.Errorf("a subject that spreadsheets would run is written %q", subj)
		}
		if _, err := time.ParseInLocation("2006-01-02 15:04:05", lines[a+"/交易"][5], china); err != nil {
			t.Errorf("完成时间 %q: %v", lines[a+"/交易"][5], err)
		}

		// Another day is empty; a malformed day is refused.
		if s, recs, raw := w.bill("2001-01-01"); s != http.StatusOK || len(recs) != 1 {
			t.Errorf("empty day: %d %s", s, raw)
		}
		for _, bad := range []string{"", "2026-13-01", "2026-1-1", "yesterday"} {
			if s, _, raw := w.bill(bad); s != http.StatusBadRequest || !strings.Contains(raw, `"param":"date"`) {
				t.Errorf("date %q: %d %s, want 400 on date", bad, s, raw)
			}
		}
	})
}
