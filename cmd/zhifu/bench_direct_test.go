package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"zhifu/checkout"
	"zhifu/ledger"
	"zhifu/trade"
)

// BenchmarkPaidTradesDirect is BenchmarkPaidTrades with no HTTP: each client
// signs its create as a merchant does, and calls the services the handlers
// call (the signature's check, its nonce spent in the create's batch, the
// create, the buyer's session looked up, the pay), with no request, JSON or
// connection between. Beside BenchmarkPaidTrades it splits a paid trade's
// cost between the platform's services and store and its HTTP layer and
// clients.
//
//	go test -run '^$' -bench 'PaidTrades(Direct)?$/sqlite' -benchtime 15000x ./cmd/zhifu
func BenchmarkPaidTradesDirect(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			tb := newTradeBench(b, backend)
			tb.runWith(b, tb.pairDirect)
		})
	}
}

// pairDirect is pair through the services.
func (tb *tradeBench) pairDirect(seq int64, buyer string) error {
	ctx := context.Background()
	body := benchTrade(seq) // signed as sent, and created with the same parameters below
	auth := signMerchant(tb.mk, "POST", "/v1/trades", body, time.Now(), newNonce())
	m, guard, err := tb.m.Identity.VerifyMerchantSignature(ctx, auth, "POST", "/v1/trades", []byte(body))
	if err != nil {
		return err
	}
	t, _, err := tb.m.Trades.Create(ledger.WithGuard(ctx, guard), m, trade.CreateParams{
		OutTradeNo: fmt.Sprint("b", seq), Subject: "bench", TotalAmount: 100, Mode: trade.Instant})
	if err != nil {
		return err
	}
	u, err := tb.m.Identity.UserByToken(ctx, buyer)
	if err != nil {
		return err
	}
	paid, err := tb.m.Checkout.Pay(ctx, u, t.TradeNo, checkout.PayParams{Method: "balance"})
	if err != nil {
		return err
	}
	if paid.Status != trade.Success {
		return fmt.Errorf("paid trade is %s", paid.Status)
	}
	return nil
}
