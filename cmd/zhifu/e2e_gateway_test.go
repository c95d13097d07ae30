package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"

	"zhifu/gateway"
)

// The Alipay-compatible gateway, driven by an unmodified Alipay SDK
// (github.com/smartwalle/alipay/v3) over real HTTP, on both stores.

var gwBeijing = time.FixedZone("CST", 8*3600)

// gwApp is a merchant set up for the gateway: its key pair, its app id, the
// SDK client pointed at the platform, and its native API key.
type gwApp struct {
	appID       string
	privPEM     string
	platformPub string // the platform's public key, base64 DER
	client      *alipay.Client
	mk          merchantKey
}

func gwKeyPair(t *testing.T) (privPEM, pubB64 string) { return gwKeyPairTB(t) }

func gwKeyPairTB(t testing.TB) (privPEM, pubB64 string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		base64.StdEncoding.EncodeToString(pub)
}

func gwNewApp(t *testing.T, w *trWorld, seller trUser, notifyURL string) *gwApp {
	t.Helper()
	privPEM, pubB64 := gwKeyPair(t)
	var m struct {
		MerchantID      string `json:"merchant_id"`
		Secret          string `json:"secret"`
		AppID           string `json:"app_id"`
		AlipayPublicKey string `json:"alipay_public_key"`
	}
	body := map[string]string{"name": "gw shop", "user_id": seller.id, "app_public_key": pubB64}
	if notifyURL != "" {
		body["notify_url"] = notifyURL
	}
	if s := w.admin("POST", "/v1/merchants", body, &m); s != http.StatusCreated || m.AlipayPublicKey == "" {
		t.Fatalf("create merchant: %d %+v", s, m)
	}
	return &gwApp{appID: m.AppID, privPEM: privPEM, platformPub: m.AlipayPublicKey, client: gwClient(t, w.url, m.AppID, privPEM, m.AlipayPublicKey),
		mk: merchantKey{id: m.MerchantID, secret: m.Secret}}
}

func gwClient(t *testing.T, base, appID, privPEM, platformPub string) *alipay.Client {
	t.Helper()
	c, err := alipay.New(appID, privPEM, false, alipay.WithSandboxGateway(base+"/gateway.do"),
		alipay.WithTimeLocation(gwBeijing))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadAliPayPublicKey(platformPub); err != nil {
		t.Fatal(err)
	}
	return c
}

// gwPaycode has user u make a payment code.
func gwPaycode(t *testing.T, w *trWorld, u trUser) string {
	t.Helper()
	var pc struct {
		AuthCode string `json:"auth_code"`
	}
	if s := w.bearer(u.token, "POST", "/v1/paycodes", nil, &pc); s != http.StatusCreated {
		t.Fatalf("paycode: %d", s)
	}
	return pc.AuthCode
}

// gwNoErr fails unless the SDK accepted the answer: a business refusal
// must still come back signed and verified.
func gwNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v (want a signed answer)", what, err)
	}
}

// gwWantCode checks the code of a verified answer.
func gwWantCode(t *testing.T, what string, got alipay.Error, code, sub string) {
	t.Helper()
	if string(got.Code) != code || got.SubCode != sub {
		t.Fatalf("%s: code %s sub %s (%s), want %s %s", what, got.Code, got.SubCode, got.SubMsg, code, sub)
	}
}

func TestGatewaySDK(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		w := newTrWorld(t, e)
		buyer := w.user("gwbuyer")
		w.fund(buyer, "500.00")
		app := gwNewApp(t, w, w.seller, "")

		// create, then the native API sees the same trade.
		out := fmt.Sprintf("gw%d", trSeq.Add(1))
		cr, err := app.client.TradeCreate(ctx, alipay.TradeCreate{Trade: alipay.Trade{OutTradeNo: out,
			Subject: "Tea", TotalAmount: "88.80"}})
		if err != nil || !cr.IsSuccess() || cr.TradeNo == "" {
			t.Fatalf("create: %v %+v", err, cr)
		}
		var native map[string]any
		if s := e.merchant(app.mk, "GET", "/v1/trades/"+cr.TradeNo, nil, &native); s != 200 ||
			native["out_trade_no"] != out || native["total_amount"] != "88.80" {
			t.Fatalf("native read of a gateway trade: %d %v", s, native)
		}
		q, err := app.client.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: out})
		if err != nil || !q.IsSuccess() || q.TradeStatus != alipay.TradeStatusWaitBuyerPay || q.TradeNo != cr.TradeNo {
			t.Fatalf("query: %v %+v", err, q)
		}
		// A trade created natively is queried through the gateway.
		nativeNo := w.mustCreate(map[string]any{"total_amount": "1.00"})
		q, err = app.client.TradeQuery(ctx, alipay.TradeQuery{TradeNo: nativeNo})
		gwNoErr(t, "query another merchant's trade", err)
		gwWantCode(t, "query another merchant's trade", q.Error, "40004", "ACQ.TRADE_NOT_EXIST")

		// close an unpaid trade.
		cl, err := app.client.TradeClose(ctx, alipay.TradeClose{OutTradeNo: out})
		if err != nil || !cl.IsSuccess() {
			t.Fatalf("close: %v %+v", err, cl)
		}
		if q, _ := app.client.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: out}); q.TradeStatus != alipay.TradeStatusClosed {
			t.Fatalf("after close: %+v", q)
		}

		// pay with a payment code (bar_code).
		payOut := fmt.Sprintf("gwp%d", trSeq.Add(1))
		pay := alipay.TradePay{Trade: alipay.Trade{OutTradeNo: payOut, Subject: "Cake", TotalAmount: "100.00"},
			Scene: "bar_code", AuthCode: gwPaycode(t, w, buyer)}
		pr, err := app.client.TradePay(ctx, pay)
		if err != nil || !pr.IsSuccess() || pr.BuyerUserId != buyer.id || pr.TotalAmount != "100.00" {
			t.Fatalf("pay: %v %+v", err, pr)
		}
		if got := w.available(buyer); got != "400.00" {
			t.Fatalf("buyer has %s after paying 100.00 of 500.00", got)
		}
		pay.AuthCode = gwPaycode(t, w, buyer)
		again, err := app.client.TradePay(ctx, pay)
		gwNoErr(t, "pay twice", err)
		gwWantCode(t, "pay twice", again.Error, "40004", "ACQ.TRADE_HAS_SUCCESS")

		// refund in part, replay, query; then cancel refunds the rest.
		rf := alipay.TradeRefund{OutTradeNo: payOut, RefundAmount: "30.00", OutRequestNo: "r1"}
		rr, err := app.client.TradeRefund(ctx, rf)
		if err != nil || !rr.IsSuccess() || rr.FundChange != "Y" || rr.RefundFee != "30.00" {
			t.Fatalf("refund: %v %+v", err, rr)
		}
		if rr, _ := app.client.TradeRefund(ctx, rf); !rr.IsSuccess() || rr.FundChange != "N" {
			t.Fatalf("refund replay: %+v", rr)
		}
		rf.RefundAmount = "31.00"
		rr, err = app.client.TradeRefund(ctx, rf)
		gwNoErr(t, "refund reuse", err)
		gwWantCode(t, "refund reuse", rr.Error, "40004", "ACQ.CONTEXT_INCONSISTENT")
		rf = alipay.TradeRefund{OutTradeNo: payOut, RefundAmount: "71.00", OutRequestNo: "r2"}
		rr, err = app.client.TradeRefund(ctx, rf)
		gwNoErr(t, "refund too much", err)
		gwWantCode(t, "refund too much", rr.Error, "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
		rq, err := app.client.TradeFastPayRefundQuery(ctx, alipay.TradeFastPayRefundQuery{OutTradeNo: payOut, OutRequestNo: "r1"})
		if err != nil || !rq.IsSuccess() || rq.RefundStatus != "REFUND_SUCCESS" || rq.RefundAmount != "30.00" {
			t.Fatalf("refund query: %v %+v", err, rq)
		}
		cn, err := app.client.TradeCancel(ctx, alipay.TradeCancel{OutTradeNo: payOut})
		if err != nil || !cn.IsSuccess() || cn.Action != "refund" {
			t.Fatalf("cancel: %v %+v", err, cn)
		}
		if got := w.available(buyer); got != "500.00" {
			t.Fatalf("buyer has %s after refund and cancel", got)
		}

		// insufficient balance, and an unknown trade.
		poor := w.user("gwpoor")
		pay = alipay.TradePay{Trade: alipay.Trade{OutTradeNo: fmt.Sprintf("gwx%d", trSeq.Add(1)), Subject: "TV",
			TotalAmount: "9.99"}, Scene: "bar_code", AuthCode: gwPaycode(t, w, poor)}
		pr, err = app.client.TradePay(ctx, pay)
		gwNoErr(t, "pay without money", err)
		gwWantCode(t, "pay without money", pr.Error, "40004", "ACQ.BUYER_BALANCE_NOT_ENOUGH")
		pay.OutTradeNo, pay.AuthCode = fmt.Sprintf("gwy%d", trSeq.Add(1)), "280000000000000000"
		pr, err = app.client.TradePay(ctx, pay)
		gwNoErr(t, "unknown payment code", err)
		gwWantCode(t, "unknown payment code", pr.Error, "40004", "ACQ.PAYMENT_AUTH_CODE_INVALID")
		q, err = app.client.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "nope"})
		gwNoErr(t, "query unknown", err)
		gwWantCode(t, "query unknown", q.Error, "40004", "ACQ.TRADE_NOT_EXIST")

		gwPrecreateAndBill(t, w, app, buyer)
		w.checkLedger()
	})
}

// gwPrecreateAndBill: precreate's QR code opens the cashier, where the buyer
// pays; the bill link downloads the day's bill with the trade in it.
func gwPrecreateAndBill(t *testing.T, w *trWorld, app *gwApp, buyer trUser) {
	ctx := context.Background()
	out := fmt.Sprintf("gwq%d", trSeq.Add(1))
	pc, err := app.client.TradePreCreate(ctx, alipay.TradePreCreate{Trade: alipay.Trade{OutTradeNo: out,
		Subject: "Noodles", TotalAmount: "12.50"}})
	if err != nil || !pc.IsSuccess() || !strings.HasPrefix(pc.QRCode, w.url+"/cashier/") {
		t.Fatalf("precreate: %v %+v", err, pc)
	}
	page := gwGet(t, pc.QRCode)
	if !strings.Contains(page, "12.50") || !strings.Contains(page, "Noodles") {
		t.Fatalf("cashier page does not show the trade: %s", page)
	}
	// The buyer logs in on the page and pays from the balance.
	resp, err := http.PostForm(pc.QRCode, url.Values{"login": {buyer.login}, "password": {trPassword}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "TRADE_SUCCESS") {
		t.Fatalf("cashier pay: %d %s", resp.StatusCode, b)
	}
	bu, err := app.client.BillDownloadURLQuery(ctx, alipay.BillDownloadURLQuery{BillType: "trade",
		BillDate: time.Now().In(gwBeijing).Format("2006-01-02")})
	if err != nil || !bu.IsSuccess() || bu.BillDownloadURL == "" {
		t.Fatalf("bill url: %v %+v", err, bu)
	}
	if bill := gwGet(t, bu.BillDownloadURL); !strings.Contains(bill, out) {
		t.Fatalf("bill lacks %s: %s", out, bill)
	}
	if s, _ := gwStatus(bu.BillDownloadURL + "x"); s != http.StatusUnauthorized {
		t.Fatalf("a tampered bill link answered %d", s)
	}
}

func gwGet(t *testing.T, u string) string {
	t.Helper()
	s, b := gwStatus(u)
	if s != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, s, b)
	}
	return b
}

func gwStatus(u string) (int, string) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGatewayRefusals: bad signatures, a wrong app_id, an unknown method,
// malformed biz_content and stale timestamps are answered in Alipay's error
// format and change nothing.
func TestGatewayRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		w := newTrWorld(t, e)
		buyer := w.user("gwrbuyer")
		w.fund(buyer, "50.00")
		app := gwNewApp(t, w, w.seller, "")
		before := w.available(buyer)

		otherPriv, _ := gwKeyPair(t)
		var platformPub struct {
			AlipayPublicKey string `json:"alipay_public_key"`
		}
		e.merchant(app.mk, "GET", "/v1/merchant", nil, &platformPub)
		// Refusals before the caller is known are signed with the platform
		// key too, as Alipay's are: the SDK verifies them and reports the code.
		forged := gwClient(t, w.url, app.appID, otherPriv, platformPub.AlipayPublicKey)
		pay := alipay.TradePay{Trade: alipay.Trade{OutTradeNo: "gwforged", Subject: "x", TotalAmount: "10.00"},
			Scene: "bar_code", AuthCode: gwPaycode(t, w, buyer)}
		fr, err := forged.TradePay(ctx, pay)
		gwNoErr(t, "bad signature", err)
		gwWantCode(t, "bad signature", fr.Error, "40002", "isv.invalid-signature")

		stranger := gwClient(t, w.url, "2021999999999999", app.privPEM, platformPub.AlipayPublicKey)
		sq, err := stranger.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "x"})
		gwNoErr(t, "unknown app", err)
		gwWantCode(t, "unknown app", sq.Error, "40002", "isv.invalid-app-id")

		raw := func(mutate func(v url.Values), tamper ...func(v url.Values)) map[string]any {
			v := url.Values{"app_id": {app.appID}, "method": {"alipay.trade.pay"}, "charset": {"utf-8"},
				"sign_type": {"RSA2"}, "timestamp": {time.Now().In(gwBeijing).Format("2006-01-02 15:04:05")},
				"version": {"1.0"}, "biz_content": {`{"out_trade_no":"gwraw","scene":"bar_code","total_amount":"10.00","subject":"x","auth_code":"` + pay.AuthCode + `"}`}}
			mutate(v)
			v.Set("sign", gwSign(t, app.privPEM, v))
			for _, f := range tamper {
				f(v)
			}
			var out map[string]any
			s, _, b := e.request("POST", "/gateway.do", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, v.Encode())
			if s != 200 {
				t.Fatalf("gateway answered HTTP %d", s)
			}
			decode(t, b, &out)
			return out
		}
		wantRaw := func(what string, resp map[string]any, name, code, sub string) {
			t.Helper()
			node, _ := resp[name].(map[string]any)
			if node["code"] != code || node["sub_code"] != sub {
				t.Fatalf("%s: %v, want %s %s", what, resp, code, sub)
			}
			if resp["sign"] == nil {
				t.Fatalf("%s: the refusal is unsigned: %v", what, resp)
			}
		}
		wantRaw("unknown method", raw(func(v url.Values) { v.Set("method", "alipay.trade.teleport") }),
			"alipay_trade_teleport_response", "40002", "isv.invalid-method")
		wantRaw("malformed biz_content", raw(func(v url.Values) { v.Set("biz_content", `{"out_trade_no":`) }),
			"alipay_trade_pay_response", "40002", "isv.invalid-parameter")
		wantRaw("stale timestamp", raw(func(v url.Values) {
			v.Set("timestamp", time.Now().Add(-time.Hour).In(gwBeijing).Format("2006-01-02 15:04:05"))
		}), "alipay_trade_pay_response", "40002", "isv.invalid-timestamp")
		wantRaw("tampered after signing", raw(func(url.Values) {}, func(v url.Values) {
			v.Set("biz_content", strings.Replace(v.Get("biz_content"), "10.00", "0.01", 1))
		}), "alipay_trade_pay_response", "40002", "isv.invalid-signature")

		if got := w.available(buyer); got != before {
			t.Fatalf("buyer has %s, had %s: a refused call moved money", got, before)
		}
		w.checkLedger()
	})
}

func gwSign(t *testing.T, privPEM string, v url.Values) string {
	t.Helper()
	block, _ := pem.Decode([]byte(privPEM))
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := gateway.SignRSA2(k, []byte(gateway.SignContent(v, "sign")))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestGatewayNotifications: a gateway trade's status change reaches the
// merchant in Alipay's format, and the SDK's own verification accepts it.
func TestGatewayNotifications(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		got := make(chan url.Values, 8)
		var client *alipay.Client
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			mu.Lock()
			c := client
			mu.Unlock()
			if _, err := c.DecodeNotification(r.PostForm); err != nil {
				t.Errorf("SDK refused our notification: %v", err)
				rw.Write([]byte("fail"))
				return
			}
			got <- r.PostForm
			rw.Write([]byte("success"))
		}))
		defer srv.Close()
		w := newTrWorld(t, e)
		buyer := w.user("gwnbuyer")
		w.fund(buyer, "20.00")
		app := gwNewApp(t, w, w.seller, srv.URL+"/alipay-notify")
		mu.Lock()
		client = app.client
		mu.Unlock()
		out := fmt.Sprintf("gwn%d", trSeq.Add(1))
		pr, err := app.client.TradePay(context.Background(), alipay.TradePay{Trade: alipay.Trade{OutTradeNo: out,
			Subject: "Tea", TotalAmount: "5.00", NotifyURL: srv.URL + "/alipay-notify"}, Scene: "bar_code",
			AuthCode: gwPaycode(t, w, buyer)})
		if err != nil || !pr.IsSuccess() {
			t.Fatalf("pay: %v %+v", err, pr)
		}
		select {
		case v := <-got:
			if v.Get("out_trade_no") != out || v.Get("trade_status") != "TRADE_SUCCESS" ||
				v.Get("total_amount") != "5.00" || v.Get("app_id") != app.appID || v.Get("sign_type") != "RSA2" {
				t.Fatalf("notification: %v", v)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no notification within 20 s")
		}
	})
}

// TestGatewayKeyRotation: after an operator rotates the platform key, SDKs
// still holding the old public key refuse the answers, and the new key,
// shown on the merchant's profile, verifies them.
func TestGatewayKeyRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		w := newTrWorld(t, e)
		app := gwNewApp(t, w, w.seller, "")
		if q, err := app.client.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "none"}); err != nil || q.SubCode != "ACQ.TRADE_NOT_EXIST" {
			t.Fatalf("before rotation: %v %+v", err, q)
		}
		var rotated struct {
			KeyID           string `json:"key_id"`
			AlipayPublicKey string `json:"alipay_public_key"`
		}
		if s := e.admin("POST", "/v1/admin/gateway/keys/rotate", nil, &rotated); s != 200 || rotated.AlipayPublicKey == "" {
			t.Fatalf("rotate: %d %+v", s, rotated)
		}
		if _, err := app.client.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "none"}); err == nil {
			t.Fatal("an answer signed with the new key verified against the old one")
		}
		var profile struct {
			AlipayPublicKey string `json:"alipay_public_key"`
		}
		e.merchant(app.mk, "GET", "/v1/merchant", nil, &profile)
		if profile.AlipayPublicKey != rotated.AlipayPublicKey {
			t.Fatal("the merchant profile does not show the new key")
		}
		fresh := gwClient(t, w.url, app.appID, app.privPEM, rotated.AlipayPublicKey)
		if q, err := fresh.TradeQuery(ctx, alipay.TradeQuery{OutTradeNo: "none"}); err != nil || q.SubCode != "ACQ.TRADE_NOT_EXIST" {
			t.Fatalf("after rotation with the new key: %v %+v", err, q)
		}
	})
}

// gwCall is one hand-made gateway request: the parameters to put in the
// URL's query string and those to put in a form body (none: GET), signed
// over their union as Alipay's SDKs sign.
type gwCall struct {
	query, body url.Values
	get         bool
	contentType string // default application/x-www-form-urlencoded;charset=utf-8
	rawBody     string // sent instead of body when set
}

// gwCommon are the common parameters of a call to method by app.
func gwCommon(app *gwApp, method string) url.Values {
	return url.Values{"app_id": {app.appID}, "method": {method}, "charset": {"utf-8"}, "format": {"JSON"},
		"sign_type": {"RSA2"}, "timestamp": {time.Now().In(gwBeijing).Format("2006-01-02 15:04:05")},
		"version": {"1.0"}}
}

// sign signs the union of query and body with privPEM (the query's value
// where both have one), putting sign in the query string.
func (c *gwCall) sign(t *testing.T, privPEM string) *gwCall {
	t.Helper()
	all := url.Values{}
	for _, vs := range []url.Values{c.query, c.body} {
		for k, v := range vs {
			if !all.Has(k) {
				all[k] = v
			}
		}
	}
	c.query.Set("sign", gwSign(t, privPEM, all))
	return c
}

// send makes the request and returns the answer, after checking it is
// HTTP 200, carries a sign, and that sign verifies with the platform's key
// over the exact bytes of the node named name.
func (c *gwCall) send(t *testing.T, w *trWorld, app *gwApp, name string) map[string]any {
	t.Helper()
	method, body := "POST", c.rawBody
	if c.get {
		method = "GET"
	} else if body == "" {
		body = c.body.Encode()
	}
	h := http.Header{}
	if !c.get {
		ct := c.contentType
		if ct == "" {
			ct = "application/x-www-form-urlencoded;charset=utf-8"
		}
		h.Set("Content-Type", ct)
	}
	s, _, b := w.request(method, "/gateway.do?"+c.query.Encode(), h, body)
	if s != http.StatusOK {
		t.Fatalf("gateway answered HTTP %d: %s", s, b)
	}
	return gwVerified(t, app.platformPub, b, name)
}

// gwVerified checks that answer b has a node called name signed with the
// platform key, and returns the node.
func gwVerified(t *testing.T, platformPub string, b []byte, name string) map[string]any {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	var sig string
	if json.Unmarshal(raw["sign"], &sig); sig == "" || raw[name] == nil {
		t.Fatalf("answer lacks a sign or %s: %s", name, b)
	}
	pub, err := gateway.ParsePublicKey(platformPub)
	if err != nil {
		t.Fatal(err)
	}
	if err := gateway.VerifyRSA2(pub, raw[name], sig); err != nil {
		t.Fatalf("answer's sign does not verify with the platform key: %v: %s", err, b)
	}
	var node map[string]any
	decode(t, raw[name], &node)
	return node
}

func gwWantNode(t *testing.T, what string, node map[string]any, code, sub string) {
	t.Helper()
	gotSub, _ := node["sub_code"].(string)
	if node["code"] != code || gotSub != sub {
		t.Fatalf("%s: %v, want %s %s", what, node, code, sub)
	}
	if msg, _ := node["sub_msg"].(string); sub != "" && msg == "" {
		t.Fatalf("%s: no sub_msg: %v", what, node)
	}
}

// TestGatewayQueryAndGet: the common parameters may come in the URL's
// query string and the rest in the body, or everything in the query string
// of a GET, as Alipay's SDKs send them; the signature covers the union. A
// parameter given twice with different values, a body that is not a UTF-8
// form, and an oversized body are refused; every answer, refusals before
// the app is known included, is signed with the platform's key.
func TestGatewayQueryAndGet(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		app := gwNewApp(t, w, w.seller, "")
		out := fmt.Sprintf("gwqs%d", trSeq.Add(1))
		biz := func(v string) url.Values { return url.Values{"biz_content": {v}} }
		create := `{"out_trade_no":"` + out + `","total_amount":"6.60","subject":"Bun"}`

		// POST: common parameters in the query string, biz_content in the body.
		c := (&gwCall{query: gwCommon(app, "alipay.trade.create"), body: biz(create)}).sign(t, app.privPEM)
		node := c.send(t, w, app, "alipay_trade_create_response")
		gwWantNode(t, "create, split", node, "10000", "")
		tradeNo, _ := node["trade_no"].(string)
		var native map[string]any
		if s := e.merchant(app.mk, "GET", "/v1/trades/"+tradeNo, nil, &native); s != 200 || native["out_trade_no"] != out {
			t.Fatalf("native read of the trade: %d %v", s, native)
		}

		// GET: everything in the query string.
		q := gwCommon(app, "alipay.trade.query")
		q.Set("biz_content", `{"out_trade_no":"`+out+`"}`)
		node = (&gwCall{query: q, get: true}).sign(t, app.privPEM).send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "query, GET", node, "10000", "")
		if node["trade_no"] != tradeNo || node["trade_status"] != "WAIT_BUYER_PAY" {
			t.Fatalf("query, GET: %v", node)
		}

		// POST with an empty body: everything in the query string.
		q = gwCommon(app, "alipay.trade.query")
		q.Set("biz_content", `{"trade_no":"`+tradeNo+`"}`)
		node = (&gwCall{query: q}).sign(t, app.privPEM).send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "query, POST without a body", node, "10000", "")

		// A parameter in both places: the same value is one parameter; a
		// different one is refused, whichever the signature covers.
		dup := gwCommon(app, "alipay.trade.query")
		node = (&gwCall{query: dup, body: url.Values{"biz_content": {`{"trade_no":"` + tradeNo + `"}`},
			"app_id": {app.appID}}}).sign(t, app.privPEM).send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "app_id twice, same value", node, "10000", "")
		other := fmt.Sprintf("gwqo%d", trSeq.Add(1))
		c = &gwCall{query: gwCommon(app, "alipay.trade.create"), body: biz(create)}
		c.query.Set("biz_content", strings.Replace(create, out, other, 1))
		node = c.sign(t, app.privPEM).send(t, w, app, "alipay_trade_create_response")
		gwWantNode(t, "biz_content twice, different values", node, "40002", "isv.invalid-parameter")
		c = &gwCall{query: gwCommon(app, "alipay.trade.query"), body: biz(`{"trade_no":"` + tradeNo + `"}`)}
		c.sign(t, app.privPEM)
		c.body.Set("method", "alipay.trade.close")
		node = c.send(t, w, app, "error_response")
		gwWantNode(t, "method twice, different values", node, "40002", "isv.invalid-parameter")
		var qs map[string]any
		if s := e.merchant(app.mk, "GET", "/v1/trades?out_trade_no="+other, nil, &qs); s != http.StatusNotFound {
			t.Fatalf("a refused conflicting create made a trade: %d %v", s, qs)
		}

		// Refusals before the app is known are signed all the same.
		c = &gwCall{query: gwCommon(app, "alipay.trade.query"), body: biz(`{}`)}
		c.query.Del("method")
		node = c.sign(t, app.privPEM).send(t, w, app, "error_response")
		gwWantNode(t, "no method", node, "40001", "isv.missing-method")
		c = &gwCall{query: gwCommon(app, "alipay.trade.query"), body: biz(`{}`)}
		c.query.Set("app_id", "2021999999999999")
		node = c.sign(t, app.privPEM).send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "unknown app", node, "40002", "isv.invalid-app-id")
		c = (&gwCall{query: gwCommon(app, "alipay.trade.query"), body: biz(`{"trade_no":"` + tradeNo + `"}`)}).sign(t, app.privPEM)
		c.query.Set("timestamp", time.Now().Add(-time.Minute).In(gwBeijing).Format("2006-01-02 15:04:05"))
		node = c.send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "query parameter changed after signing", node, "40002", "isv.invalid-signature")

		// The body must be a UTF-8 form within the limit.
		c = (&gwCall{query: gwCommon(app, "alipay.trade.query"), body: biz(`{"trade_no":"` + tradeNo + `"}`),
			contentType: "application/x-www-form-urlencoded; charset=GBK"}).sign(t, app.privPEM)
		node = c.send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "GBK body", node, "40002", "isv.invalid-charset")
		c = (&gwCall{query: gwCommon(app, "alipay.trade.query"), body: biz("{\"subject\":\"\xff\"}")}).sign(t, app.privPEM)
		node = c.send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "body not UTF-8", node, "40002", "isv.invalid-charset")
		c = (&gwCall{query: gwCommon(app, "alipay.trade.query"), contentType: "application/json",
			rawBody: `{"biz_content":{}}`}).sign(t, app.privPEM)
		node = c.send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "JSON body", node, "40002", "isv.invalid-parameter")
		c = (&gwCall{query: gwCommon(app, "alipay.trade.query"),
			body: biz(`{"trade_no":"` + strings.Repeat("9", gateway.BodyBytesMax) + `"}`)}).sign(t, app.privPEM)
		node = c.send(t, w, app, "alipay_trade_query_response")
		gwWantNode(t, "body over the limit", node, "40002", "isv.invalid-parameter")
		if msg, _ := node["sub_msg"].(string); !strings.Contains(msg, "body") {
			t.Fatalf("body over the limit: refused for another reason: %v", node)
		}
		w.checkLedger()
	})
}
