package trade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// The rules of each move, as pure functions of the trade read under its
// lock: they return the trade after the move and the money to move, or the
// refusal. The ops in this package only load, call these, and save; the
// unit tests walk them without a database.

// RefundWindow is how long an instant trade stays refundable after payment;
// then it is TRADE_FINISHED (as Alipay's instant trades finish).
const RefundWindow = 90 * 24 * time.Hour

// change is the outcome of a rule.
type change struct {
	trade    *Trade           // the trade after the move; nil when refused or nothing to do
	transfer *ledger.Transfer // the money that moves with it, if any
	// extra moves beside transfer, Linked before it, both or neither: a
	// campaign's discount of a payment, the budget's share of a refund.
	extra *ledger.Transfer
	// discounted, for a payment with a discount, is told in the op's
	// Finish whether the discount went through (campaign.Discounter.Settle).
	discounted func(ctx context.Context, q ledger.Querier, ok bool) error
	refund     *RefundRecord // a new refund row
	refusal    *zhifu.Error  // why the move is refused; trade may still be set (see payChange)
	// shortfall is the refusal when the transfer's debit account cannot
	// cover it (a buyer's or seller's wallet); "" where that is a bug
	// (the escrow must always hold what its trades say).
	shortfall string
	// fault is a stored row that breaks an invariant: a bug, not a refusal.
	// It fails the op's transaction so nothing is written on top of it.
	fault error
}

// walletOf returns the wallet account of a user id stored on trade t.
func walletOf(t *Trade, role, userID string) (int64, error) {
	num, ok := zhifu.ParseUserID(userID)
	if !ok {
		return 0, fmt.Errorf("trade %s: stored %s %q is not a user id", t.TradeNo, role, userID)
	}
	return zhifu.WalletAccountID(num), nil
}

func refuse(code, format string, args ...any) change {
	return change{refusal: zhifu.Errorf(code, format, args...)}
}

// refuseMove turns a state-table refusal into an error that says what the
// trade's status is.
func refuseMove(t *Trade, ev Event, code string) change {
	return refuse(code, "cannot %s trade %s: its status is %s", ev, t.TradeNo, t.Status)
}

// payer is the user whose wallet pays.
type payer struct {
	num    int64
	userID string
}

// payChange pays trade t from p's wallet. A trade whose time to pay has
// passed is closed instead: the change then carries both the closed trade
// (to save) and the refusal TRADE_HAS_CLOSE (for the caller).
func payChange(t *Trade, p payer, now time.Time, ledgerID uint32) change {
	if t.BuyerID != "" && t.BuyerID != p.userID {
		// The trade is for someone else; whether it exists is not this
		// user's business.
		return refuse(zhifu.NotFound, "no trade %s", t.TradeNo)
	}
	if t.Status == WaitBuyerPay && !now.Before(t.CloseDue) {
		c := closeChange(t, now)
		c.refusal = zhifu.Errorf(zhifu.TradeHasClose, "trade %s closed unpaid at %s", t.TradeNo, FormatTime(t.CloseDue))
		return c
	}
	next, code := Next(t.Mode, t.Status, Pay)
	if code != "" {
		return refuseMove(t, Pay, code)
	}
	if p.userID == t.SellerID {
		return change{refusal: &zhifu.Error{Code: zhifu.InvalidRequest, Param: "buyer_id",
			Message: "the buyer cannot pay their own trade"}}
	}
	credit, err := walletOf(t, "seller_id", t.SellerID)
	if err != nil {
		return change{fault: err}
	}
	if t.Mode == Escrow {
		credit = zhifu.EscrowAccountID
	}
	u := *t
	u.Status, u.BuyerID, u.BuyerPayAmount, u.PaidAt = next, p.userID, t.TotalAmount, now
	if t.Mode == Instant {
		u.ConfirmDue = now.Add(RefundWindow)
	}
	return change{trade: &u, shortfall: zhifu.BuyerBalanceNotEnough, transfer: &ledger.Transfer{
		ID: "pay:" + t.TradeNo, DebitAccountID: zhifu.WalletAccountID(p.num), CreditAccountID: credit,
		Amount: int64(t.TotalAmount), Ledger: ledgerID, Code: zhifu.TransferPayment,
	}}
}

// closeChange closes an unpaid trade; no money has moved, so none moves back.
func closeChange(t *Trade, now time.Time) change {
	next, code := Next(t.Mode, t.Status, Close)
	if code != "" {
		return refuseMove(t, Close, code)
	}
	u := *t
	u.Status, u.ClosedAt = next, now
	return change{trade: &u}
}

// shipChange records the shipment and starts the confirm timer.
func shipChange(t *Trade, company, trackingNo string, now time.Time) change {
	next, code := Next(t.Mode, t.Status, Ship)
	if code != "" {
		return refuseMove(t, Ship, code)
	}
	u := *t
	u.Status, u.ShippedAt, u.ConfirmDue = next, now, now.Add(t.ConfirmTimeout)
	u.LogisticsCompany, u.TrackingNo = company, trackingNo
	return change{trade: &u}
}

// confirmChange finishes an escrow trade and pays the seller what the
// escrow still holds for it.
func confirmChange(t *Trade, now time.Time, ledgerID uint32) change {
	next, code := Next(t.Mode, t.Status, Confirm)
	if code != "" {
		return refuseMove(t, Confirm, code)
	}
	u := *t
	u.Status, u.FinishedAt = next, now
	c := change{trade: &u}
	// A trade refunded in full is closed, never confirmed, so Held is
	// positive here; the check keeps a zero transfer out of the ledger.
	if held := t.Held(); held > 0 {
		seller, err := walletOf(t, "seller_id", t.SellerID)
		if err != nil {
			return change{fault: err}
		}
		c.transfer = &ledger.Transfer{ID: "settle:" + t.TradeNo, DebitAccountID: zhifu.EscrowAccountID,
			CreditAccountID: seller, Amount: int64(held), Ledger: ledgerID,
			Code: zhifu.TransferSettle}
	}
	return c
}

// windowEndChange finishes an instant trade whose refund window has passed.
func windowEndChange(t *Trade, now time.Time) change {
	next, code := Next(t.Mode, t.Status, WindowEnd)
	if code != "" {
		return refuseMove(t, WindowEnd, code)
	}
	u := *t
	u.Status, u.FinishedAt = next, now
	return change{trade: &u}
}

// refundRequest is a merchant's refund.
type refundRequest struct {
	OutRequestNo string
	Amount       zhifu.Amount
	Reason       string
}

// refundChange returns money to the buyer: from the escrow while the
// trade waits there, from the seller's wallet once an instant trade paid
// the seller. existing is the refund already recorded under the same
// out_request_no, if any: the same amount is that refund again (nothing
// moves), another amount is CONTEXT_INCONSISTENT. Checks run in this order:
// the request key, the status, the amount.
func refundChange(t *Trade, req refundRequest, existing *RefundRecord, now time.Time, ledgerID uint32) change {
	if existing != nil {
		if existing.RefundAmount != req.Amount {
			return change{refusal: &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "out_request_no",
				Message: fmt.Sprintf("refund %s of trade %s exists with amount %s", req.OutRequestNo, t.TradeNo,
					existing.RefundAmount)}}
		}
		return change{refund: existing}
	}
	ev := Refund
	// Both are at most AmountMax (1e10 fen), so the sum cannot overflow.
	after := t.RefundedAmount + req.Amount
	if after == t.Paid() {
		ev = FullRefund
	}
	next, code := Next(t.Mode, t.Status, ev)
	if code != "" {
		return refuseMove(t, Refund, code)
	}
	if after > t.Paid() {
		return change{refusal: &zhifu.Error{Code: zhifu.RefundAmountExceeded, Param: "refund_amount",
			Message: fmt.Sprintf("refunds would total %s, more than the %s paid", after, t.Paid())}}
	}
	buyer, err := walletOf(t, "buyer_id", t.BuyerID)
	if err != nil {
		return change{fault: err}
	}
	debit, shortfall := zhifu.EscrowAccountID, ""
	if t.Status == Success {
		if debit, err = walletOf(t, "seller_id", t.SellerID); err != nil {
			return change{fault: err}
		}
		shortfall = zhifu.BalanceNotEnough
	}
	u := *t
	u.Status, u.RefundedAmount = next, after
	if next == Closed {
		u.ClosedAt = now
	}
	r := &RefundRecord{TradeNo: t.TradeNo, OutRequestNo: req.OutRequestNo, RefundAmount: req.Amount,
		Reason: req.Reason, Status: RefundSuccess, CreatedAt: now}
	id := refundTransferID(t.TradeNo, req.OutRequestNo)
	ch := change{trade: &u, refund: r, shortfall: shortfall, transfer: &ledger.Transfer{
		ID: id, DebitAccountID: debit, CreditAccountID: buyer, Amount: int64(req.Amount), Ledger: ledgerID,
		Code: zhifu.TransferRefund,
	}}
	// A discount is returned to its campaign's budget, never to the buyer:
	// the budget's share of what has been refunded so far is the discount's
	// share of the total, rounded down, so that the last refund returns the
	// rest of it.
	if part := discountShare(t, after) - discountShare(t, t.RefundedAmount); part > 0 {
		back := ledger.Transfer{ID: "rdisc:" + id[len("refund:"):], DebitAccountID: debit,
			CreditAccountID: t.BudgetAccount, Amount: int64(part), Ledger: ledgerID, Code: zhifu.TransferRefund}
		if zhifu.Amount(ch.transfer.Amount) == part {
			ch.transfer = &back
		} else {
			ch.transfer.Amount -= int64(part)
			back.Flags = ledger.Linked
			ch.extra = &back
		}
	}
	return ch
}

// discountShare is the part of refunds totalling refunded that returns to
// the campaign's budget rather than to the buyer.
func discountShare(t *Trade, refunded zhifu.Amount) zhifu.Amount {
	if t.DiscountAmount == 0 || t.Paid() == 0 {
		return 0
	}
	// Both are at most AmountMax (1e10), so the product fits in int64.
	return zhifu.Amount(int64(refunded) * int64(t.DiscountAmount) / int64(t.Paid()))
}

// refundTransferID is "refund:<trade_no>:<out_request_no>". The ledger
// takes ids of at most 64 bytes, which leaves 30 for out_request_no; a
// longer one is replaced by "~" and a hash of it. "~" cannot occur in an
// out_request_no (ValidOutNo), so the two forms never meet.
func refundTransferID(tradeNo, outRequestNo string) string {
	id := "refund:" + tradeNo + ":" + outRequestNo
	if len(id) <= ledger.IDLenMax {
		return id
	}
	sum := sha256.Sum256([]byte(outRequestNo))
	prefix := "refund:" + tradeNo + ":~"
	return prefix + hex.EncodeToString(sum[:])[:ledger.IDLenMax-len(prefix)]
}
