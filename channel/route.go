package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/identity"
)

// A bank's state as the cashier shows it.
const (
	StateHealthy     = "healthy"
	StateCongested   = "congested"
	StateDown        = "down"
	StateMaintenance = "maintenance"
)

// Thresholds of congestion.
const (
	// congestedSuccessRate: below it, with congestedCallsMin calls in the
	// window, a bank is congested.
	congestedSuccessRate = 0.9
	congestedCallsMin    = 10
	// congestedLatency: a p99 above it is congestion too.
	congestedLatency = 2 * time.Second
)

// BankHealth is one bank's health at one instant.
type BankHealth struct {
	Bank        string
	State       string
	Breaker     BreakerState
	Calls       int
	SuccessRate float64
	P50, P99    time.Duration
	// Advice is what the cashier tells a buyer paying with this bank's
	// card; "" for a healthy bank.
	Advice string
	// MaintenanceUntil is the end of the maintenance in force, if any.
	MaintenanceUntil  time.Time
	QueuedWithdrawals int64
	CallsInFlight     int64
}

// Health reports every bank's health now.
func (s *Service) Health() []BankHealth {
	now := s.now()
	out := make([]BankHealth, len(s.order))
	for i, b := range s.order {
		out[i] = s.health(b, now)
	}
	return out
}

func (s *Service) health(b *bank, now time.Time) BankHealth {
	snap := b.window.Snapshot(now)
	h := BankHealth{Bank: b.name, Breaker: b.breaker.State(now), Calls: snap.Calls, SuccessRate: snap.SuccessRate,
		P50: snap.P50, P99: snap.P99, QueuedWithdrawals: b.queued.Load(), CallsInFlight: b.calls.Load()}
	win, inMaintenance := s.maintenanceAt(b, now)
	switch {
	case inMaintenance:
		h.State, h.MaintenanceUntil = StateMaintenance, win.End
		h.Advice = fmt.Sprintf("%s is in maintenance until %s; use another card or your balance",
			b.name, win.End.In(beijing).Format("15:04"))
	case h.Breaker == Open:
		h.State = StateDown
		h.Advice = fmt.Sprintf("%s is unavailable; use another card or your balance", b.name)
	case h.Breaker == HalfOpen || (snap.Calls >= congestedCallsMin && snap.SuccessRate < congestedSuccessRate) ||
		snap.P99 > congestedLatency:
		h.State = StateCongested
		h.Advice = fmt.Sprintf("%s is congested; use another card or your balance", b.name)
	default:
		h.State = StateHealthy
	}
	return h
}

// beijing is UTC+8, the banks' business day.
var beijing = time.FixedZone("CST", 8*60*60)

// Unavailable is a refusal because of a bank's state: the API error, and
// how long the caller should wait before trying that bank again.
type Unavailable struct {
	Err        *zhifu.Error
	RetryAfter time.Duration
}

func (u *Unavailable) Error() string { return u.Err.Error() }

// Unwrap lets errors.As find the API error.
func (u *Unavailable) Unwrap() error { return u.Err }

func unavailable(b *bank, code, msg string, retry time.Duration) *Unavailable {
	return &Unavailable{Err: &zhifu.Error{Code: code, Param: "card_id", Message: msg}, RetryAfter: max(retry, time.Second)}
}

// admit asks a bank's maintenance calendar, breaker and bucket whether a
// payment may be sent to it now. A probe granted must be reported to the
// breaker (Done) or given back (Cancel).
func (s *Service) admit(b *bank, now time.Time) (probe bool, err error) {
	if win, ok := s.maintenanceAt(b, now); ok {
		return false, unavailable(b, zhifu.Maintenance, fmt.Sprintf(
			"%s is in maintenance until %s; use another card or your balance", b.name,
			win.End.In(beijing).Format("2006-01-02 15:04 MST")), win.End.Sub(now))
	}
	ok, probe := b.breaker.Allow(now)
	if !ok {
		return false, unavailable(b, zhifu.ChannelUnavailable, fmt.Sprintf(
			"%s is unavailable; use another card or your balance", b.name), s.cfg.Breaker.CoolDown)
	}
	if !b.bucket.Take(now) {
		b.breaker.Cancel(probe)
		return false, unavailable(b, zhifu.ChannelUnavailable, fmt.Sprintf(
			"%s is congested; use another card or your balance", b.name), time.Second)
	}
	return probe, nil
}

// routed is where a payment goes.
type routed struct {
	card  *Card
	bank  *bank
	probe bool
}

// route picks the card a payment is debited from: the one named, if its
// bank can take it now; with none named, the healthiest bank's among u's
// cards. Banks down or in maintenance are never tried.
func (s *Service) route(ctx context.Context, u *identity.User, cardID string) (routed, error) {
	now := s.now()
	if cardID != "" {
		c, err := s.Card(ctx, u, cardID)
		if err != nil {
			return routed{}, err
		}
		b := s.banks[c.Bank]
		if b == nil {
			return routed{}, &zhifu.Error{Code: zhifu.ChannelUnavailable, Param: "card_id",
				Message: c.Bank + " has no channel on this platform; use another card or your balance"}
		}
		probe, err := s.admit(b, now)
		return routed{card: c, bank: b, probe: probe}, err
	}
	cards, err := s.Cards(ctx, u)
	if err != nil {
		return routed{}, err
	}
	if len(cards) == 0 {
		return routed{}, &zhifu.Error{Code: zhifu.CardNotFound, Param: "card_id", Message: "no card is bound; bind one first"}
	}
	type candidate struct {
		card *Card
		bank *bank
		h    BankHealth
	}
	var cands []candidate
	for _, c := range cards {
		if b := s.banks[c.Bank]; b != nil {
			cands = append(cands, candidate{c, b, s.health(b, now)})
		}
	}
	slices.SortStableFunc(cands, func(x, y candidate) int { return compareHealth(x.h, y.h) })
	var last error = &zhifu.Error{Code: zhifu.ChannelUnavailable, Param: "card_id",
		Message: "none of your cards' banks can take a payment now; pay with your balance or try later"}
	for _, c := range cands {
		if rankOf(c.h.State) < 0 {
			continue
		}
		probe, err := s.admit(c.bank, now)
		if err == nil {
			return routed{card: c.card, bank: c.bank, probe: probe}, nil
		}
		last = err
	}
	var u2 *Unavailable
	if errors.As(last, &u2) {
		u2.Err.Message = "none of your cards' banks can take a payment now (" + u2.Err.Message + ")"
	}
	return routed{}, last
}

// rankOf orders states for routing; -1 is never routed to.
func rankOf(state string) int {
	switch state {
	case StateHealthy:
		return 0
	case StateCongested:
		return 1
	}
	return -1
}

// compareHealth orders banks best first: by state, then success rate,
// then median latency.
func compareHealth(a, b BankHealth) int {
	ra, rb := rankOf(a.State), rankOf(b.State)
	if ra < 0 {
		ra = 9
	}
	if rb < 0 {
		rb = 9
	}
	switch {
	case ra != rb:
		return ra - rb
	case a.SuccessRate != b.SuccessRate:
		if a.SuccessRate > b.SuccessRate {
			return -1
		}
		return 1
	case a.P50 != b.P50:
		if a.P50 < b.P50 {
			return -1
		}
		return 1
	}
	return 0
}

// callOutcome is how a call that moves no money (verify, statement)
// counts for health: an answer, even a refusal of the request, is
// healthy; no answer or the bank's own error is not.
func callOutcome(err error) Outcome {
	if err == nil {
		return Success
	}
	var e *bankapi.APIError
	if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 {
		return Success
	}
	return Failure
}

// answerOutcome is how a transaction call counts for health.
func answerOutcome(a Answer) Outcome {
	if a.Healthy() {
		return Success
	}
	return Failure
}

// BankHealth reports one bank's health now; false for a bank without a
// channel.
func (s *Service) BankHealth(name string) (BankHealth, bool) {
	b := s.banks[name]
	if b == nil {
		return BankHealth{}, false
	}
	return s.health(b, s.now()), true
}

// Waiting says what a transaction not yet final waits on: its bank's
// state now (StateHealthy, StateCongested, StateDown, StateMaintenance)
// and, unless the bank is healthy, what to tell the person waiting. ok is
// false for a final transaction or a bank without a channel.
func (s *Service) Waiting(t *BankTxn) (state, advice string, ok bool) {
	b := s.banks[t.Bank]
	if b == nil || t.Status.Final() {
		return "", "", false
	}
	h := s.health(b, s.now())
	what, now := "this top-up", " To top up now, use another card."
	switch {
	case t.Kind == KindWithdrawal:
		what, now = "this withdrawal", ""
	case t.Kind == KindCardRepayment:
		what, now = "this card repayment", ""
	case t.TradeNo != "":
		what, now = "this card payment", " To pay now, use another card or your balance."
	}
	switch h.State {
	case StateDown:
		advice = fmt.Sprintf("%s is not answering; %s goes through when %s is back, and moves the money at most once.%s",
			b.name, what, b.name, now)
	case StateMaintenance:
		advice = fmt.Sprintf("%s is in maintenance until %s; %s goes through after it.", b.name,
			h.MaintenanceUntil.In(beijing).Format("15:04"), what)
	case StateCongested:
		advice = fmt.Sprintf("%s is congested; %s may take longer than usual.", b.name, what)
	}
	return h.State, advice, true
}
