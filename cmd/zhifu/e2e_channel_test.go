package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

// End-to-end tests of cards, top-ups, withdrawals, the banks' health and
// announcements, over real HTTP against the simulated banks, on both
// stores.

func TestChannelCards(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		u := e.newUsers(t, "cardholder", 1, []string{"ICBC", "CMB"}, "")[0]
		other := e.newUsers(t, "other", 1, []string{"ICBC"}, "")[0]
		var list struct {
			Data []map[string]any `json:"data"`
		}
		if s := e.bearer(u.token, "GET", "/v1/cards", nil, &list); s != 200 || len(list.Data) != 2 {
			t.Fatalf("cards: %d %v", s, list)
		}
		for _, c := range list.Data {
			for k, v := range c {
				if s, _ := v.(string); len(s) >= 12 && strings.HasPrefix(s, "622202") {
					t.Errorf("card list shows a card number in %s", k)
				}
			}
		}
		// The same card bound again is the same card.
		no := cardNumber(900_001)
		var c1, c2 map[string]any
		e.bearer(u.token, "POST", "/v1/cards", map[string]string{"bank": "CCB", "card_no": no, "holder": "张三"}, &c1)
		if s := e.bearer(u.token, "POST", "/v1/cards", map[string]string{"bank": "CCB", "card_no": no, "holder": "张三"}, &c2); s != 201 || c1["card_id"] != c2["card_id"] {
			t.Fatalf("rebind: %d %v vs %v", s, c2, c1)
		}
		var out map[string]any
		s := e.bearer(u.token, "POST", "/v1/cards", map[string]string{"bank": "NOBANK", "card_no": no, "holder": "张三"}, &out)
		idWant(t, "unknown bank", s, out, 400, "INVALID_REQUEST", "bank")
		s = e.bearer(u.token, "POST", "/v1/cards", map[string]string{"bank": "CCB", "card_no": "6222020000000001", "holder": "张三"}, &out)
		idWant(t, "bad Luhn", s, out, 400, "INVALID_REQUEST", "card_no")
		s = e.bearer(u.token, "POST", "/v1/cards", map[string]string{"bank": "CCB", "card_no": no, "holder": "李四"}, &out)
		idWant(t, "holder mismatch", s, out, 400, "INVALID_REQUEST", "card_no")
		if strings.Contains(e.m.stderr.String(), no) {
			t.Error("a card number appears in the log")
		}
		// Another user's card does not exist for this one.
		s = e.bearer(u.token, "DELETE", "/v1/cards/"+other.cards["ICBC"], nil, &out)
		idWant(t, "other's card", s, out, 404, "CARD_NOT_FOUND", "")
		s = e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "1.00", "card_id": other.cards["ICBC"]}, &out)
		idWant(t, "top-up from other's card", s, out, 404, "CARD_NOT_FOUND", "card_id")
		if s := e.bearer(u.token, "DELETE", "/v1/cards/"+c1["card_id"].(string), nil, &out); s != 200 || out["status"] != "unbound" {
			t.Fatalf("unbind: %d %v", s, out)
		}
		s = e.bearer(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": "1.00", "card_id": c1["card_id"].(string)}, &out)
		idWant(t, "withdraw to an unbound card", s, out, 404, "CARD_NOT_FOUND", "card_id")
		if s := e.bearer(u.token, "GET", "/v1/cards", nil, &list); s != 200 || len(list.Data) != 2 {
			t.Fatalf("cards after unbinding: %d %v", s, list)
		}
	})
}

func TestChannelTopupAndWithdrawal(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		u := e.newUsers(t, "saver", 1, []string{"ICBC", "CMB"}, "")[0]
		var tp map[string]any
		s := e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "800.00", "card_id": u.cards["ICBC"]}, &tp)
		if s != 201 || tp["status"] != "PROCESSING" || tp["bank"] != "ICBC" || tp["amount"] != "800.00" {
			t.Fatalf("top-up: %d %v", s, tp)
		}
		id := tp["topup_id"].(string)
		e.settle(t, 10*time.Second, time.Minute)
		if s := e.bearer(u.token, "GET", "/v1/topups/"+id, nil, &tp); s != 200 || tp["status"] != "SUCCESS" || tp["settled_at"] == nil {
			t.Fatalf("top-up after settling: %d %v", s, tp)
		}
		idWantBalance(t, e.env, u.idUser, "800.00")

		// The same intent again, by Idempotency-Key or client_ref, is the
		// same top-up: one debit.
		body := map[string]string{"amount": "50.00", "card_id": u.cards["CMB"], "client_ref": "order-1"}
		_, _, first, _ := e.do(u.token, "POST", "/v1/topups", body, "")
		_, _, again, _ := e.do(u.token, "POST", "/v1/topups", body, "")
		if first["topup_id"] == nil || again["topup_id"] != first["topup_id"] {
			t.Fatalf("client_ref replay: %v then %v", first, again)
		}
		s, _, bad, _ := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "51.00", "card_id": u.cards["CMB"], "client_ref": "order-1"}, "")
		idWant(t, "client_ref reused", s, bad, 409, "CONTEXT_INCONSISTENT", "client_ref")
		k1, _, byKey, _ := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "25.00", "card_id": u.cards["CMB"]}, "key-25")
		k2, hdr, byKey2, _ := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "25.00", "card_id": u.cards["CMB"]}, "key-25")
		if k1 != 201 || k2 != 201 || hdr.Get("Idempotent-Replayed") != "true" || byKey["topup_id"] != byKey2["topup_id"] {
			t.Fatalf("Idempotency-Key replay: %d %v then %d %v", k1, byKey, k2, byKey2)
		}
		e.settle(t, 10*time.Second, time.Minute)
		idWantBalance(t, e.env, u.idUser, "875.00")
		var list struct {
			Data    []map[string]any `json:"data"`
			HasMore bool             `json:"has_more"`
		}
		if s := e.bearer(u.token, "GET", "/v1/topups?limit=2", nil, &list); s != 200 || len(list.Data) != 2 || !list.HasMore {
			t.Fatalf("top-ups: %d %+v", s, list)
		}

		// A withdrawal leaves available at once, waits frozen, is paid.
		var wd map[string]any
		s = e.bearer(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": "300.00", "card_id": u.cards["CMB"]}, &wd)
		if s != 202 || wd["status"] != "QUEUED" || wd["bank"] != "CMB" {
			t.Fatalf("withdrawal: %d %v", s, wd)
		}
		if avail, frozen := idBalance(t, e.env, u.idUser); avail != "575.00" || frozen != "300.00" {
			t.Fatalf("after withdrawing: available %s frozen %s", avail, frozen)
		}
		var out map[string]any
		s = e.bearer(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": "575.01", "card_id": u.cards["CMB"]}, &out)
		idWant(t, "overdraw", s, out, 400, "BALANCE_NOT_ENOUGH", "amount")
		e.settle(t, 10*time.Second, time.Minute)
		if s := e.bearer(u.token, "GET", "/v1/withdrawals/"+wd["withdrawal_id"].(string), nil, &wd); s != 200 || wd["status"] != "SUCCESS" {
			t.Fatalf("withdrawal after settling: %d %v", s, wd)
		}
		idWantBalance(t, e.env, u.idUser, "575.00")
		e.verify(t, []*chUser{u}, nil, nil)
	})
}

func TestChannelTopupFailures(t *testing.T) {
	forEachChannelStore(t, chOptions{banks: func(c *banksim.Config) { c.StartingBalance = 100_00 }}, func(t *testing.T, e *chEnv) {
		u := e.newUsers(t, "poor", 1, []string{"ABC"}, "")[0]
		// The card holds 100.00: the bank refuses 100.01.
		var tp map[string]any
		e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "100.01", "card_id": u.cards["ABC"]}, &tp)
		e.settle(t, 10*time.Second, time.Minute)
		e.bearer(u.token, "GET", "/v1/topups/"+tp["topup_id"].(string), nil, &tp)
		if tp["status"] != "FAILED" || tp["reason"] != "INSUFFICIENT_FUNDS" {
			t.Fatalf("top-up beyond the card: %v", tp)
		}
		idWantBalance(t, e.env, u.idUser, "0.00")
		// Withdrawing more than the platform holds at the bank fails and
		// returns the money; here: the card is fine, the bank pays out.
		e.verify(t, []*chUser{u}, nil, nil)
	})
}

func TestChannelEbank(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		u := e.newUsers(t, "ebanker", 1, []string{"BOC"}, "")[0]
		var tp map[string]any
		s := e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "66.00", "bank": "BOC", "method": "ebank"}, &tp)
		link, _ := tp["ebank_url"].(string)
		if s != 201 || tp["status"] != "PROCESSING" || !strings.Contains(link, "/banks/BOC/ebank?") {
			t.Fatalf("ebank top-up: %d %v", s, tp)
		}
		// The person confirms at the bank with a card of their choice and
		// is sent back to the platform.
		page, err := http.Get(link)
		if err != nil || page.StatusCode != 200 {
			t.Fatalf("ebank page: %v %v", page, err)
		}
		page.Body.Close()
		q, _ := url.Parse(link)
		form := q.Query()
		form.Set("card_no", cardNumber(800_001))
		form.Set("holder", "王五")
		back, err := http.PostForm(strings.Split(link, "?")[0], form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(back.Body)
		back.Body.Close()
		if back.StatusCode != 200 || !strings.Contains(back.Request.URL.Path, "/v1/channels/BOC/return") {
			t.Fatalf("back from the bank: %d %s %s", back.StatusCode, back.Request.URL, b)
		}
		e.settle(t, 10*time.Second, time.Minute)
		e.bearer(u.token, "GET", "/v1/topups/"+tp["topup_id"].(string), nil, &tp)
		if tp["status"] != "SUCCESS" {
			t.Fatalf("ebank top-up after confirming: %v", tp)
		}
		idWantBalance(t, e.env, u.idUser, "66.00")
		// A link never used expires: the top-up fails, nothing credited.
		e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "10.00", "bank": "BOC", "method": "ebank"}, &tp)
		e.settle(t, time.Minute, time.Hour)
		e.bearer(u.token, "GET", "/v1/topups/"+tp["topup_id"].(string), nil, &tp)
		if tp["status"] != "FAILED" || tp["reason"] != "EXPIRED" {
			t.Fatalf("unused link: %v", tp)
		}
		e.verify(t, []*chUser{u}, nil, nil)
	})
}

func TestChannelCallbackSignature(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		body := `{"request_id":"TU1","bank":"ICBC","kind":"debit","status":"SUCCESS","amount":100}`
		for _, sig := range []string{"", "t=1,v1=00", bankapi.Sign("wrong-secret", e.clock.Now(), []byte(body))} {
			status, _, out, err := e.do("", "POST", "/v1/channels/ICBC/callback", body, "")
			if sig != "" {
				req, _ := http.NewRequest("POST", e.url+"/v1/channels/ICBC/callback", strings.NewReader(body))
				req.Header.Set(bankapi.SignatureHeader, sig)
				resp, err2 := http.DefaultClient.Do(req)
				if err2 != nil {
					t.Fatal(err2)
				}
				resp.Body.Close()
				status, err = resp.StatusCode, nil
			}
			if err != nil || status != 401 {
				t.Errorf("callback signed %q: %d %v %v", sig, status, out, err)
			}
		}
		// Correctly signed, for a transaction the platform never made:
		// acknowledged, nothing moves.
		secret, _ := e.banks.Secret("ICBC")
		req, _ := http.NewRequest("POST", e.url+"/v1/channels/ICBC/callback", strings.NewReader(body))
		req.Header.Set(bankapi.SignatureHeader, bankapi.Sign(secret, e.clock.Now(), []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("unknown transaction's callback: %v %v", resp, err)
		}
		resp.Body.Close()
		idCheckLedger(t, e.env)
	})
}

func TestChannelHealthAndAnnouncements(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		var ch struct {
			Data []map[string]any `json:"data"`
		}
		if s := e.bearer("", "GET", "/v1/channels", nil, &ch); s != 200 || len(ch.Data) != 6 {
			t.Fatalf("channels: %d %v", s, ch)
		}
		for _, c := range ch.Data {
			if c["state"] != "healthy" || c["breaker"] != "closed" || c["advice"] != "" {
				t.Errorf("fresh channel %v", c)
			}
		}
		// An operator announces CEB's maintenance an hour ahead; the bank
		// publishes its own for CCB.
		now := e.clock.Now()
		var a map[string]any
		s := e.admin("POST", "/v1/admin/announcements", map[string]string{"bank": "CEB",
			"starts_at": now.Add(time.Hour).Format(time.RFC3339), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339),
			"message": "CEB expands its systems"}, &a)
		if s != 201 || a["bank"] != "CEB" || a["source"] != "operator" {
			t.Fatalf("announce: %d %v", s, a)
		}
		var bad map[string]any
		s = e.admin("POST", "/v1/admin/announcements", map[string]string{"bank": "CEB",
			"starts_at": now.Format(time.RFC3339), "ends_at": now.Add(-time.Hour).Format(time.RFC3339)}, &bad)
		idWant(t, "window ending before it starts", s, bad, 400, "INVALID_REQUEST", "ends_at")
		sc, _ := e.banks.Scenario("CCB")
		sc.Maintenance = []bankapi.Window{{Start: now.Add(30 * time.Minute), End: now.Add(90 * time.Minute)}}
		if err := e.banks.SetScenario("CCB", sc); err != nil {
			t.Fatal(err)
		}
		if err := e.ch.RefreshMaintenance(context.Background()); err != nil {
			t.Fatal(err)
		}
		var as struct {
			Data []map[string]any `json:"data"`
		}
		if s := e.bearer("", "GET", "/v1/announcements", nil, &as); s != 200 || len(as.Data) != 2 ||
			as.Data[0]["bank"] != "CCB" || as.Data[0]["source"] != "bank" || as.Data[1]["bank"] != "CEB" {
			t.Fatalf("announcements: %d %v", s, as)
		}
		// Inside the window, CEB's cards are refused fast with MAINTENANCE
		// and routed around; its channel says so.
		u := e.newUsers(t, "routed", 1, []string{"CEB", "BOC"}, "")[0]
		e.clock.Advance(61 * time.Minute)
		status, hdr, out, _ := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "1.00", "card_id": u.cards["CEB"]}, "")
		if status != 503 || errorCode(out) != "MAINTENANCE" || hdr.Get("Retry-After") == "" || hdr.Get("Retry-After") == "1" {
			t.Fatalf("top-up during maintenance: %d %v Retry-After %q", status, out, hdr.Get("Retry-After"))
		}
		e.bearer("", "GET", "/v1/channels", nil, &ch)
		for _, c := range ch.Data {
			want := "healthy"
			if c["bank"] == "CEB" || c["bank"] == "CCB" {
				want = "maintenance"
			}
			if c["state"] != want || (want == "maintenance") != strings.Contains(fmt.Sprint(c["advice"]), "maintenance") {
				t.Errorf("channel during maintenance: %v", c)
			}
		}
		e.clock.Advance(2 * time.Hour)
		if s := e.bearer("", "GET", "/v1/announcements", nil, &as); s != 200 || len(as.Data) != 0 {
			t.Fatalf("announcements after the windows: %d %v", s, as)
		}
	})
}
