package trade

import (
	"context"
	"unicode/utf8"

	"zhifu"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
)

// RefundParams are a merchant's refund request.
type RefundParams struct {
	OutRequestNo string
	Amount       zhifu.Amount
	Reason       string
}

// Refund returns part or all of what the buyer paid for merchant m's trade
// tradeNo to the buyer's wallet: from the escrow while an escrow trade waits
// there, from the seller's wallet once an instant trade has paid the
// seller. The last refund (everything paid returned) closes the trade.
// (trade_no, out_request_no) is the refund's key forever: the same amount
// again returns the refund already made (created false), another amount is
// CONTEXT_INCONSISTENT.
func (s *Service) Refund(ctx context.Context, m *identity.Merchant, tradeNo string, p RefundParams) (r *RefundRecord, created bool, err error) {
	switch {
	case !ValidOutNo(p.OutRequestNo):
		return nil, false, invalid("out_request_no", "out_request_no must be 1 to %d letters, digits, '_' or '-'", OutNoLenMax)
	case p.Amount < zhifu.AmountMin || p.Amount > zhifu.AmountMax:
		return nil, false, &zhifu.Error{Code: zhifu.InvalidAmount, Param: "refund_amount",
			Message: "refund_amount must be between 0.01 and 100000000.00"}
	case !utf8.ValidString(p.Reason) || utf8.RuneCountInString(p.Reason) > ReasonLenMax:
		return nil, false, invalid("reason", "reason must be at most %d characters of UTF-8", ReasonLenMax)
	}
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, false, err
	}
	req := refundRequest{OutRequestNo: p.OutRequestNo, Amount: p.Amount, Reason: p.Reason}
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: s.cfg.Clock.Now()}
	op.decide = func(ctx context.Context, q ledger.Querier, t *Trade) (change, error) {
		if e := merchantOwns(t, m.MerchantID); e != nil {
			return change{refusal: e}, nil
		}
		// The trade's lock covers its refunds: no other op of this trade
		// runs until this transaction ends.
		existing, err := loadRefund(ctx, q, tradeNo, p.OutRequestNo)
		if err != nil {
			return change{}, err
		}
		return refundChange(t, req, existing, op.now, s.ledgerID), nil
	}
	if err := s.do(ctx, op); err != nil {
		return nil, false, err
	}
	// A new refund comes with the trade it changed; a repeated one alone,
	// unless it is this very request recovering its lost answer.
	return op.ch.refund, op.ch.trade != nil || idempotency.Recovering(ctx), nil
}

// RefundQuery returns the refund out_request_no of merchant m's trade.
func (s *Service) RefundQuery(ctx context.Context, m *identity.Merchant, tradeNo, outRequestNo string) (*RefundRecord, error) {
	if _, err := s.Query(ctx, m, tradeNo); err != nil {
		return nil, err
	}
	notFound := zhifu.Errorf(zhifu.NotFound, "no refund %q of trade %s", truncate(outRequestNo, OutNoLenMax), tradeNo)
	if !ValidOutNo(outRequestNo) {
		return nil, notFound
	}
	r, err := loadRefund(ctx, s.cfg.Store.Reader(), tradeNo, outRequestNo)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound
	}
	return r, nil
}
