package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// live is a campaign as this node gives from it: the row of its last read,
// an estimate of what its budget has left, and what it gave lately.
type live struct {
	c         *Campaign
	remaining atomic.Int64 // the budget's balance at the last read, less what was offered since
	given     stats        // this node's payments discounted by it
	// budget holds the budget's balance as read at each refresh: what it
	// fell by over a window is what every node spent from it.
	budget samples
}

// samples are a budget's balances at the last refreshes, oldest first.
type samples struct {
	mu  sync.Mutex
	buf []sample
}

type sample struct {
	at      time.Time
	balance int64
}

// samplesMax bounds the balances kept: more than a window's worth at any
// tick the monitor allows.
const samplesMax = 256

func (s *samples) add(at time.Time, balance int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) == samplesMax {
		s.buf = append(s.buf[:0], s.buf[1:]...)
	}
	s.buf = append(s.buf, sample{at, balance})
}

// spentSince is how far the balance fell from the oldest balance read at
// or after start to the newest (a refund that returned a discount makes it
// fall less).
func (s *samples) spentSince(start time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.buf {
		if !x.at.Before(start) {
			return max(0, x.balance-s.buf[len(s.buf)-1].balance)
		}
	}
	return 0
}

// stats counts payments per second over the last statsSeconds seconds.
type stats struct {
	mu      sync.Mutex
	buckets [statsSeconds]bucket
}

const statsSeconds = 64

type bucket struct {
	sec              int64
	payments         int64
	amount, discount int64
}

func (st *stats) add(now time.Time, amount, discount zhifu.Amount) {
	sec := now.Unix()
	st.mu.Lock()
	b := &st.buckets[sec%statsSeconds]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.payments++
	b.amount += int64(amount)
	b.discount += int64(discount)
	st.mu.Unlock()
}

// since sums the buckets of the seconds from start to now.
func (st *stats) since(start, now time.Time) bucket {
	var sum bucket
	from, to := start.Unix(), now.Unix()
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, b := range st.buckets {
		if b.sec >= from && b.sec <= to {
			sum.payments += b.payments
			sum.amount += b.amount
			sum.discount += b.discount
		}
	}
	return sum
}

// Offer is Discounter: the best discount of the campaigns live on this
// node for payment p, reserved against the payer's daily cap in the
// payment's transaction. Campaigns do not add up: a payment gets at most
// one campaign's discount.
func (s *Service) Offer(ctx context.Context, q ledger.Querier, p Payment) (Grant, error) {
	s.all.add(p.Now, p.Amount, 0)
	var best *live
	var d zhifu.Amount
	for _, l := range *s.live.Load() {
		c := l.c
		if (c.Status != Canary && c.Status != Live) || p.Now.Before(c.StartsAt) || !p.Now.Before(c.EndsAt) ||
			!c.applies(p) || (c.Status == Canary && !inCanary(c.CampaignID, p.PayerID, s.cfg.CanaryShareBP)) {
			continue
		}
		if x := min(c.discountOf(p.Amount), zhifu.Amount(l.remaining.Load())); x > d {
			best, d = l, x
		}
	}
	if best == nil {
		return Grant{}, nil
	}
	c := best.c
	var used int64
	err := q.QueryRow(ctx, `INSERT INTO campaign_usage (campaign_id, user_id, day, discount) VALUES (?, ?, ?, ?)
		ON CONFLICT (campaign_id, user_id, day) DO UPDATE SET discount = campaign_usage.discount + excluded.discount
		RETURNING discount`, c.CampaignID, p.PayerID, dayOf(p.Now), int64(d)).Scan(&used)
	if err != nil {
		return Grant{}, fmt.Errorf("campaign: usage of %s: %w", c.CampaignID, err)
	}
	if over := zhifu.Amount(used) - c.UserDailyCap; over > 0 {
		// Past the payer's cap: keep what fits, give the rest back.
		if err := unuse(ctx, q, c.CampaignID, p, min(over, d)); err != nil {
			return Grant{}, err
		}
		if d -= over; d <= 0 {
			return Grant{}, nil
		}
	}
	best.remaining.Add(-int64(d))
	best.given.add(p.Now, p.Amount, d)
	return Grant{CampaignID: c.CampaignID, Label: c.Label, Discount: d, Budget: c.BudgetAccount}, nil
}

func unuse(ctx context.Context, q ledger.Querier, id string, p Payment, d zhifu.Amount) error {
	if _, err := q.Exec(ctx, `UPDATE campaign_usage SET discount = discount - ? WHERE campaign_id = ? AND user_id = ? AND day = ?`,
		int64(d), id, p.PayerID, dayOf(p.Now)); err != nil {
		return fmt.Errorf("campaign: usage of %s: %w", id, err)
	}
	return nil
}

// Settle is Discounter: a discount the ledger refused gives the payer's
// cap back. One that went through needs nothing more: its transfer from
// the budget is the record (the monitor reads the budget's balance, the
// dry run and reports the transfers).
func (s *Service) Settle(ctx context.Context, q ledger.Querier, p Payment, g Grant, ok bool) error {
	if g.Discount <= 0 || ok {
		return nil
	}
	if l := s.find(g.CampaignID); l != nil {
		l.remaining.Add(int64(g.Discount))
	}
	return unuse(ctx, q, g.CampaignID, p, g.Discount)
}

func (s *Service) find(id string) *live {
	for _, l := range *s.live.Load() {
		if l.c.CampaignID == id {
			return l
		}
	}
	return nil
}

// drop stops this node giving from campaign c, just stopped, at once,
// before its next read, and keeps reads made before the stop from making
// it live again.
func (s *Service) drop(c *Campaign) {
	id := c.CampaignID
	s.stoppedMu.Lock()
	defer s.stoppedMu.Unlock()
	if s.stopped == nil {
		s.stopped = make(map[string]int64)
	}
	s.stopped[id] = c.Version
	for {
		old := s.live.Load()
		next := make([]*live, 0, len(*old))
		for _, l := range *old {
			if l.c.CampaignID != id {
				next = append(next, l)
			}
		}
		if s.live.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Run re-reads the campaigns every Tick until ctx ends: it moves them
// along (start, widen, end), judges the live ones against their plans and
// returns what stopped ones have left. Every node runs it; the moves are
// conditional updates, so two nodes making one move make it once.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("campaigns: step", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step is one round of Run: it reads the campaigns and moves them along;
// when it moved any, it reads them again so that this node gives by what
// it just decided.
func (s *Service) Step(ctx context.Context) error {
	moved, err := s.step(ctx)
	if moved {
		_, err2 := s.refresh(ctx)
		err = errors.Join(err, err2)
	}
	return err
}

func (s *Service) step(ctx context.Context) (moved bool, err error) {
	next, err := s.refresh(ctx)
	now := s.cfg.Clock.Now().UTC()
	for _, l := range next {
		m, e := s.move(ctx, l, now)
		moved = moved || m
		err = errors.Join(err, e)
	}
	return moved, err
}

// refresh reads the campaigns and their budgets into the live set, ending
// those whose end passed and returning what stopped ones have left.
func (s *Service) refresh(ctx context.Context) ([]*live, error) {
	now := s.cfg.Clock.Now().UTC()
	rows, err := active(ctx, s.cfg.Store.Reader(), now.Add(-sweepAfterStop))
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, c := range rows {
		ids[i] = c.BudgetAccount
	}
	accts, err := s.cfg.Store.LookupAccounts(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("campaign: budgets: %w", err)
	}
	balance := make(map[int64]int64, len(accts))
	for _, a := range accts {
		balance[a.ID] = a.Balance()
	}
	old := map[string]*live{}
	for _, l := range *s.live.Load() {
		old[l.c.CampaignID] = l
	}
	next := make([]*live, 0, len(rows))
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, c := range rows {
		switch c.Status {
		case Killed, Ended:
			if b := balance[c.BudgetAccount]; b > 0 && now.Sub(c.StoppedAt) >= s.cfg.StopGrace {
				keep(s.giveBack(ctx, c, now))
			}
			continue
		}
		if !now.Before(c.EndsAt) {
			_, err := s.end(ctx, c.CampaignID, now)
			keep(err)
			continue
		}
		if c.Status == Paused {
			continue // gives nothing until a change to it is approved
		}
		l := old[c.CampaignID]
		if l == nil || l.c.Version != c.Version || l.c.Status != c.Status {
			fresh := &live{c: c}
			if l != nil {
				fresh.given.buckets = l.given.snapshot()
				l.budget.mu.Lock()
				fresh.budget.buf = append([]sample(nil), l.budget.buf...)
				l.budget.mu.Unlock()
			}
			l = fresh
		}
		// A live entry kept is of the same version and status: its row
		// is unchanged where Offer reads it, and is not written under it.
		l.remaining.Store(balance[c.BudgetAccount])
		l.budget.add(now, balance[c.BudgetAccount])
		next = append(next, l)
	}
	s.stoppedMu.Lock()
	defer s.stoppedMu.Unlock()
	for _, c := range rows {
		v, ok := s.stopped[c.CampaignID]
		if ok && (c.Version > v || c.Status == Killed || c.Status == Paused || c.Status == Ended) {
			delete(s.stopped, c.CampaignID) // this read shows the stop, or a change after it
		}
	}
	if len(s.stopped) > 0 {
		next = slices.DeleteFunc(next, func(l *live) bool {
			v, ok := s.stopped[l.c.CampaignID]
			return ok && l.c.Version <= v
		})
	}
	s.live.Store(&next)
	return next, firstErr
}

func (st *stats) snapshot() [statsSeconds]bucket {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.buckets
}

// move starts a scheduled campaign at its start, judges a live one, and
// widens a canary whose period passed in line with plan.
func (s *Service) move(ctx context.Context, l *live, now time.Time) (bool, error) {
	c := l.c
	switch c.Status {
	case Scheduled:
		if now.Before(c.StartsAt) {
			return false, nil
		}
		return true, s.advance(ctx, c, Canary, now, "started: canary on a share of payers")
	case Canary, Live:
		breach, err := s.judge(ctx, l, now)
		if err != nil {
			return false, err
		}
		if breach != "" {
			_, err := s.Pause(ctx, Monitor, c.CampaignID, breach)
			if zhifu.ErrorCode(err) == zhifu.ContextInconsistent {
				return true, nil // another node paused it first
			}
			return true, err
		}
		if c.Status == Canary && now.Sub(c.LiveAt) >= s.cfg.CanaryPeriod {
			return true, s.advance(ctx, c, Live, now, "canary in line with plan: widened to every payer")
		}
	}
	return false, nil
}

// advance moves c from its status to status, if no one did first.
func (s *Service) advance(ctx context.Context, c *Campaign, status string, now time.Time, why string) error {
	from := c.Status
	op := &changeOp{svc: s, id: c.CampaignID, now: now, change: func(x *Campaign) error {
		if x.Status != from || x.Version != c.Version {
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Message: "moved already"}
		}
		x.Status = status
		switch status {
		case Canary:
			x.LiveAt = now
		case Live:
			x.WidenedAt = now
		}
		return nil
	}}
	op.after = func(ctx context.Context, q ledger.Querier, x *Campaign) error {
		return s.record(ctx, q, now, "campaign."+lower(status), x.CampaignID, why)
	}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return err
	}
	if op.refusal == nil {
		s.cfg.Logger.Info("campaign "+lower(status), "campaign", c.CampaignID, "why", why)
	}
	return nil
}

func lower(status string) string {
	switch status {
	case Canary:
		return "canary"
	case Live:
		return "widen"
	}
	return "move"
}

func (s *Service) record(ctx context.Context, q ledger.Querier, now time.Time, action, id, detail string) error {
	return approvalRecord(ctx, q, now, action, id, detail)
}

// end ends campaign id at its end.
func (s *Service) end(ctx context.Context, id string, now time.Time) (*Campaign, error) {
	op := &changeOp{svc: s, id: id, now: now, change: func(c *Campaign) error {
		switch c.Status {
		case Killed, Ended:
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Message: "stopped already"}
		}
		c.Status, c.StoppedAt = Ended, now
		if c.StatusReason == "" {
			c.StatusReason = "its end passed"
		}
		return nil
	}}
	op.after = func(ctx context.Context, q ledger.Querier, c *Campaign) error {
		if err := supersede(ctx, q, id, now); err != nil {
			return err
		}
		return s.record(ctx, q, now, "campaign.end", id, "ended at "+c.EndsAt.Format(time.RFC3339))
	}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, err
	}
	if op.c != nil {
		s.drop(op.c)
	}
	return op.c, nil
}

// giveBack returns what is left in stopped campaign c's budget to its
// funding account: the balance read in the transaction, so that nothing
// more nor less than what is there moves.
func (s *Service) giveBack(ctx context.Context, c *Campaign, now time.Time) error {
	var amount int64
	op := &changeOp{svc: s, id: c.CampaignID, now: now, change: func(*Campaign) error { return nil }}
	op.transfers = func(ctx context.Context, tx ledger.Tx, x *Campaign) ([]ledger.Transfer, error) {
		accts, err := tx.LockAccounts(ctx, []int64{x.BudgetAccount})
		if err != nil || len(accts) == 0 {
			return nil, err
		}
		if amount = accts[0].Balance(); amount <= 0 {
			return nil, nil
		}
		to := zhifu.OwnFundsAccountID
		if x.Funding == FundMerchant {
			if to, err = s.cfg.MerchantWallet(ctx, x.FundingID); err != nil {
				return nil, err
			}
		}
		x.Returned += zhifu.Amount(amount)
		return []ledger.Transfer{{ID: fmt.Sprintf("cret:%s:%d", x.CampaignID, x.Returned), DebitAccountID: x.BudgetAccount,
			CreditAccountID: to, Amount: amount, Ledger: s.cfg.LedgerID, Code: zhifu.TransferCampaign}}, nil
	}
	op.after = func(ctx context.Context, q ledger.Querier, x *Campaign) error {
		return s.record(ctx, q, now, "campaign.return", x.CampaignID,
			fmt.Sprintf("%s left in the budget returned to its funding account", zhifu.Amount(amount)))
	}
	return s.cfg.Batcher.Do(ctx, op)
}
