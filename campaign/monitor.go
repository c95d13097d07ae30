package campaign

import (
	"context"
	"fmt"
	"time"

	"zhifu"
)

// Minimum counts below which a ratio is noise and is not judged.
const (
	judgedPaymentsMin   = 50 // payments seen, for the share discounted
	judgedDiscountedMin = 20 // payments discounted, for the discount ratio
	// burstDiscounts is how many of its largest discounts a campaign may
	// give in one window whatever its plan, so that a small plan is not
	// paused by its first few payments.
	burstDiscounts = 5
)

// Figures is what the monitor saw of one campaign over its window.
type Figures struct {
	Window      time.Duration
	Spend       zhifu.Amount // discounts given over the window, by every node
	Allowed     zhifu.Amount // the spend the plan allows over the window, with tolerance
	Payments    int64        // payments this node saw over the window
	Discounted  int64        // of which this campaign discounted
	ShareBP     int64        // Discounted ÷ Payments
	AllowedBP   int64        // the share the plan allows, with tolerance (0: not judged)
	RatioBP     int64        // discount ÷ amount of the discounted payments
	AllowedRBP  int64        // the ratio the plan allows, with tolerance (0: not judged)
	CanaryShare int64        // the canary share applied to the plan, 10000 once widened
}

// judge compares campaign l's figures over the window with its plan and
// says what is out of line, or "".
func (s *Service) judge(ctx context.Context, l *live, now time.Time) (string, error) {
	f, err := s.figures(ctx, l, now)
	if err != nil {
		return "", err
	}
	return f.breach(), nil
}

func (f Figures) breach() string {
	switch {
	case f.Spend > f.Allowed:
		return fmt.Sprintf("spend %s in %s is over the %s its plan allows (tolerance included)", f.Spend, f.Window, f.Allowed)
	case f.AllowedBP > 0 && f.Payments >= judgedPaymentsMin && f.ShareBP > f.AllowedBP:
		return fmt.Sprintf("discounted %d of %d payments (%s%%) in %s, over the %s%% its plan allows",
			f.Discounted, f.Payments, zhifu.Amount(f.ShareBP), f.Window, zhifu.Amount(f.AllowedBP))
	case f.AllowedRBP > 0 && f.Discounted >= judgedDiscountedMin && f.RatioBP > f.AllowedRBP:
		return fmt.Sprintf("discounts are %s%% of the amounts in %s, over the %s%% its plan allows",
			zhifu.Amount(f.RatioBP), f.Window, zhifu.Amount(f.AllowedRBP))
	}
	return ""
}

// figures takes the window's spend from the budget's balance, which every
// node's discounts lower, and this node's counts of payments.
func (s *Service) figures(ctx context.Context, l *live, now time.Time) (Figures, error) {
	c := l.c
	start := now.Add(-s.cfg.Window)
	if c.LiveAt.After(start) {
		start = c.LiveAt
	}
	window := max(now.Sub(start), time.Second)
	spend := l.budget.spentSince(start)
	share := int64(basisPointsFull)
	if c.Status == Canary {
		share = s.cfg.CanaryShareBP
	}
	allowed := s.cfg.Tolerance * float64(c.PlanPerHour) * window.Seconds() / 3600 * float64(share) / basisPointsFull
	allowed = max(allowed, float64(burstDiscounts*c.MaxDiscount))
	f := Figures{Window: window, Spend: zhifu.Amount(spend), Allowed: zhifu.Amount(allowed), CanaryShare: share}
	all, given := s.all.since(start, now), l.given.since(start, now)
	f.Payments, f.Discounted = all.payments, given.payments
	if f.Payments > 0 {
		f.ShareBP = f.Discounted * basisPointsFull / f.Payments
	}
	if given.amount > 0 {
		f.RatioBP = given.discount * basisPointsFull / given.amount
	}
	if c.PlanShareBP > 0 {
		f.AllowedBP = min(int64(s.cfg.Tolerance*float64(c.PlanShareBP*share)/basisPointsFull), basisPointsFull)
	}
	if r := c.plannedRatioBP(); r > 0 && c.PlanRatioBP > 0 {
		f.AllowedRBP = int64(s.cfg.Tolerance * float64(r))
	}
	return f, nil
}

// Figures are campaign id's figures over the monitor's window as this
// node sees them now; false when the campaign is not live here.
func (s *Service) Figures(ctx context.Context, id string) (Figures, bool, error) {
	l := s.find(id)
	if l == nil || (l.c.Status != Canary && l.c.Status != Live) {
		return Figures{}, false, nil
	}
	f, err := s.figures(ctx, l, s.cfg.Clock.Now())
	return f, err == nil, err
}
