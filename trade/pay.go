package trade

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// Payment methods of POST /v1/trades/{trade_no}/pay.
const (
	MethodBalance     = "balance"
	MethodCard        = "card"
	MethodBalanceCard = "balance+card"
)

// PayParams say how the buyer pays.
type PayParams struct {
	Method string
	CardID string
}

// Pay pays trade tradeNo from user u's wallet balance and returns the trade
// as it now is. A trade is paid at most once: the ledger transfer's id is
// "pay:<trade_no>", and the trade's status moves only in the same
// transaction, so concurrent or repeated requests find it paid
// (TRADE_HAS_SUCCESS). Card payments need the bank channels, which do not
// exist yet: they answer CHANNEL_UNAVAILABLE.
func (s *Service) Pay(ctx context.Context, u *identity.User, tradeNo string, p PayParams) (*Trade, error) {
	switch p.Method {
	case MethodBalance:
	case MethodCard, MethodBalanceCard:
		return nil, &zhifu.Error{Code: zhifu.ChannelUnavailable, Param: "method",
			Message: "card payment is not available yet; pay with method \"balance\""}
	default:
		return nil, invalid("method", `method must be "balance", "card" or "balance+card"`)
	}
	if p.CardID != "" {
		return nil, invalid("card_id", "card_id goes with card payments only")
	}
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	who := payer{num: u.Num, userID: u.UserID}
	now := s.cfg.Clock.Now()
	// A trade never returns to WAIT_BUYER_PAY, so a committed status past
	// it refuses the payment for good: answering from a plain read spares
	// the batcher a herd of requests for a trade already paid.
	t, err := loadTrade(ctx, s.cfg.Store.Reader(), tradeNo, false)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no trade %s", tradeNo)
	}
	if t.Status != WaitBuyerPay {
		if ch := payChange(t, who, now, s.ledgerID); ch.refusal != nil {
			return nil, ch.refusal
		}
	}
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: now,
		decide: func(_ context.Context, _ ledger.Querier, t *Trade) (change, error) {
			return payChange(t, who, now, s.ledgerID), nil
		}}
	if err := s.do(ctx, op); err != nil {
		return nil, err
	}
	return op.ch.trade, nil
}

// Collect charges trade tradeNo of merchant m to the user who showed the
// payment code authCode (付款码), from their balance. The code is used up
// only when the payment succeeds; an unknown, expired or used code is
// INVALID_REQUEST on auth_code.
func (s *Service) Collect(ctx context.Context, m *identity.Merchant, tradeNo, authCode string) (*Trade, error) {
	if !ValidAuthCode(authCode) {
		return nil, invalid("auth_code", "auth_code must be the %d-digit payment code the buyer shows", AuthCodeLen)
	}
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	now := s.cfg.Clock.Now()
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo, "paycode:" + authCode}, now: now}
	op.decide = func(ctx context.Context, q ledger.Querier, t *Trade) (change, error) {
		if e := merchantOwns(t, m.MerchantID); e != nil {
			return change{refusal: e}, nil
		}
		// The trade's own refusals come first, so that repeating a
		// collect that succeeded says the trade is paid rather than that
		// the code is used.
		if _, code := Next(t.Mode, t.Status, Pay); code != "" {
			return refuseMove(t, Pay, code), nil
		}
		who, refusal, err := loadPayCode(ctx, q, authCode, now)
		if err != nil || refusal != nil {
			return change{refusal: refusal}, err
		}
		if t.BuyerID != "" && t.BuyerID != who.userID {
			return change{refusal: invalid("auth_code", "the payment code is not from the buyer this trade names")}, nil
		}
		return payChange(t, who, now, s.ledgerID), nil
	}
	op.after = func(ctx context.Context, q ledger.Querier) error {
		n, err := q.Exec(ctx, `UPDATE paycodes SET used_at = ?, trade_no = ? WHERE auth_code = ? AND used_at = 0`,
			nanos(now), tradeNo, authCode)
		if err != nil {
			return fmt.Errorf("trade: use payment code: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("trade: use payment code: %d rows changed, want 1: used concurrently", n)
		}
		return nil
	}
	if err := s.do(ctx, op); err != nil {
		return nil, err
	}
	return op.ch.trade, nil
}

// loadPayCode locks a payment code and returns its user, or the refusal
// when it cannot pay.
func loadPayCode(ctx context.Context, q ledger.Querier, authCode string, now time.Time) (payer, *zhifu.Error, error) {
	var userID string
	var expires, used int64
	err := q.QueryRow(ctx, `SELECT user_id, expires_at, used_at FROM paycodes WHERE auth_code = ? FOR UPDATE`,
		authCode).Scan(&userID, &expires, &used)
	refusal := func(why string) *zhifu.Error { return invalid("auth_code", "the payment code %s", why) }
	switch {
	case errors.Is(err, ledger.ErrNoRows):
		return payer{}, refusal("is unknown"), nil
	case err != nil:
		return payer{}, nil, fmt.Errorf("trade: load payment code: %w", err)
	case used != 0:
		return payer{}, refusal("has been used"), nil
	case now.UnixNano() >= expires:
		return payer{}, refusal("has expired; ask the buyer for a fresh one"), nil
	}
	num, ok := zhifu.ParseUserID(userID)
	if !ok {
		return payer{}, nil, fmt.Errorf("trade: payment code of %q, not a user id", userID)
	}
	return payer{num: num, userID: userID}, nil, nil
}
