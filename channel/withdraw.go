package channel

import (
	"context"
	"fmt"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/ledger"
)

// PayoutParams are a user's request to pay money out to a card: a
// withdrawal to a debit card, or a card repayment to a credit card.
type PayoutParams struct {
	Amount zhifu.Amount
	CardID string
	// IdempotencyKey, when set, names the payout: the same key again
	// finds it instead of making another.
	IdempotencyKey string
}

// WithdrawParams are a user's withdrawal request.
type WithdrawParams = PayoutParams

// payoutKind is what tells the payout kinds apart: their ids' prefix, the
// code of their ledger transfers, and what the user calls them.
type payoutKind struct {
	prefix string
	code   uint16
	noun   string
}

func payoutKindOf(k Kind) payoutKind {
	if k == KindCardRepayment {
		return payoutKind{prefix: "CR", code: zhifu.TransferCardRepayment, noun: "card repayment"}
	}
	return payoutKind{prefix: "WD", code: zhifu.TransferWithdraw, noun: "withdrawal"}
}

// Withdraw accepts a withdrawal at once: the amount moves from the
// wallet's available balance to its frozen account ("wd:<id>:hold") in
// the same transaction that queues the withdrawal, in the batcher's
// background lane. The payout worker of the card's bank pays it out later
// at the bank's pace; a failure returns the money.
//
// A burst of withdrawals waits here, at most Config.AcceptInFlightMax in
// the batcher at once, so it never lengthens the batches that carry
// payments; a bank's queue holds at most WithdrawalQueueMax, beyond which
// the answer is SYSTEM_BUSY with a Retry-After.
func (s *Service) Withdraw(ctx context.Context, u *identity.User, p WithdrawParams) (t *BankTxn, created bool, err error) {
	return s.payout(ctx, u, KindWithdrawal, p)
}

// RepayCard accepts the repayment of a credit card's bill (信用卡还款):
// the card is one of the user's bound cards, and the repayment is a payout
// to it through its issuing bank's channel, exactly as a withdrawal is
// (queued, paced, one outcome, the money back on failure), whose ledger
// transfers are coded zhifu.TransferCardRepayment.
//
// The Discounter may discount it: the discount moves from the campaign's
// budget into the frozen money with the payer's part, linked, so that the
// payer pays Amount − Discount and the bank is paid Amount. If the budget
// ran short by the commit, the repayment is accepted again without a
// discount. A failed payout returns the payer's part to the wallet and the
// discount to the budget.
func (s *Service) RepayCard(ctx context.Context, u *identity.User, p PayoutParams) (t *BankTxn, created bool, err error) {
	return s.payout(ctx, u, KindCardRepayment, p)
}

// payout accepts a payout of the kind (Withdraw, RepayCard).
func (s *Service) payout(ctx context.Context, u *identity.User, kind Kind, p PayoutParams) (t *BankTxn, created bool, err error) {
	pk := payoutKindOf(kind)
	if err := checkTxnAmount(p.Amount); err != nil {
		return nil, false, err
	}
	card, err := s.Card(ctx, u, p.CardID)
	if err != nil {
		return nil, false, err
	}
	b, err := s.bankOf(card.Bank, "card_id")
	if err != nil {
		return nil, false, err
	}
	id := s.newID(pk.prefix)
	if p.IdempotencyKey != "" {
		id = zhifu.KeyedID(pk.prefix, u.UserID, "key:"+p.IdempotencyKey)
		existing, err := loadTxn(ctx, s.cfg.Store.Reader(), id, false)
		if err != nil {
			return nil, false, err
		}
		if existing != nil {
			return samePayout(existing, kind, p)
		}
	}
	if b.queued.Load() >= int64(s.cfg.WithdrawalQueueMax) {
		return nil, false, unavailable(b, zhifu.SystemBusy, fmt.Sprintf(
			"too many payouts are waiting for %s; try again later", b.name), retryAfterBusy)
	}
	now := s.now()
	txn := &BankTxn{TxnID: id, Kind: kind, Method: MethodPayout, UserID: u.UserID, Bank: b.name,
		CardID: card.CardID, CardToken: card.Token, Amount: p.Amount, Status: StatusQueued, Stage: StageQueued,
		CreatedAt: now, UpdatedAt: now}
	op := &acceptOp{svc: s, t: txn, keyed: p.IdempotencyKey != "", discount: kind == KindCardRepayment}
	if err := s.accept(ctx, op); err != nil {
		return nil, false, fmt.Errorf("%s: %w", pk.noun, err)
	}
	if op.budgetShort {
		// The campaign's budget ran out between its offer and the commit:
		// the whole chain failed, and the payout goes again at full price.
		op = &acceptOp{svc: s, t: txn, keyed: op.keyed}
		if err := s.accept(ctx, op); err != nil {
			return nil, false, fmt.Errorf("%s: %w", pk.noun, err)
		}
	}
	switch {
	case op.refusal != nil:
		return nil, false, op.refusal
	case op.existing != nil:
		return samePayout(op.existing, kind, p)
	}
	b.queued.Add(1)
	return txn, true, nil
}

// accept runs op in the background lane, at most AcceptInFlightMax at once.
func (s *Service) accept(ctx context.Context, op *acceptOp) error {
	select {
	case s.acceptSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.acceptSlots }()
	return s.cfg.Batcher.DoBulk(ctx, op)
}

func samePayout(t *BankTxn, kind Kind, p PayoutParams) (*BankTxn, bool, error) {
	if t.Kind != kind || t.Amount != p.Amount || t.CardID != p.CardID {
		return nil, false, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "Idempotency-Key",
			Message: "this Idempotency-Key was already used for a different " + payoutKindOf(kind).noun}
	}
	return t, false, nil
}

// acceptOp freezes the amount and queues the payout, together.
type acceptOp struct {
	svc *Service
	t   *BankTxn
	// keyed: the id comes from the caller's key and may exist already; a
	// random one is checked by the insert alone.
	keyed bool
	// discount: ask the Discounter for a discount (a card repayment's
	// first attempt).
	discount bool

	existing *BankTxn
	refusal  *zhifu.Error
	grant    campaign.Grant
	// budgetShort: the ledger refused the discount from the budget, so
	// nothing moved; the caller runs the payout again without one.
	budgetShort bool
}

func (o *acceptOp) Keys() []string { return []string{"banktxn:" + o.t.TxnID} }

func (o *acceptOp) payment() campaign.Payment {
	return campaign.Payment{Kind: zhifu.KindCardRepayment, Ref: o.t.TxnID, PayerID: o.t.UserID, PayeeID: o.t.Bank,
		Amount: o.t.Amount, Now: o.t.CreatedAt}
}

func (o *acceptOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.existing, o.refusal, o.grant, o.budgetShort = nil, nil, campaign.Grant{}, false
	o.t.CampaignID, o.t.CampaignLabel, o.t.Discount, o.t.BudgetAccount = "", "", 0, 0
	if o.keyed {
		e, err := loadTxn(ctx, tx, o.t.TxnID, true)
		if err != nil || e != nil {
			o.existing = e
			return nil, err
		}
	}
	wallet, frozen, err := accountsOf(o.t.UserID)
	if err != nil {
		return nil, err
	}
	var trs []ledger.Transfer
	if o.discount {
		g, err := campaign.Ask(ctx, o.svc.cfg.Discounter, tx, o.payment())
		if err != nil {
			return nil, err
		}
		if g.Discount > 0 {
			o.grant = g
			o.t.CampaignID, o.t.CampaignLabel, o.t.Discount, o.t.BudgetAccount = g.CampaignID, g.Label, g.Discount, g.Budget
			trs = append(trs, campaign.DiscountTransfer(g, o.t.TxnID, frozen, o.svc.ledgerID))
		}
	}
	code := payoutKindOf(o.t.Kind).code
	return append(trs, o.svc.transfer(wdHoldID(o.t.TxnID), wallet, frozen, o.t.PayerAmount(), code)), nil
}

func (o *acceptOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.existing != nil {
		return nil
	}
	if o.grant.Discount > 0 {
		short, err := campaign.Told(ctx, o.svc.cfg.Discounter, tx, o.payment(), o.grant, results[0])
		if err != nil || short {
			o.budgetShort = short
			return err
		}
	}
	switch r := results[len(results)-1]; r {
	case ledger.TransferOK:
	case ledger.TransferExceedsCredits:
		o.refusal = &zhifu.Error{Code: zhifu.BalanceNotEnough, Param: "amount", Message: "available balance is not enough"}
		return nil
	default:
		return fmt.Errorf("channel: hold for %s: %s", o.t.TxnID, r)
	}
	return insertTxn(ctx, tx, o.t)
}
