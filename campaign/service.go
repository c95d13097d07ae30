package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/approval"
	"zhifu/identity"
	"zhifu/ledger"
)

// KindLaunch is the approval kind that funds and starts a campaign as an
// operator created or last changed it.
const KindLaunch = "campaign.launch"

// Monitor is the operator id the monitor's pauses are recorded under.
const Monitor = "monitor"

// PageMax bounds one page of campaigns.
const PageMax = 100

// Config is what the service needs.
type Config struct {
	Store     ledger.Store
	Batcher   *ledger.Batcher
	Approvals *approval.Service
	Clock     zhifu.Clock
	Logger    *slog.Logger
	LedgerID  uint32
	Limits    Limits
	// MerchantWallet is the wallet account of a merchant, for campaigns a
	// merchant funds; nil refuses merchant funding.
	MerchantWallet func(ctx context.Context, merchantID string) (int64, error)

	CanaryShareBP int64         // share of payers a campaign reaches first (500 = 5%)
	CanaryPeriod  time.Duration // how long its canary runs before it may widen
	// Tolerance is how far past plan a figure may run: spend, discount
	// ratio or share of payments more than Tolerance × the plan is a breach.
	Tolerance float64
	Window    time.Duration // the monitor judges the last Window
	Tick      time.Duration // how often each node re-reads campaigns and judges them
	// StopGrace is how long after a campaign stops its budget waits before
	// what is left returns, so that every node has stopped giving from it.
	StopGrace time.Duration
}

// Defaults of Config.
const (
	DefaultCanaryShareBP = 500
	DefaultCanaryPeriod  = 10 * time.Minute
	DefaultTolerance     = 2.0
	DefaultWindow        = 5 * time.Second
	DefaultTick          = 500 * time.Millisecond
	DefaultStopGrace     = 5 * time.Second
	// sweepAfterStop bounds how long a stopped campaign's budget is watched
	// for money a refund put back.
	sweepAfterStop = 90 * 24 * time.Hour
)

// Service keeps campaigns and gives their discounts (Discounter).
type Service struct {
	cfg  Config
	live atomic.Pointer[[]*live] // the campaigns that may give discounts, by this node's last read
	all  stats                   // every payment this node offered, for the share of payments discounted

	// stopped holds the campaigns this node killed or paused, by their
	// version when stopped, until a read shows the stop: a refresh that read
	// a campaign's row before the change must not make it live again.
	// The live set is stored under stoppedMu.
	stoppedMu sync.Mutex
	stopped   map[string]int64
}

// New returns the service. Run starts its loop.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits.FundingKinds == nil {
		cfg.Limits = DefaultLimits()
	}
	if cfg.CanaryShareBP <= 0 {
		cfg.CanaryShareBP = DefaultCanaryShareBP
	}
	if cfg.CanaryPeriod <= 0 {
		cfg.CanaryPeriod = DefaultCanaryPeriod
	}
	if cfg.Tolerance <= 1 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	s := &Service{cfg: cfg}
	s.live.Store(&[]*live{})
	if cfg.Approvals != nil {
		cfg.Approvals.Register(KindLaunch, launchKind{s})
	}
	return s
}

// Limits are the platform limits campaigns are validated against.
func (s *Service) Limits() Limits { return s.cfg.Limits }

// Create saves a new campaign of spec by operator by, waiting for a second
// operator's approval (the proposal it returns).
func (s *Service) Create(ctx context.Context, by *identity.Operator, spec Spec) (*Campaign, *approval.Proposal, error) {
	if err := s.validate(ctx, &spec); err != nil {
		return nil, nil, err
	}
	now := s.cfg.Clock.Now().UTC()
	c := &Campaign{Spec: spec, CampaignID: zhifu.NewID("CP", now), Status: PendingApproval, Version: 1,
		CreatedBy: by.OperatorID, ChangedBy: by.OperatorID, CreatedAt: now, ChangedAt: now}
	op := &createOp{svc: s, c: c, now: now}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, nil, err
	}
	return c, &op.p, nil
}

func (s *Service) validate(ctx context.Context, spec *Spec) error {
	slices.Sort(spec.Kinds)
	spec.Kinds = slices.Compact(spec.Kinds)
	slices.Sort(spec.Merchants)
	spec.Merchants = slices.Compact(spec.Merchants)
	if err := s.cfg.Limits.Validate(spec); err != nil {
		return err
	}
	if spec.Funding == FundMerchant {
		if s.cfg.MerchantWallet == nil {
			return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "funding", Message: "merchant funding is not available"}
		}
		if _, err := s.cfg.MerchantWallet(ctx, spec.FundingID); err != nil {
			return &zhifu.Error{Code: zhifu.NotFound, Param: "funding.merchant_id", Message: "no such merchant"}
		}
	}
	return nil
}

type createOp struct {
	svc *Service
	c   *Campaign
	now time.Time
	p   approval.Proposal
}

func (o *createOp) Keys() []string { return []string{"campaign:" + o.c.CampaignID} }

func (o *createOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *createOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	if err := insert(ctx, tx, o.c); err != nil {
		return err
	}
	flags := ledger.DebitsMustNotExceedCredits
	if err := tx.InsertAccounts(ctx, []ledger.Account{{ID: o.c.BudgetAccount, Ledger: o.svc.cfg.LedgerID,
		Code: zhifu.AccountCampaignBudget, Flags: flags, Timestamp: o.now.UnixNano()}}); err != nil {
		return fmt.Errorf("campaign: budget account: %w", err)
	}
	if err := approval.Record(ctx, tx, approval.Entry{At: o.now, OperatorID: o.c.CreatedBy, Action: "campaign.create",
		Subject: o.c.CampaignID, Detail: o.c.describe(), Applied: true}); err != nil {
		return err
	}
	return o.svc.file(ctx, tx, o.c, o.now, &o.p)
}

// file files the proposal to launch c as it now is.
func (s *Service) file(ctx context.Context, q ledger.Querier, c *Campaign, now time.Time, p *approval.Proposal) error {
	payload, _ := json.Marshal(launchPayload{Version: c.Version})
	*p = approval.Proposal{Kind: KindLaunch, Subject: c.CampaignID, ProposedBy: c.ChangedBy,
		Summary: "launch " + c.describe(), Payload: string(payload)}
	return approval.File(ctx, q, p, now)
}

type launchPayload struct {
	Version int64 `json:"version"`
}

// describe is the campaign in one line, for the audit log and approvers.
func (c *Campaign) describe() string {
	off := fmt.Sprintf("%s%% off", zhifu.Amount(c.PercentBP))
	if c.Template == FixedOff {
		off = c.AmountOff.String() + " off"
	}
	return fmt.Sprintf("%s %q: %s %v, at most %s a payment and %s a payer a day, budget %s, plan %s an hour, %s to %s",
		c.CampaignID, c.Name, off, c.Kinds, c.MaxDiscount, c.UserDailyCap, c.Budget, c.PlanPerHour,
		c.StartsAt.Format(time.RFC3339), c.EndsAt.Format(time.RFC3339))
}

// Update changes campaign id to spec, by operator by. Only a campaign
// waiting for approval or paused can change; the change waits for a
// second operator's approval again (a paused campaign resumes, with a new
// canary, when it is approved).
func (s *Service) Update(ctx context.Context, by *identity.Operator, id string, spec Spec) (*Campaign, *approval.Proposal, error) {
	if err := s.validate(ctx, &spec); err != nil {
		return nil, nil, err
	}
	now := s.cfg.Clock.Now().UTC()
	op := &changeOp{svc: s, id: id, now: now, change: func(c *Campaign) error {
		if c.Status != PendingApproval && c.Status != Paused {
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "campaign_id",
				Message: fmt.Sprintf("campaign %s is %s; only a campaign waiting for approval or paused can change", id, c.Status)}
		}
		if spec.Budget < c.Funded {
			return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "budget",
				Message: fmt.Sprintf("budget cannot be less than the %s already funded", c.Funded)}
		}
		if spec.Funding != c.Funding || spec.FundingID != c.FundingID {
			return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "funding", Message: "funding cannot change"}
		}
		c.Spec, c.Status, c.StatusReason = spec, PendingApproval, ""
		c.Version++
		c.ChangedBy, c.ChangedAt = by.OperatorID, now
		return nil
	}}
	op.after = func(ctx context.Context, q ledger.Querier, c *Campaign) error {
		if err := approval.Record(ctx, q, approval.Entry{At: now, OperatorID: by.OperatorID, Action: "campaign.change",
			Subject: id, Detail: c.describe(), Applied: true}); err != nil {
			return err
		}
		return s.file(ctx, q, c, now, &op.p)
	}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, nil, err
	}
	if op.refusal != nil {
		return nil, nil, op.refusal
	}
	return op.c, &op.p, nil
}

// Kill stops campaign id for good, at once, by operator by, for reason.
// What is left of its budget returns to its funding account once every
// node has stopped giving from it.
func (s *Service) Kill(ctx context.Context, by *identity.Operator, id, reason string) (*Campaign, error) {
	if reason == "" {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "reason", Message: "say why the campaign is killed"}
	}
	c, err := s.stop(ctx, by.OperatorID, id, Killed, reason)
	if err == nil {
		s.drop(c)
	}
	return c, err
}

// Pause stops campaign id until a change to it is approved, by operator
// by (Monitor for the monitor), for reason.
func (s *Service) Pause(ctx context.Context, by, id, reason string) (*Campaign, error) {
	c, err := s.stop(ctx, by, id, Paused, reason)
	if err == nil {
		s.drop(c)
	}
	return c, err
}

func (s *Service) stop(ctx context.Context, by, id, status, reason string) (*Campaign, error) {
	if len([]rune(reason)) > reasonLenMax {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "reason",
			Message: fmt.Sprintf("reason must be at most %d characters", reasonLenMax)}
	}
	now := s.cfg.Clock.Now().UTC()
	op := &changeOp{svc: s, id: id, now: now, change: func(c *Campaign) error {
		switch {
		case c.Status == Killed || c.Status == Ended:
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "campaign_id",
				Message: fmt.Sprintf("campaign %s is %s already", id, c.Status)}
		case status == Paused && c.Status == Paused:
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "campaign_id",
				Message: fmt.Sprintf("campaign %s is paused already", id)}
		case status == Paused && c.Status == PendingApproval:
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "campaign_id",
				Message: fmt.Sprintf("campaign %s is not approved; nothing to pause", id)}
		}
		c.Status, c.StatusReason, c.StoppedAt = status, reason, now
		return nil
	}}
	op.after = func(ctx context.Context, q ledger.Querier, c *Campaign) error {
		if err := approval.Supersede(ctx, q, KindLaunch, id, by, "campaign "+status, now); err != nil {
			return err
		}
		action := "campaign.kill"
		if status == Paused {
			action = "campaign.pause"
		}
		return approval.Record(ctx, q, approval.Entry{At: now, OperatorID: by, Action: action, Subject: id,
			Detail: reason, Applied: true})
	}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, err
	}
	if op.refusal != nil {
		return nil, op.refusal
	}
	if status == Paused {
		s.cfg.Logger.Warn("campaign paused", "campaign", id, "by", by, "reason", reason)
	} else {
		s.cfg.Logger.Warn("campaign killed", "campaign", id, "by", by, "reason", reason)
	}
	return op.c, nil
}

// changeOp changes one campaign's row under its lock, optionally with
// transfers decided from it (a launch's funding, a budget's return).
type changeOp struct {
	svc    *Service
	id     string
	now    time.Time
	change func(c *Campaign) error // a *zhifu.Error refuses
	// transfers, when set, decides the money that moves with the change,
	// from the campaign as changed; tx lets it read the budget's balance.
	transfers func(ctx context.Context, tx ledger.Tx, c *Campaign) ([]ledger.Transfer, error)
	after     func(ctx context.Context, q ledger.Querier, c *Campaign) error
	keys      []string // more than the campaign's own

	old, c  *Campaign
	refusal error
	moved   []ledger.Transfer
	p       approval.Proposal
}

func (o *changeOp) Keys() []string { return append([]string{"campaign:" + o.id}, o.keys...) }

// Applied says whether the change was made (ledger.Applier).
func (o *changeOp) Applied() bool { return o.refusal == nil }

// Refusal says why not.
func (o *changeOp) Refusal() error { return o.refusal }

func (o *changeOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.old, o.c, o.refusal, o.moved = nil, nil, nil, nil
	old, err := load(ctx, tx, o.id, true)
	if err != nil {
		return nil, err
	}
	if old == nil {
		o.refusal = zhifu.Errorf(zhifu.NotFound, "no campaign %s", clip(o.id))
		return nil, nil
	}
	c := *old
	if err := o.change(&c); err != nil {
		if _, ok := err.(*zhifu.Error); ok {
			o.refusal = err
			return nil, nil
		}
		return nil, err
	}
	o.old, o.c = old, &c
	if o.transfers == nil {
		return nil, nil
	}
	o.moved, err = o.transfers(ctx, tx, &c)
	if _, ok := err.(*zhifu.Error); ok {
		o.refusal, o.moved = err, nil
		return nil, nil
	}
	return o.moved, err
}

func (o *changeOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.refusal != nil {
		return nil
	}
	for i, r := range results {
		if r != ledger.TransferOK {
			o.refusal = &zhifu.Error{Code: zhifu.BalanceNotEnough, Param: "campaign_id",
				Message: fmt.Sprintf("transfer %s of campaign %s: %s", o.moved[i].ID, o.id, r)}
			return nil
		}
	}
	if err := save(ctx, tx, o.old, o.c); err != nil {
		return err
	}
	if o.after != nil {
		return o.after(ctx, tx, o.c)
	}
	return nil
}

// Get returns campaign id.
func (s *Service) Get(ctx context.Context, id string) (*Campaign, error) {
	c, err := load(ctx, s.cfg.Store.Reader(), id, false)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no campaign %s", clip(id))
	}
	return c, nil
}

// List returns up to limit campaigns newest first, of one status ("" for
// all), after campaign startingAfter of an earlier page.
func (s *Service) List(ctx context.Context, status, startingAfter string, limit int) ([]*Campaign, bool, error) {
	if limit <= 0 || limit > PageMax {
		limit = PageMax
	}
	var before int64
	if startingAfter != "" {
		c, err := s.Get(ctx, startingAfter)
		if err != nil {
			return nil, false, err
		}
		before = c.Num
	}
	out, err := list(ctx, s.cfg.Store.Reader(), status, before, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// Budget is the balance of campaign c's budget account now.
func (s *Service) Budget(ctx context.Context, c *Campaign) (zhifu.Amount, error) {
	accts, err := s.cfg.Store.LookupAccounts(ctx, []int64{c.BudgetAccount})
	if err != nil || len(accts) == 0 {
		return 0, err
	}
	return zhifu.Amount(accts[0].Balance()), nil
}

// launchKind carries out approved launches (approval.Kind).
type launchKind struct{ s *Service }

// MayApprove refuses the operator who created or last changed the
// campaign: the two-person rule, whoever proposed.
func (k launchKind) MayApprove(ctx context.Context, p approval.Proposal, by *identity.Operator) error {
	c, err := k.s.Get(ctx, p.Subject)
	if err != nil {
		return err
	}
	if by.OperatorID == c.CreatedBy || by.OperatorID == c.ChangedBy {
		return zhifu.Errorf(zhifu.Forbidden, "operator %s created or last changed campaign %s and cannot approve it; a second operator must",
			by.OperatorID, c.CampaignID)
	}
	return nil
}

// Carry funds the campaign's budget up to what it says, from its funding
// account, and schedules it, in the approval's transaction.
func (k launchKind) Carry(p approval.Proposal) (ledger.Op, error) {
	var pl launchPayload
	if err := json.Unmarshal([]byte(p.Payload), &pl); err != nil {
		return nil, fmt.Errorf("campaign: launch payload of %s: %w", p.ID, err)
	}
	s := k.s
	now := s.cfg.Clock.Now().UTC()
	op := &changeOp{svc: s, id: p.Subject, now: now}
	op.change = func(c *Campaign) error {
		if c.Version != pl.Version || c.Status != PendingApproval {
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "approval_id",
				Message: fmt.Sprintf("campaign %s changed since this approval was asked for", c.CampaignID)}
		}
		if !c.EndsAt.After(now) {
			return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "approval_id",
				Message: fmt.Sprintf("campaign %s ended at %s, before its approval", c.CampaignID, c.EndsAt.Format(time.RFC3339))}
		}
		c.Status, c.StatusReason, c.LiveAt, c.WidenedAt, c.StoppedAt = Scheduled, "", time.Time{}, time.Time{}, time.Time{}
		return nil
	}
	// One launch a batch spends own funds, so that two launches cannot both
	// count on the same money.
	op.keys = []string{"campaign-funding"}
	op.transfers = func(ctx context.Context, tx ledger.Tx, c *Campaign) ([]ledger.Transfer, error) {
		need := c.Budget - c.Funded
		if need <= 0 {
			return nil, nil
		}
		from := zhifu.OwnFundsAccountID
		if c.Funding == FundMerchant {
			w, err := s.cfg.MerchantWallet(ctx, c.FundingID)
			if err != nil {
				return nil, err
			}
			from = w
		}
		// A budget is real money: the platform's own funds must hold it
		// (a merchant's wallet cannot go below zero by itself).
		if from == zhifu.OwnFundsAccountID {
			accts, err := tx.LockAccounts(ctx, []int64{from})
			if err != nil {
				return nil, err
			}
			if len(accts) == 0 || zhifu.Amount(accts[0].Balance()) < need {
				have := zhifu.Amount(0)
				if len(accts) > 0 {
					have = zhifu.Amount(accts[0].Balance())
				}
				return nil, &zhifu.Error{Code: zhifu.BalanceNotEnough, Param: "budget",
					Message: fmt.Sprintf("own funds of %s do not cover the budget's %s; record the platform's capital at a bank first", have, need)}
			}
		}
		c.Funded = c.Budget
		return []ledger.Transfer{{ID: fmt.Sprintf("cfund:%s:%d", c.CampaignID, c.Version), DebitAccountID: from,
			CreditAccountID: c.BudgetAccount, Amount: int64(need), Ledger: s.cfg.LedgerID, Code: zhifu.TransferCampaign}}, nil
	}
	op.after = func(ctx context.Context, q ledger.Querier, c *Campaign) error {
		return approval.Record(ctx, q, approval.Entry{At: now, OperatorID: Monitor, Action: "campaign.schedule",
			Subject: c.CampaignID, Detail: fmt.Sprintf("approved in %s; budget %s funded", p.ID, c.Funded), Applied: true})
	}
	return op, nil
}
