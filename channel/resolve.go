package channel

import (
	"context"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// The ops that move a bank transaction. Each locks the row, checks its
// status against the state table, and writes the row with its ledger
// transfers in one transaction: an outcome brought twice (an answer and
// its callback, a duplicate callback, an inquiry racing a callback) finds
// the row final the second time and changes nothing. The transfer ids
// ("topup:<id>", "wd:<id>:paid"…) would refuse a second movement anyway.

// resolveOp applies the bank's outcome.
//
//   - A top-up that succeeded credits the wallet from the bank's
//     settlement account ("topup:<id>") and releases a balance+card hold;
//     for a card payment it then pays the trade from the wallet, as the
//     Settler decides, or, if the trade no longer wants paying (paid by
//     other means meanwhile, closed, paid by a second debit), queues a
//     refund payout of the card part back to the card it came from.
//   - A top-up that failed releases the hold; nothing was credited.
//   - A payout (withdrawal, card repayment) paid moves the frozen money to
//     the settlement account; one that failed returns it to the wallet,
//     and a card repayment's discount to its campaign's budget.
type resolveOp struct {
	svc     *Service
	txnID   string
	tradeNo string
	step    Step
	by      string
	now     time.Time

	old, t  *BankTxn
	refund  *BankTxn
	settle  TradeSettlement
	payIdx  int
	changed bool
}

func (o *resolveOp) Keys() []string {
	keys := []string{"banktxn:" + o.txnID}
	if o.tradeNo != "" {
		keys = append(keys, "trade:"+o.tradeNo)
	}
	return keys
}

func (o *resolveOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.old, o.t, o.refund, o.settle, o.payIdx, o.changed = nil, nil, nil, nil, -1, false
	t, err := loadTxn(ctx, tx, o.txnID, true)
	if err != nil || t == nil {
		return nil, err
	}
	next, ok := Next(t.Kind, t.Status, o.step.Resolve)
	if !ok {
		return nil, nil // final already: a duplicate outcome
	}
	if t.TradeNo != o.tradeNo {
		return nil, fmt.Errorf("channel: %s pays trade %q, op keyed for %q", t.TxnID, t.TradeNo, o.tradeNo)
	}
	u := *t
	u.Status, u.Stage, u.Reason, u.ResolvedBy = next, StageDone, o.step.Reason, o.by
	u.Attempts = max(t.Attempts, o.step.Attempts)
	u.UpdatedAt, u.SettledAt, u.NextAt = o.now, o.now, time.Time{}
	if o.step.BankTxnID != "" {
		u.BankTxnID = o.step.BankTxnID
	}
	if next == StatusSuccess {
		// A refund keeps why it was made; anything else that succeeded
		// has no reason to give.
		u.Reason = ""
		if t.Method == MethodRefund {
			u.Reason = t.Reason
		}
	}
	o.old, o.t = t, &u
	wallet, frozen, err := accountsOf(t.UserID)
	if err != nil {
		return nil, err
	}
	settlement, err := settlementOf(t.Bank)
	if err != nil {
		return nil, err
	}
	s := o.svc
	var trs []ledger.Transfer
	switch {
	case t.Kind == KindTopup && next == StatusSuccess:
		trs = append(trs, s.transfer(topupID(t.TxnID), settlement, wallet, t.Amount, zhifu.TransferTopup))
		if t.HoldAmount > 0 {
			trs = append(trs, s.transfer(releaseID(t.TxnID), frozen, wallet, t.HoldAmount, zhifu.TransferPayment))
		}
		if t.TradeNo != "" {
			trs, err = o.payTrade(ctx, tx, t, trs, wallet, frozen)
		}
	case t.Kind == KindTopup:
		if t.HoldAmount > 0 {
			trs = append(trs, s.transfer(releaseID(t.TxnID), frozen, wallet, t.HoldAmount, zhifu.TransferPayment))
		}
	case next == StatusSuccess:
		trs = append(trs, s.transfer(wdPaidID(t.TxnID), frozen, settlement, t.Amount, payoutKindOf(t.Kind).code))
	default:
		trs = append(trs, s.transfer(wdBackID(t.TxnID), frozen, wallet, t.PayerAmount(), payoutKindOf(t.Kind).code))
		if t.Discount > 0 {
			back := s.transfer(discBackID(t.TxnID), frozen, t.BudgetAccount, t.Discount, zhifu.TransferDiscount)
			back.UserData = t.CampaignID
			trs = append(trs, back)
		}
	}
	return trs, err
}

// payTrade adds the trade's payment to a card payment's transfers, or,
// when the trade cannot take it, the refund payout's hold.
func (o *resolveOp) payTrade(ctx context.Context, tx ledger.Tx, t *BankTxn, trs []ledger.Transfer, wallet, frozen int64) ([]ledger.Transfer, error) {
	s := o.svc
	if s.cfg.Settler == nil {
		return nil, fmt.Errorf("channel: %s pays trade %s but the service has no settler", t.TxnID, t.TradeNo)
	}
	settle, err := s.cfg.Settler.SettleTrade(ctx, tx, TradeSettle{TradeNo: t.TradeNo, BuyerID: t.UserID,
		PaymentID: t.TxnID, Amount: t.Amount + t.HoldAmount, Now: o.now})
	if err != nil {
		return nil, err
	}
	o.settle = settle
	if tr := settle.Transfer(); tr != nil {
		if zhifu.Amount(tr.Amount) != t.Amount+t.HoldAmount {
			return nil, fmt.Errorf("channel: %s brought %s+%s for trade %s of %s", t.TxnID, t.Amount, t.HoldAmount,
				t.TradeNo, zhifu.Amount(tr.Amount))
		}
		o.payIdx = len(trs)
		return append(trs, *tr), nil
	}
	o.refund = &BankTxn{TxnID: refundIDOf(t.TxnID), Kind: KindWithdrawal, Method: MethodRefund, UserID: t.UserID,
		Bank: t.Bank, CardID: t.CardID, CardToken: t.CardToken, Amount: t.Amount, SourceTxn: t.TxnID,
		Status: StatusQueued, Stage: StageQueued, Reason: refusalCode(settle.Refusal()), CreatedAt: o.now, UpdatedAt: o.now}
	return append(trs, s.transfer(wdHoldID(o.refund.TxnID), wallet, frozen, t.Amount, zhifu.TransferWithdraw)), nil
}

func refusalCode(err error) string {
	if err == nil {
		return ""
	}
	return zhifu.ErrorCode(err)
}

func (o *resolveOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.t == nil {
		return nil
	}
	for i, r := range results {
		// Exists would mean the money moved before without the row
		// saying so; the id makes it harmless, and the row catches up.
		if r != ledger.TransferOK && (r != ledger.TransferExists || i == o.payIdx) {
			return fmt.Errorf("channel: resolve %s: transfer %d: %s", o.t.TxnID, i, r)
		}
	}
	if o.settle != nil {
		result := ledger.TransferOK
		if o.payIdx >= 0 {
			result = results[o.payIdx]
		}
		if err := o.settle.Finish(ctx, tx, result); err != nil {
			return err
		}
	}
	if o.refund != nil {
		if err := insertTxn(ctx, tx, o.refund); err != nil {
			return err
		}
	}
	if err := saveTxn(ctx, tx, o.old, o.t); err != nil {
		return err
	}
	o.changed = true
	return nil
}

// scheduleOp saves when to look at a transaction again, unless it moved
// meanwhile.
type scheduleOp struct {
	txnID string
	stage Stage // what the call was made in
	step  Step
	now   time.Time
}

func (o *scheduleOp) Keys() []string { return []string{"banktxn:" + o.txnID} }

func (o *scheduleOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *scheduleOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	t, err := loadTxn(ctx, tx, o.txnID, true)
	if err != nil || t == nil || t.Status != StatusProcessing || t.Stage != o.stage {
		return err
	}
	u := *t
	u.Stage, u.NextAt, u.UpdatedAt = o.step.Stage, o.step.NextAt, o.now
	u.Attempts = max(t.Attempts, o.step.Attempts)
	return saveTxn(ctx, tx, t, &u)
}

// requeueOp puts a withdrawal the bank refused untouched back in its
// queue.
type requeueOp struct {
	txnID    string
	attempts int
	now      time.Time
	requeued bool
}

func (o *requeueOp) Keys() []string { return []string{"banktxn:" + o.txnID} }

func (o *requeueOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.requeued = false
	return nil, nil
}

func (o *requeueOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	t, err := loadTxn(ctx, tx, o.txnID, true)
	if err != nil || t == nil {
		return err
	}
	next, ok := Next(t.Kind, t.Status, Requeue)
	if !ok {
		return nil
	}
	u := *t
	u.Status, u.Stage, u.NextAt, u.Deadline, u.UpdatedAt = next, StageQueued, time.Time{}, time.Time{}, o.now
	u.Attempts = max(t.Attempts, o.attempts)
	if err := saveTxn(ctx, tx, t, &u); err != nil {
		return err
	}
	o.requeued = true
	return nil
}

// claimOp takes up to n withdrawals from the front of a bank's queue and
// marks them PROCESSING, to be sent now: the intent to pay is on record
// before the bank hears of it.
type claimOp struct {
	bank     string
	n        int
	now      time.Time
	deadline time.Time
	txns     []*BankTxn
}

func (o *claimOp) Keys() []string { return []string{"claim:" + o.bank} }

func (o *claimOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.txns = nil
	return nil, nil
}

func (o *claimOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	var err error
	o.txns, err = queryTxns(ctx, tx, `UPDATE bank_txns SET status = ?, stage = ?, next_at = ?, deadline = ?, updated_at = ?
		WHERE seq IN (SELECT seq FROM bank_txns WHERE bank = ? AND status = ? ORDER BY next_at, seq LIMIT ?)
		AND status = ? RETURNING `+txnColumns,
		string(StatusProcessing), string(StageSend), nanos(o.now), nanos(o.deadline), nanos(o.now),
		o.bank, string(StatusQueued), o.n, string(StatusQueued))
	if err != nil {
		return fmt.Errorf("channel: claim payouts of %s: %w", o.bank, err)
	}
	return nil
}

// run commits op in the lane its transaction belongs to: top-ups are what
// a person waits on; withdrawals and bookkeeping go in the background.
func (s *Service) run(ctx context.Context, kind Kind, op ledger.Op) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if kind == KindTopup {
		if _, ok := op.(*resolveOp); ok {
			return s.cfg.Batcher.Do(ctx, op)
		}
	}
	return s.cfg.Batcher.DoBulk(ctx, op)
}

// apply saves what a call (or callback, or statement line) decided for t.
func (s *Service) apply(ctx context.Context, t *BankTxn, st Step, by string) error {
	now := s.now()
	switch {
	case st.Resolve != "":
		op := &resolveOp{svc: s, txnID: t.TxnID, tradeNo: t.TradeNo, step: st, by: by, now: now}
		if err := s.run(ctx, t.Kind, op); err != nil {
			return fmt.Errorf("resolve %s: %w", t.TxnID, err)
		}
		if op.changed {
			s.resolved(op)
		}
	case st.Requeue:
		op := &requeueOp{txnID: t.TxnID, attempts: st.Attempts, now: now}
		if err := s.run(ctx, t.Kind, op); err != nil {
			return fmt.Errorf("requeue %s: %w", t.TxnID, err)
		}
		if op.requeued {
			if b := s.banks[t.Bank]; b != nil {
				b.queued.Add(1)
			}
		}
	default:
		op := &scheduleOp{txnID: t.TxnID, stage: t.Stage, step: st, now: now}
		if err := s.run(ctx, t.Kind, op); err != nil {
			return fmt.Errorf("schedule %s: %w", t.TxnID, err)
		}
	}
	return nil
}

// resolved keeps the queue counts after a resolution committed.
func (s *Service) resolved(op *resolveOp) {
	if op.old.Status == StatusQueued {
		if b := s.banks[op.old.Bank]; b != nil {
			b.queued.Add(-1)
		}
	}
	if op.refund != nil {
		if b := s.banks[op.refund.Bank]; b != nil {
			b.queued.Add(1)
		}
		s.cfg.Logger.Info("card payment came after its trade was settled; refunding the card",
			"topup_id", op.old.TxnID, "trade_no", op.old.TradeNo, "refund_id", op.refund.TxnID,
			"reason", op.refund.Reason)
	}
}
