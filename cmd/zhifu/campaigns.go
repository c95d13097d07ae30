package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
)

// campaignsFlagHelp is --campaigns' usage.
const campaignsFlagHelp = "campaign limits and monitor, key=value pairs separated by commas: max_percent=10, " +
	"max_discount=20.00, max_user_daily_cap=100.00, max_budget=1000000.00, max_days=31, " +
	"platform_kinds=trade+transfer+card_repayment+bill_payment, merchant_kinds=trade, canary_share=5, " +
	"canary_period=10m, tolerance=2, window=5s, tick=500ms (default: those values)"

// campaignConfig reads --campaigns into the campaign service's config.
func campaignConfig(spec string) (campaign.Config, error) {
	cfg := campaign.Config{Limits: campaign.DefaultLimits()}
	bad := func(key, want string) error {
		return fmt.Errorf("--campaigns: %s must be %s", key, want)
	}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, v, ok := strings.Cut(part, "=")
		if !ok {
			return cfg, fmt.Errorf("--campaigns: %q is not key=value", part)
		}
		switch key {
		case "max_percent", "canary_share":
			bp, err := zhifu.ParseAmount(v, key)
			if err != nil || bp > 10000 {
				return cfg, bad(key, "a percent between 0.01 and 100")
			}
			if key == "max_percent" {
				cfg.Limits.MaxPercentBP = int64(bp)
			} else {
				cfg.CanaryShareBP = int64(bp)
			}
		case "max_discount", "max_user_daily_cap", "max_budget":
			a, err := zhifu.ParseAmount(v, key)
			if err != nil {
				return cfg, bad(key, "an amount in yuan such as 20.00")
			}
			switch key {
			case "max_discount":
				cfg.Limits.MaxDiscount = a
			case "max_user_daily_cap":
				cfg.Limits.MaxUserDailyCap = a
			default:
				cfg.Limits.MaxBudget = a
			}
		case "max_days":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 3660 {
				return cfg, bad(key, "a number of days from 1 to 3660")
			}
			cfg.Limits.MaxDuration = time.Duration(n) * 24 * time.Hour
		case "platform_kinds", "merchant_kinds":
			var kinds []string
			for k := range strings.SplitSeq(v, "+") {
				if k != "none" && !zhifu.ValidKind(k) {
					return cfg, bad(key, "payment kinds joined by + ("+strings.Join(zhifu.PaymentKinds(), ", ")+") or none")
				}
				if k != "none" {
					kinds = append(kinds, k)
				}
			}
			cfg.Limits.FundingKinds[strings.TrimSuffix(key, "_kinds")] = kinds
		case "canary_period", "window", "tick":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > 24*time.Hour {
				return cfg, bad(key, "a duration such as 10m or 500ms")
			}
			switch key {
			case "canary_period":
				cfg.CanaryPeriod = d
			case "window":
				cfg.Window = d
			default:
				cfg.Tick = d
			}
		case "tolerance":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 1 || f > 100 {
				return cfg, bad(key, "a factor above 1, such as 2")
			}
			cfg.Tolerance = f
		default:
			return cfg, fmt.Errorf("--campaigns: unknown key %q", key)
		}
	}
	return cfg, nil
}

// newCampaigns builds the campaign service over the store, batcher and
// approvals.
func (m *Main) newCampaigns() error {
	cfg, err := campaignConfig(m.CampaignsSpec)
	if err != nil {
		return err
	}
	cfg.Store, cfg.Batcher, cfg.Approvals, cfg.Clock, cfg.Logger = m.store, m.batcher, m.Approvals, m.Clock, m.Logger
	cfg.LedgerID = identity.CNYLedger
	cfg.MerchantWallet = func(ctx context.Context, merchantID string) (int64, error) {
		mer, err := m.Identity.MerchantByID(ctx, merchantID)
		if err != nil {
			return 0, err
		}
		num, ok := zhifu.ParseUserID(mer.UserID)
		if !ok {
			return 0, fmt.Errorf("merchant %s: wallet user %q", merchantID, mer.UserID)
		}
		return zhifu.WalletAccountID(num), nil
	}
	if m.ConfigureCampaigns != nil {
		m.ConfigureCampaigns(&cfg)
	}
	m.Campaigns = campaign.New(cfg)
	return nil
}
