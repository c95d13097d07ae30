package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/approval"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
)

const cny = 156

var (
	alice = &identity.Operator{OperatorID: "OP00000001"}
	bob   = &identity.Operator{OperatorID: "OP00000002"}
	carol = &identity.Operator{OperatorID: "OP00000003"}
	start = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
)

// payee is the account every test payment goes to.
const payee int64 = 900

type fixture struct {
	st    ledger.Store
	b     *ledger.Batcher
	clock *testkit.Clock
	ap    *approval.Service
	svc   *campaign.Service
}

func newFixture(t *testing.T, open func() ledger.Store, payers int, each int64) *fixture {
	st := open()
	clock := testkit.NewClock(start.Add(-time.Minute))
	b := ledger.NewBatcher(st, clock.Now)
	t.Cleanup(b.Close)
	accts := []ledger.Account{{ID: zhifu.OwnFundsAccountID, Ledger: cny, Code: zhifu.AccountOwnFunds},
		{ID: payee, Ledger: cny, Code: zhifu.AccountWallet}, {ID: 901, Ledger: cny, Code: zhifu.AccountBankSettlement}}
	// The platform's capital, which budgets are funded from.
	funding := []ledger.Transfer{{ID: "capital", DebitAccountID: 901, CreditAccountID: zhifu.OwnFundsAccountID,
		Amount: 10_000_000, Ledger: cny, Code: zhifu.TransferCapital}}
	for i := 1; i <= payers; i++ {
		id := zhifu.WalletAccountID(int64(i))
		accts = append(accts, ledger.Account{ID: id, Ledger: cny, Code: zhifu.AccountWallet,
			Flags: ledger.DebitsMustNotExceedCredits})
		funding = append(funding, ledger.Transfer{ID: fmt.Sprint("fund", i), DebitAccountID: 901, CreditAccountID: id,
			Amount: each, Ledger: cny, Code: zhifu.TransferDeposit})
	}
	if _, err := ledger.CreateAccounts(context.Background(), st, accts); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Commit(context.Background(), st, [][]ledger.Transfer{funding}, 1); err != nil {
		t.Fatal(err)
	}
	ap := approval.New(approval.Config{Store: st, Batcher: b, Clock: clock})
	svc := campaign.New(campaign.Config{Store: st, Batcher: b, Approvals: ap, Clock: clock, LedgerID: cny,
		CanaryPeriod: time.Minute, Tick: time.Hour})
	return &fixture{st: st, b: b, clock: clock, ap: ap, svc: svc}
}

func spec() campaign.Spec {
	return campaign.Spec{Name: "Double 11", Template: campaign.PercentOff, PercentBP: 1000,
		Kinds: []string{zhifu.KindTrade, zhifu.KindBillPayment}, MaxDiscount: 500, UserDailyCap: 1000,
		Budget: 100_000, StartsAt: start, EndsAt: start.Add(24 * time.Hour), Funding: campaign.FundPlatform,
		PlanPerHour: 50_000, Label: "双11立减"}
}

// payOp pays like the owner of a payment does: the discount linked before
// the payer's part, and Settle told the outcome.
type payOp struct {
	svc   *campaign.Service
	p     campaign.Payment
	payer int64
	plain bool // pay without asking for a discount

	g      campaign.Grant
	result ledger.TransferResult
	short  bool
}

func (o *payOp) Keys() []string { return nil }

func (o *payOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.g = campaign.Grant{}
	if !o.plain {
		var err error
		if o.g, err = o.svc.Offer(ctx, tx, o.p); err != nil {
			return nil, err
		}
	}
	pay := ledger.Transfer{ID: "pay:" + o.p.Ref, DebitAccountID: zhifu.WalletAccountID(o.payer), CreditAccountID: payee,
		Amount: int64(o.p.Amount - o.g.Discount), Ledger: cny, Code: zhifu.TransferPayment}
	if o.g.Discount == 0 {
		return []ledger.Transfer{pay}, nil
	}
	return []ledger.Transfer{campaign.DiscountTransfer(o.g, o.p.Ref, payee, cny), pay}, nil
}

func (o *payOp) Finish(ctx context.Context, tx ledger.Tx, r []ledger.TransferResult) error {
	o.result, o.short = r[len(r)-1], false
	if o.g.Discount == 0 {
		return nil
	}
	ok := r[0] == ledger.TransferOK && r[1] == ledger.TransferOK
	o.short = r[0] == ledger.TransferExceedsCredits
	if !ok {
		o.result = r[0]
	}
	return o.svc.Settle(ctx, tx, o.p, o.g, ok)
}

// pay pays amount from payer and returns the discount it got.
func (f *fixture) pay(t *testing.T, ref string, payer int64, amount zhifu.Amount) zhifu.Amount {
	t.Helper()
	p := campaign.Payment{Kind: zhifu.KindTrade, Ref: ref, PayerID: zhifu.UserIDOf(payer), PayeeID: "M1",
		Amount: amount, Now: f.clock.Now()}
	op := &payOp{svc: f.svc, p: p, payer: payer}
	if err := f.b.Do(context.Background(), op); err != nil {
		t.Fatal(err)
	}
	if op.short {
		op = &payOp{svc: f.svc, p: p, payer: payer, plain: true}
		if err := f.b.Do(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
	if op.result != ledger.TransferOK {
		t.Fatalf("payment %s: %s", ref, op.result)
	}
	return op.g.Discount
}

func (f *fixture) balance(t *testing.T, id int64) int64 {
	t.Helper()
	a, err := f.st.LookupAccounts(context.Background(), []int64{id})
	if err != nil || len(a) != 1 {
		t.Fatal(a, err)
	}
	return a[0].Balance()
}

func (f *fixture) step(t *testing.T) {
	t.Helper()
	if err := f.svc.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// launch creates sp by alice, approves it by bob and starts it, widened
// past its canary unless canary is set.
func (f *fixture) launch(t *testing.T, sp campaign.Spec, canary bool) *campaign.Campaign {
	t.Helper()
	ctx := context.Background()
	c, p, err := f.svc.Create(ctx, alice, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ap.Approve(ctx, p.ID, bob); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(sp.StartsAt)
	f.step(t) // starts the canary
	if !canary {
		f.clock.Advance(time.Minute)
		f.step(t) // widens it
	}
	c, err = f.svc.Get(ctx, c.CampaignID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, err error, code, param string) {
	t.Helper()
	var e *zhifu.Error
	if !errors.As(err, &e) || e.Code != code || (param != "" && e.Param != param) {
		t.Fatalf("got %v, want %s on %s", err, code, param)
	}
}

// TestLimits: every value out of the platform's bounds is refused, the
// error naming the field and the limit; the 2025 incident's template (20%
// off every payment kind) is among them.
func TestLimits(t *testing.T) {
	l := campaign.DefaultLimits()
	l.FundingKinds[campaign.FundPlatform] = []string{zhifu.KindTrade, zhifu.KindBillPayment}
	for name, c := range map[string]struct {
		change      func(*campaign.Spec)
		code, param string
	}{
		"incident":         {func(s *campaign.Spec) { s.PercentBP = 2000; s.Kinds = zhifu.PaymentKinds() }, zhifu.LimitExceeded, "percent"},
		"percent":          {func(s *campaign.Spec) { s.PercentBP = 1001 }, zhifu.LimitExceeded, "percent"},
		"max discount":     {func(s *campaign.Spec) { s.MaxDiscount = 20_01 }, zhifu.LimitExceeded, "max_discount"},
		"fixed off":        {func(s *campaign.Spec) { s.Template, s.PercentBP, s.AmountOff = campaign.FixedOff, 0, 20_01 }, zhifu.LimitExceeded, "amount_off"},
		"user cap":         {func(s *campaign.Spec) { s.UserDailyCap = 100_01 }, zhifu.LimitExceeded, "user_daily_cap"},
		"budget":           {func(s *campaign.Spec) { s.Budget = 1_000_000_01 }, zhifu.LimitExceeded, "budget"},
		"duration":         {func(s *campaign.Spec) { s.EndsAt = s.StartsAt.Add(32 * 24 * time.Hour) }, zhifu.LimitExceeded, "ends_at"},
		"kind for funding": {func(s *campaign.Spec) { s.Kinds = []string{zhifu.KindTransfer} }, zhifu.LimitExceeded, "kinds"},
		"no cap":           {func(s *campaign.Spec) { s.UserDailyCap = 0 }, zhifu.InvalidRequest, "user_daily_cap"},
		"no plan":          {func(s *campaign.Spec) { s.PlanPerHour = 0 }, zhifu.InvalidRequest, "plan.spend_per_hour"},
		"unknown kind":     {func(s *campaign.Spec) { s.Kinds = []string{"lottery"} }, zhifu.InvalidRequest, "kinds"},
		"backwards":        {func(s *campaign.Spec) { s.EndsAt = s.StartsAt }, zhifu.InvalidRequest, "ends_at"},
		"template":         {func(s *campaign.Spec) { s.Template = "half_off" }, zhifu.InvalidRequest, "template"},
		"merchant funding": {func(s *campaign.Spec) { s.Funding, s.FundingID = campaign.FundMerchant, "M1" }, zhifu.LimitExceeded, "kinds"},
	} {
		s := spec()
		c.change(&s)
		err := l.Validate(&s)
		wantCode(t, err, c.code, c.param)
		if c.code == zhifu.LimitExceeded && !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s: %v does not name the limit", name, err)
		}
	}
	s := spec()
	if err := l.Validate(&s); err != nil {
		t.Fatal(err)
	}
}

// TestTwoPersonRule: neither the creator nor the last changer may approve,
// through the generic approval either; a third operator may.
func TestTwoPersonRule(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open, 0, 0)
		ctx := context.Background()
		c, p, err := f.svc.Create(ctx, alice, spec())
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ap.Approve(ctx, p.ID, alice)
		wantCode(t, err, zhifu.Forbidden, "")
		// Bob changes it: now neither Alice (creator) nor Bob may approve.
		sp := spec()
		sp.Budget = 50_000
		_, p2, err := f.svc.Update(ctx, bob, c.CampaignID, sp)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ap.Approve(ctx, p.ID, carol)
		wantCode(t, err, zhifu.ContextInconsistent, "") // the first proposal was superseded
		for _, who := range []*identity.Operator{alice, bob} {
			_, err = f.ap.Approve(ctx, p2.ID, who)
			wantCode(t, err, zhifu.Forbidden, "")
		}
		if f.balance(t, c.BudgetAccount) != 0 {
			t.Fatal("funded before approval")
		}
		if _, err := f.ap.Approve(ctx, p2.ID, carol); err != nil {
			t.Fatal(err)
		}
		if got := f.balance(t, c.BudgetAccount); got != 50_000 {
			t.Fatalf("budget %d after approval, want 50000", got)
		}
		c, _ = f.svc.Get(ctx, c.CampaignID)
		if c.Status != campaign.Scheduled {
			t.Fatalf("status %s", c.Status)
		}
		log, _, err := approval.AuditLog(ctx, f.st.Reader(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range log {
			actions = append(actions, e.Action)
		}
		for _, want := range []string{"campaign.create", "campaign.change", "approval.approve", "campaign.schedule"} {
			if !strings.Contains(strings.Join(actions, " "), want) {
				t.Errorf("audit log %v lacks %s", actions, want)
			}
		}
	})
}

// TestBudgetBurst: 500 concurrent payments against a budget of 37 payments'
// discounts, with the node re-reading the campaign throughout: the
// discounts never add up to a fen more than the budget, use all but less
// than one discount of it, and every payment is made (those past the
// budget at the full price) with the payee receiving every full price.
func TestBudgetBurst(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		const payers, amount = 500, 10_000 // ¥100 each: 10% off is ¥10, under the ¥5 cap: ¥5
		f := newFixture(t, open, payers, 100_000)
		sp := spec()
		sp.Budget, sp.PlanPerHour = 37*500+123, 10_000
		c := f.launch(t, sp, false)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var given zhifu.Amount
		// The node's loop re-reads the campaign while the payments run.
		done := make(chan struct{})
		stepped := make(chan struct{})
		go func() {
			defer close(stepped)
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := f.svc.Step(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		for i := 1; i <= payers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := f.pay(t, fmt.Sprint("T", i), int64(i), amount)
				mu.Lock()
				given += d
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(done)
		<-stepped
		if left := f.balance(t, c.BudgetAccount); left < 0 || given != sp.Budget-zhifu.Amount(left) {
			t.Fatalf("gave %s, budget left %d of %s", given, left, sp.Budget)
		}
		// Not one fen beyond the budget; and spent but for less than one
		// payment's discount (a payment the ledger refused a discount the
		// node's estimate promised is made at the full price).
		if given > sp.Budget || sp.Budget-given >= sp.MaxDiscount {
			t.Fatalf("gave %s of a budget of %s", given, sp.Budget)
		}
		if got := f.balance(t, payee); got != payers*amount {
			t.Fatalf("payee received %d, want every payment's full price %d", got, payers*amount)
		}
		audit(t, f.st)
	})
}

// TestUserDailyCap: one payer's concurrent payments never get more than
// the daily cap between them; the next day the cap is fresh.
func TestUserDailyCap(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open, 1, 10_000_000)
		sp := spec()
		sp.UserDailyCap = 1_234 // ¥12.34: two ¥5 discounts and ¥2.34
		f.launch(t, sp, false)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var given zhifu.Amount
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := f.pay(t, fmt.Sprint("U", i), 1, 10_000)
				mu.Lock()
				given += d
				mu.Unlock()
			}()
		}
		wg.Wait()
		if given != sp.UserDailyCap {
			t.Fatalf("one payer got %s in a day, cap %s", given, sp.UserDailyCap)
		}
		f.clock.Advance(16 * time.Hour) // past midnight in China, before the campaign's end
		if d := f.pay(t, "U-next-day", 1, 10_000); d != 500 {
			t.Fatalf("next day's first discount %s, want 5.00", d)
		}
	})
}

// TestKill: an operator's kill stops discounts at once, says why, and the
// budget left returns to own funds once the grace has passed; discounts
// given are kept.
func TestKill(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open, 2, 100_000)
		c := f.launch(t, spec(), false)
		if d := f.pay(t, "K1", 1, 10_000); d != 500 {
			t.Fatalf("discount %s before the kill", d)
		}
		ctx := context.Background()
		k, err := f.svc.Kill(ctx, carol, c.CampaignID, "wrong template")
		if err != nil {
			t.Fatal(err)
		}
		if k.Status != campaign.Killed || k.StatusReason != "wrong template" {
			t.Fatalf("%s %q", k.Status, k.StatusReason)
		}
		if d := f.pay(t, "K2", 2, 10_000); d != 0 {
			t.Fatalf("discount %s after the kill", d)
		}
		_, err = f.svc.Kill(ctx, carol, c.CampaignID, "again")
		wantCode(t, err, zhifu.ContextInconsistent, "")
		own := f.balance(t, zhifu.OwnFundsAccountID)
		f.clock.Advance(campaign.DefaultStopGrace)
		f.step(t)
		if left := f.balance(t, c.BudgetAccount); left != 0 {
			t.Fatalf("budget %d left after the kill", left)
		}
		if got := f.balance(t, zhifu.OwnFundsAccountID) - own; got != int64(spec().Budget)-500 {
			t.Fatalf("own funds got back %d, want %d", got, int64(spec().Budget)-500)
		}
		audit(t, f.st)
	})
}

// TestKillWhileReading: a kill stops the node's discounts even when the
// node's loop read the campaign just before the kill and stores that read
// after it.
func TestKillWhileReading(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		for round := range 8 {
			f := newFixture(t, open, 1, 100_000)
			c := f.launch(t, spec(), false)
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						f.svc.Step(ctx)
					}
				}()
			}
			time.Sleep(5 * time.Millisecond)
			_, err := f.svc.Kill(context.Background(), carol, c.CampaignID, "wrong template")
			stop()
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if d := f.pay(t, fmt.Sprint("W", round), 1, 10_000); d != 0 {
				t.Fatalf("round %d: discount %s after the kill", round, d)
			}
		}
	})
}

// TestMonitorPauses: a campaign far off its plan is paused by the monitor
// by itself, with the figures that broke it as the reason.
func TestMonitorPauses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open, 40, 100_000)
		sp := spec()
		sp.PlanPerHour = 100 // ¥1 an hour; it will give ¥5 a payment
		c := f.launch(t, sp, false)
		for i := 1; i <= 40; i++ {
			f.pay(t, fmt.Sprint("M", i), int64(i), 10_000)
		}
		f.step(t)
		c, _ = f.svc.Get(context.Background(), c.CampaignID)
		if c.Status != campaign.Paused || !strings.Contains(c.StatusReason, "spend") {
			t.Fatalf("status %s %q, want PAUSED for spend", c.Status, c.StatusReason)
		}
		if d := f.pay(t, "M41", 1, 10_000); d != 0 {
			t.Fatalf("discount %s while paused", d)
		}
	})
}

// TestCanaryShare: during its canary a campaign reaches its share of
// payers, within statistical bounds, and always the same payers.
func TestCanaryShare(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		const n = 2000
		f := newFixture(t, open, 0, 0)
		sp := spec()
		f.launch(t, sp, true)
		reached := 0
		for i := 1; i <= n; i++ {
			p := campaign.Payment{Kind: zhifu.KindTrade, Ref: fmt.Sprint("C", i), PayerID: zhifu.UserIDOf(int64(i)),
				PayeeID: "M1", Amount: 10_000, Now: f.clock.Now()}
			var g campaign.Grant
			err := f.st.Update(context.Background(), func(tx ledger.Tx) error {
				var err error
				g, err = f.svc.Offer(context.Background(), tx, p)
				if err != nil {
					return err
				}
				return errors.New("roll back")
			})
			if err == nil || err.Error() != "roll back" {
				t.Fatal(err)
			}
			if g.Discount > 0 {
				reached++
			}
		}
		// 5% of 2000 is 100; four standard deviations is ±39.
		share := float64(campaign.DefaultCanaryShareBP) / 10000
		sd := math.Sqrt(n * share * (1 - share))
		if math.Abs(float64(reached)-n*share) > 4*sd {
			t.Fatalf("canary reached %d of %d payers, want about %.0f", reached, n, n*share)
		}
	})
}

// audit checks the ledger's books: every account's balance is the sum of
// its transfers, and debits equal credits.
func audit(t *testing.T, st ledger.Store) {
	t.Helper()
	snap, err := st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, a := range snap.Accounts {
		s := snap.Sums[a.ID]
		if s.DebitsPosted != a.DebitsPosted || s.CreditsPosted != a.CreditsPosted {
			t.Fatalf("account %d: balances %+v, transfers %+v", a.ID, a, s)
		}
		if a.Flags&ledger.DebitsMustNotExceedCredits != 0 && a.Balance() < 0 {
			t.Fatalf("account %d below zero: %d", a.ID, a.Balance())
		}
		total += a.Balance()
	}
	if total != 0 {
		t.Fatalf("ledger does not balance: %d", total)
	}
}

// TestFundingNeedsOwnFunds: a budget the platform's own funds do not hold
// cannot be approved; the approval stays pending and nothing moves.
func TestFundingNeedsOwnFunds(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open, 0, 0)
		ctx := context.Background()
		sp := spec()
		sp.Budget, sp.PlanPerHour = 100_000_01, 100_00 // a fen more than the capital
		c, p, err := f.svc.Create(ctx, alice, sp)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ap.Approve(ctx, p.ID, bob)
		wantCode(t, err, zhifu.BalanceNotEnough, "budget")
		if got, _ := f.ap.Get(ctx, p.ID); got.State != approval.Pending {
			t.Fatalf("approval %s after the refusal", got.State)
		}
		if f.balance(t, c.BudgetAccount) != 0 || f.balance(t, zhifu.OwnFundsAccountID) != 10_000_000 {
			t.Fatal("money moved on a refused approval")
		}
	})
}

// TestPausedEnds: a paused campaign still ends at its end, and what is
// left of its budget returns.
func TestPausedEnds(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open, 1, 100_000)
		c := f.launch(t, spec(), false)
		ctx := context.Background()
		if _, err := f.svc.Pause(ctx, carol.OperatorID, c.CampaignID, "looking into it"); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(c.EndsAt)
		f.step(t) // ends it
		f.clock.Advance(campaign.DefaultStopGrace)
		f.step(t) // returns the budget
		got, _ := f.svc.Get(ctx, c.CampaignID)
		if got.Status != campaign.Ended || f.balance(t, c.BudgetAccount) != 0 || got.Returned != spec().Budget {
			t.Fatalf("paused campaign past its end: %s, budget %d, returned %s", got.Status, f.balance(t, c.BudgetAccount), got.Returned)
		}
	})
}
