package channel

import (
	"context"
	"fmt"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// WithdrawParams are a user's withdrawal request.
type WithdrawParams struct {
	Amount zhifu.Amount
	CardID string
	// IdempotencyKey, when set, names the withdrawal: the same key again
	// finds it instead of making another.
	IdempotencyKey string
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
	id := s.newID("WD")
	if p.IdempotencyKey != "" {
		id = zhifu.KeyedID("WD", u.UserID, "key:"+p.IdempotencyKey)
		existing, err := loadTxn(ctx, s.cfg.Store.Reader(), id, false)
		if err != nil {
			return nil, false, err
		}
		if existing != nil {
			return sameWithdrawal(existing, p)
		}
	}
	if b.queued.Load() >= int64(s.cfg.WithdrawalQueueMax) {
		return nil, false, unavailable(b, zhifu.SystemBusy, fmt.Sprintf(
			"too many withdrawals are waiting for %s; try again later", b.name), retryAfterBusy)
	}
	now := s.now()
	txn := &BankTxn{TxnID: id, Kind: KindWithdrawal, Method: MethodPayout, UserID: u.UserID, Bank: b.name,
		CardID: card.CardID, CardToken: card.Token, Amount: p.Amount, Status: StatusQueued, Stage: StageQueued,
		CreatedAt: now, UpdatedAt: now}
	select {
	case s.acceptSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	op := &acceptOp{svc: s, t: txn, keyed: p.IdempotencyKey != ""}
	err = s.cfg.Batcher.DoBulk(ctx, op)
	<-s.acceptSlots
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("withdrawal: %w", err)
	case op.refusal != nil:
		return nil, false, op.refusal
	case op.existing != nil:
		return sameWithdrawal(op.existing, p)
	}
	b.queued.Add(1)
	return txn, true, nil
}

func sameWithdrawal(t *BankTxn, p WithdrawParams) (*BankTxn, bool, error) {
	if t.Kind != KindWithdrawal || t.Amount != p.Amount || t.CardID != p.CardID {
		return nil, false, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "Idempotency-Key",
			Message: "this Idempotency-Key was already used for a different withdrawal"}
	}
	return t, false, nil
}

// acceptOp freezes the amount and queues the withdrawal, together.
type acceptOp struct {
	svc *Service
	t   *BankTxn
	// keyed: the id comes from the caller's key and may exist already; a
	// random one is checked by the insert alone.
	keyed bool

	existing *BankTxn
	refusal  *zhifu.Error
}

func (o *acceptOp) Keys() []string { return []string{"banktxn:" + o.t.TxnID} }

func (o *acceptOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.existing, o.refusal = nil, nil
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
	return []ledger.Transfer{o.svc.transfer(wdHoldID(o.t.TxnID), wallet, frozen, o.t.Amount, zhifu.TransferWithdraw)}, nil
}

func (o *acceptOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.existing != nil {
		return nil
	}
	switch r := results[0]; r {
	case ledger.TransferOK:
	case ledger.TransferExceedsCredits:
		o.refusal = &zhifu.Error{Code: zhifu.BalanceNotEnough, Param: "amount", Message: "available balance is not enough"}
		return nil
	default:
		return fmt.Errorf("channel: hold for %s: %s", o.t.TxnID, r)
	}
	return insertTxn(ctx, tx, o.t)
}
