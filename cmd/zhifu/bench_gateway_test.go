package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"
)

// BenchmarkGatewayPay compares a payment-code payment through the
// Alipay-compatible gateway (one alipay.trade.pay: RSA2 verify of the
// request, create and collect, RSA2 sign of the response; the SDK signs and
// verifies on the client side, on the same two cores) with the same payment
// through the native API (a signed create, then a signed collect: HMAC
// only). 64 clients; payment codes are made before the clock starts.
//
//	go test -run '^$' -bench GatewayPay -benchtime 3000x ./cmd/zhifu
func BenchmarkGatewayPay(b *testing.B) {
	for _, api := range []string{"gateway", "native"} {
		b.Run(api, func(b *testing.B) {
			tb := newTradeBench(b, "sqlite")
			codes := tb.paycodes(b, b.N)
			var pay func(seq int64, code string) error
			if api == "gateway" {
				client := tb.gatewayClient(b)
				pay = func(seq int64, code string) error {
					r, err := client.TradePay(context.Background(), alipay.TradePay{Trade: alipay.Trade{
						OutTradeNo: fmt.Sprintf("g%d", seq), Subject: "bench", TotalAmount: "1.00"},
						Scene: "bar_code", AuthCode: code})
					if err == nil && !r.IsSuccess() {
						err = fmt.Errorf("pay: %s %s", r.SubCode, r.SubMsg)
					}
					return err
				}
			} else {
				pay = tb.nativeCollect
			}
			runPayments(b, codes, pay)
		})
	}
}

// paycodes makes n payment codes, spread over the buyers.
func (tb *tradeBench) paycodes(b *testing.B, n int) []string {
	codes := make([]string, n)
	for i := range codes {
		var pc struct {
			AuthCode string `json:"auth_code"`
		}
		tb.must(b, "POST", "/v1/paycodes", "Bearer "+tb.buyers[i%len(tb.buyers)], "", &pc)
		codes[i] = pc.AuthCode
	}
	return codes
}

// gatewayClient registers an app key for the bench merchant's seller as a
// second merchant and returns an SDK client for it.
func (tb *tradeBench) gatewayClient(b *testing.B) *alipay.Client {
	priv, pub := gwKeyPairTB(b)
	var seller struct {
		UserID string `json:"user_id"`
	}
	admin := "Bearer " + tb.m.AdminToken()
	tb.must(b, "POST", "/v1/users", admin, `{"login":"gwbenchseller","password":"bench password 1","name":"s"}`, &seller)
	var m struct {
		AppID           string `json:"app_id"`
		AlipayPublicKey string `json:"alipay_public_key"`
	}
	tb.must(b, "POST", "/v1/merchants", admin, fmt.Sprintf(`{"name":"gw","user_id":%q,"app_public_key":%q}`,
		seller.UserID, pub), &m)
	c, err := alipay.New(m.AppID, priv, false, alipay.WithSandboxGateway(tb.url+"/gateway.do"),
		alipay.WithTimeLocation(gwBeijing), alipay.WithHTTPClient(tb.client))
	if err != nil {
		b.Fatal(err)
	}
	if err := c.LoadAliPayPublicKey(m.AlipayPublicKey); err != nil {
		b.Fatal(err)
	}
	return c
}

// nativeCollect is the native API's payment-code payment.
func (tb *tradeBench) nativeCollect(seq int64, code string) error {
	body := fmt.Sprintf(`{"out_trade_no":"n%d","subject":"bench","total_amount":"1.00","mode":"instant"}`, seq)
	var tr struct {
		TradeNo string `json:"trade_no"`
	}
	if err := tb.call("POST", "/v1/trades", signMerchant(tb.mk, "POST", "/v1/trades", body, time.Now(), newNonce()),
		body, &tr); err != nil {
		return err
	}
	path := "/v1/trades/" + tr.TradeNo + "/collect"
	body = fmt.Sprintf(`{"auth_code":%q}`, code)
	return tb.call("POST", path, signMerchant(tb.mk, "POST", path, body, time.Now(), newNonce()), body, nil)
}

// runPayments runs one payment per code on benchClients clients and
// reports payments/s and p50/p99 latency.
func runPayments(b *testing.B, codes []string, pay func(seq int64, code string) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, benchClients)
	errs := make([]error, benchClients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range benchClients {
		wg.Go(func() {
			for {
				seq := next.Add(1)
				if seq > int64(len(codes)) {
					return
				}
				t0 := time.Now()
				if err := pay(seq, codes[seq-1]); err != nil {
					errs[c] = err
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "payments/s", lat, elapsed)
}
