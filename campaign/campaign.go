package campaign

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"zhifu"
)

// Templates a campaign is made from.
const (
	PercentOff = "percent_off" // Percent of the amount off, up to MaxDiscount
	FixedOff   = "fixed_off"   // AmountOff off every eligible payment
)

// Funding types: whose money a campaign spends.
const (
	FundPlatform = "platform" // the platform's own funds
	FundMerchant = "merchant" // a merchant's wallet, for its own trades
)

// Statuses of a campaign.
const (
	PendingApproval = "PENDING_APPROVAL" // created or changed; a second operator must approve
	Scheduled       = "SCHEDULED"        // approved and funded, before its start
	Canary          = "CANARY"           // live for a canary share of payers
	Live            = "LIVE"             // live for every eligible payer
	Paused          = "PAUSED"           // stopped by the monitor or an operator; a change re-files it
	Killed          = "KILLED"           // stopped for good by an operator
	Ended           = "ENDED"            // its end passed; what is left is back in own funds
)

// Bounds on what a campaign's text holds.
const (
	nameLenMax      = 64
	labelLenMax     = 32
	merchantsMax    = 100
	reasonLenMax    = 256
	percentBPMax    = 10000
	basisPointsFull = 10000
)

// Spec is what an operator says a campaign is: everything but its state.
type Spec struct {
	Name         string
	Template     string
	PercentBP    int64        // percent_off: basis points of the amount (500 = 5%)
	AmountOff    zhifu.Amount // fixed_off: off every eligible payment
	Kinds        []string     // payment kinds it applies to
	Merchants    []string     // merchants (sellers, billers) it applies to; empty for all
	MinAmount    zhifu.Amount // payments below it get nothing
	MaxDiscount  zhifu.Amount // discount cap per payment
	UserDailyCap zhifu.Amount // discount cap per payer per day (China Standard Time)
	Budget       zhifu.Amount // the most it can ever spend
	StartsAt     time.Time
	EndsAt       time.Time
	Funding      string // FundPlatform or FundMerchant
	FundingID    string // the merchant, for FundMerchant
	PlanPerHour  zhifu.Amount
	PlanShareBP  int64 // planned share of payments discounted; 0 leaves it unjudged
	PlanRatioBP  int64 // planned discount ÷ amount; 0 for the template's own
	Label        string
}

// Campaign is a campaign as stored.
type Campaign struct {
	Spec
	CampaignID    string
	Num           int64
	BudgetAccount int64
	Status        string
	StatusReason  string
	Version       int64
	CreatedBy     string
	ChangedBy     string
	ApprovedBy    string
	CreatedAt     time.Time
	ChangedAt     time.Time
	LiveAt        time.Time
	WidenedAt     time.Time
	StoppedAt     time.Time
	Funded        zhifu.Amount // moved into the budget so far
	Returned      zhifu.Amount // returned to the funding account since it stopped
}

// BudgetAccountID is the ledger account of campaign num's budget.
func BudgetAccountID(num int64) int64 { return zhifu.CampaignBudgetAccountID(num) }

// Limits are the platform's hard limits, from configuration: a campaign
// outside them cannot be saved, whoever asks.
type Limits struct {
	MaxPercentBP    int64               // percent_off at most this (1000 = 10%)
	MaxDiscount     zhifu.Amount        // discount per payment at most this
	MaxUserDailyCap zhifu.Amount        // per-user daily cap at most this (and required)
	MaxBudget       zhifu.Amount        // budget at most this
	MaxDuration     time.Duration       // ends_at − starts_at at most this
	FundingKinds    map[string][]string // funding type → the payment kinds it may touch
}

// DefaultLimits are the limits of a platform that sets none. The 20%-off
// of the 2025 incident is twice MaxPercentBP.
func DefaultLimits() Limits {
	return Limits{
		MaxPercentBP:    1000,
		MaxDiscount:     20_00,
		MaxUserDailyCap: 100_00,
		MaxBudget:       1_000_000_00,
		MaxDuration:     31 * 24 * time.Hour,
		FundingKinds: map[string][]string{
			FundPlatform: zhifu.PaymentKinds(),
			FundMerchant: {zhifu.KindTrade},
		},
	}
}

// Validate checks s against the limits; the error names the field and,
// for a value out of bounds, the limit.
func (l Limits) Validate(s *Spec) error {
	bad := func(param, format string, args ...any) error {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
	}
	limit := func(param, format string, args ...any) error {
		return &zhifu.Error{Code: zhifu.LimitExceeded, Param: param, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case s.Name == "" || utf8.RuneCountInString(s.Name) > nameLenMax || !utf8.ValidString(s.Name):
		return bad("name", "name must be 1 to %d characters", nameLenMax)
	case s.Label == "" || utf8.RuneCountInString(s.Label) > labelLenMax || !utf8.ValidString(s.Label):
		return bad("label", "label must be 1 to %d characters: the payer reads it", labelLenMax)
	}
	switch s.Template {
	case PercentOff:
		if s.PercentBP <= 0 || s.PercentBP > percentBPMax || s.AmountOff != 0 {
			return bad("percent", "percent_off needs percent between 0.01 and 100, and no amount_off")
		}
		if s.PercentBP > l.MaxPercentBP {
			return limit("percent", "percent %s is over the platform limit of %s%%",
				zhifu.Amount(s.PercentBP), zhifu.Amount(l.MaxPercentBP))
		}
	case FixedOff:
		if s.AmountOff <= 0 || s.PercentBP != 0 {
			return bad("amount_off", "fixed_off needs amount_off, and no percent")
		}
		if s.AmountOff > l.MaxDiscount {
			return limit("amount_off", "amount_off %s is over the platform limit of %s per payment",
				s.AmountOff, l.MaxDiscount)
		}
	default:
		return bad("template", `template must be "percent_off" or "fixed_off"`)
	}
	if len(s.Kinds) == 0 {
		return bad("kinds", "kinds must name at least one payment kind")
	}
	for _, k := range s.Kinds {
		if !zhifu.ValidKind(k) {
			return bad("kinds", "%q is not a payment kind (%s)", k, strings.Join(zhifu.PaymentKinds(), ", "))
		}
	}
	if len(s.Merchants) > merchantsMax {
		return bad("merchants", "at most %d merchants", merchantsMax)
	}
	allowed, ok := l.FundingKinds[s.Funding]
	if !ok {
		return bad("funding", `funding type must be "platform" or "merchant"`)
	}
	for _, k := range s.Kinds {
		if !slices.Contains(allowed, k) {
			return limit("kinds", "funding %q may not touch %s payments (platform limit: %s)",
				s.Funding, k, strings.Join(allowed, ", "))
		}
	}
	switch s.Funding {
	case FundPlatform:
		if s.FundingID != "" {
			return bad("funding.merchant_id", "platform funding names no merchant")
		}
	case FundMerchant:
		if s.FundingID == "" || len(s.Merchants) != 1 || s.Merchants[0] != s.FundingID {
			return bad("merchants", "a merchant-funded campaign applies to that merchant's payments only")
		}
	}
	switch {
	case s.MinAmount < 0:
		return bad("min_amount", "min_amount cannot be negative")
	case s.MaxDiscount <= 0:
		return bad("max_discount", "max_discount is required")
	case s.MaxDiscount > l.MaxDiscount:
		return limit("max_discount", "max_discount %s is over the platform limit of %s per payment",
			s.MaxDiscount, l.MaxDiscount)
	case s.UserDailyCap <= 0:
		return bad("user_daily_cap", "user_daily_cap is required")
	case s.UserDailyCap > l.MaxUserDailyCap:
		return limit("user_daily_cap", "user_daily_cap %s is over the platform limit of %s", s.UserDailyCap,
			l.MaxUserDailyCap)
	case s.Budget <= 0:
		return bad("budget", "budget is required")
	case s.Budget > l.MaxBudget:
		return limit("budget", "budget %s is over the platform limit of %s", s.Budget, l.MaxBudget)
	case s.StartsAt.IsZero() || s.EndsAt.IsZero() || !s.EndsAt.After(s.StartsAt):
		return bad("ends_at", "starts_at and ends_at are required, ends_at after starts_at")
	case s.EndsAt.Sub(s.StartsAt) > l.MaxDuration:
		return limit("ends_at", "a campaign runs at most %s (platform limit)", l.MaxDuration)
	case s.PlanPerHour <= 0:
		return bad("plan.spend_per_hour", "plan.spend_per_hour is required: the monitor judges spend by it")
	case s.PlanPerHour > s.Budget:
		return bad("plan.spend_per_hour", "plan.spend_per_hour is more than the whole budget")
	case s.PlanShareBP < 0 || s.PlanShareBP > basisPointsFull:
		return bad("plan.payments_share", "plan.payments_share must be between 0 and 1")
	case s.PlanRatioBP < 0 || s.PlanRatioBP > basisPointsFull:
		return bad("plan.discount_ratio", "plan.discount_ratio must be between 0 and 1")
	}
	return nil
}

// applies reports whether the campaign covers payment p (scope only: not
// its time, status, canary or caps).
func (s *Spec) applies(p Payment) bool {
	if !slices.Contains(s.Kinds, p.Kind) || p.Amount < s.MinAmount {
		return false
	}
	if len(s.Merchants) == 0 {
		return true
	}
	return slices.Contains(s.Merchants, p.PayeeID)
}

// discountOf is what the template takes off amount, before caps other
// than the per-payment one; a payer always pays at least one fen.
func (s *Spec) discountOf(amount zhifu.Amount) zhifu.Amount {
	var d zhifu.Amount
	switch s.Template {
	case PercentOff:
		d = zhifu.Amount(int64(amount) * s.PercentBP / basisPointsFull)
	case FixedOff:
		d = s.AmountOff
	}
	return max(0, min(d, s.MaxDiscount, amount-1))
}

// plannedRatioBP is the discount ratio the monitor expects: the plan's, or
// the template's percent.
func (s *Spec) plannedRatioBP() int64 {
	if s.PlanRatioBP > 0 {
		return s.PlanRatioBP
	}
	if s.Template == PercentOff {
		return s.PercentBP
	}
	return 0
}

// inCanary reports whether payer falls in the canary share (basis points)
// of campaign id: a stable hash, so a payer is in or out for the whole
// canary period.
func inCanary(id, payer string, shareBP int64) bool {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(payer))
	return int64(h.Sum64()%basisPointsFull) < shareBP
}

// dayOf is the China Standard Time day of t, for per-user daily caps.
func dayOf(t time.Time) int64 {
	const cst = 8 * 3600
	return (t.Unix() + cst) / 86400
}
