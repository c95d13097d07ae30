package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
)

// BenchmarkPaidTradesCampaigns is BenchmarkPaidTrades with no campaign,
// one, and ten live campaigns that all cover the trades paid (1% off, so
// every payment is discounted by the best of them: a grant, the payer's
// daily cap upserted in the payment's transaction, and the discount
// transfer, in the same batch as the payment).
//
//	go test -run '^$' -bench PaidTradesCampaigns -benchtime 5000x ./cmd/zhifu
func BenchmarkPaidTradesCampaigns(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, n := range []int{0, 1, 10} {
			b.Run(fmt.Sprintf("%s/campaigns=%d", backend, n), func(b *testing.B) {
				bench := newTradeBenchWith(b, backend, func(tm *testMain) {
					tm.ConfigureCampaigns = func(c *campaign.Config) { c.CanaryShareBP = 10000 }
				})
				startCampaigns(b, bench.m, n)
				bench.run(b)
				var grants int64
				if err := bench.m.store.Reader().QueryRow(context.Background(),
					`SELECT COUNT(*) FROM transfers WHERE code = ?`, int64(zhifu.TransferDiscount)).Scan(&grants); err != nil {
					b.Fatal(err)
				}
				if (n > 0) != (grants > 0) {
					b.Fatalf("%d campaigns gave %d discounts", n, grants)
				}
			})
		}
	}
}

// startCampaigns funds, approves and starts n campaigns over every trade,
// with plans and caps far above what the benchmark spends.
func startCampaigns(b *testing.B, tm *testMain, n int) {
	if n == 0 {
		return
	}
	ctx := context.Background()
	if _, err := tm.Wallet.AddCapital(ctx, 1_000_000_00*zhifu.Amount(n), "ICBC", "bench-capital"); err != nil {
		b.Fatal(err)
	}
	now := tm.Clock.Now()
	maker, checker := &identity.Operator{OperatorID: "OP90000001"}, &identity.Operator{OperatorID: "OP90000002"}
	for i := range n {
		sp := campaign.Spec{Name: fmt.Sprint("bench ", i), Template: campaign.PercentOff, PercentBP: 100 + int64(i),
			Kinds: []string{zhifu.KindTrade}, MaxDiscount: 20_00, UserDailyCap: 100_00, Budget: 1_000_000_00,
			StartsAt: now.Add(-time.Minute), EndsAt: now.Add(24 * time.Hour), Funding: campaign.FundPlatform,
			PlanPerHour: 1_000_000_00, Label: "bench"}
		_, p, err := tm.Campaigns.Create(ctx, maker, sp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tm.Approvals.Approve(ctx, p.ID, checker); err != nil {
			b.Fatal(err)
		}
	}
	if err := tm.Campaigns.Step(ctx); err != nil {
		b.Fatal(err)
	}
	live, _, err := tm.Campaigns.List(ctx, campaign.Canary, "", 100)
	if err != nil || len(live) != n {
		b.Fatalf("%d campaigns live, want %d: %v", len(live), n, err)
	}
}
