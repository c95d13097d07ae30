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

// Pay pays trade tradeNo for user u and returns the trade as it now is.
//
// From the balance ("balance") the payment is immediate. A trade is paid
// at most once: the ledger transfer's id is "pay:<trade_no>", and the
// trade's status moves only in the same transaction, so concurrent or
// repeated requests find it paid (TRADE_HAS_SUCCESS). Concurrent payments
// of one trade in this process wait for the first (herd) and are then
// answered from a plain read once it is paid.
//
// By card ("card", or "balance+card" for what the balance does not cover)
// the card part goes to the bank channels (UseCardPayer): the trade comes
// back still WAIT_BUYER_PAY while the bank works, and is paid by
// SettleCardPayment, with the same rule and the same transfer id, when the
// bank has taken the money. balance+card with a balance that covers the
// whole trade is a balance payment.
func (s *Service) Pay(ctx context.Context, u *identity.User, tradeNo string, p PayParams) (*Trade, error) {
	switch p.Method {
	case MethodBalance:
		if p.CardID != "" {
			return nil, invalid("card_id", "card_id goes with card payments only")
		}
	case MethodCard, MethodBalanceCard:
	default:
		return nil, invalid("method", `method must be "balance", "card" or "balance+card"`)
	}
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	who := payer{num: u.Num, userID: u.UserID}
	if p.Method == MethodBalance {
		leader, err := s.paying.join(ctx, tradeNo)
		if err != nil {
			return nil, err
		}
		if leader {
			defer s.paying.leave(tradeNo)
			return s.payBalance(ctx, who, tradeNo, s.cfg.Clock.Now())
		}
	}
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
	ch := payChange(t, who, now, s.ledgerID)
	if t.Status != WaitBuyerPay && ch.refusal != nil {
		return recovered(ctx, t, ch.refusal)
	}
	if p.Method != MethodBalance && ch.refusal == nil {
		return s.payByCard(ctx, u, t, p)
	}
	// A balance payment; or a card payment of a trade that cannot be paid,
	// which the op refuses (closing the trade if its time is up) without
	// moving money, since the rule's refusal carries no transfer.
	return s.payBalance(ctx, who, tradeNo, now)
}

func (s *Service) payBalance(ctx context.Context, who payer, tradeNo string, now time.Time) (*Trade, error) {
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: now, recoverable: true,
		decide: func(_ context.Context, _ ledger.Querier, t *Trade) (change, error) {
			return payChange(t, who, now, s.ledgerID), nil
		}}
	if err := s.do(ctx, op); err != nil {
		return nil, err
	}
	return op.ch.trade, nil
}

// CardPayer is the bank channels' side of card payments; package channel
// implements it. PayByCard records the intent to debit the card part
// (freezing the balance part meanwhile), sends it to the bank, and returns
// at once with the payment PROCESSING; an intent already processing for
// the same trade and card is returned rather than doubled.
type CardPayer interface {
	PayByCard(ctx context.Context, u *identity.User, p CardPayment) (*CardPayment, error)
}

// CardPayment is the card part of a trade's payment.
type CardPayment struct {
	TradeNo string
	// CardID is the buyer's card; "" lets the channels route to the
	// healthiest of the buyer's cards.
	CardID     string
	CardAmount zhifu.Amount // debited from the card
	// BalanceAmount is the rest, frozen in the wallet until the card
	// part is decided (balance+card).
	BalanceAmount zhifu.Amount

	// Set by the payer.
	PaymentID string // the top-up that carries the card part
	Bank      string
	Status    string // PROCESSING, SUCCESS or FAILED
}

// UseCardPayer makes s pay card methods through c; nil turns card
// payments off (CHANNEL_UNAVAILABLE).
func (s *Service) UseCardPayer(c CardPayer) {
	if c == nil {
		s.cards.Store(nil)
		return
	}
	s.cards.Store(&c)
}

func (s *Service) cardPayer() CardPayer {
	if c := s.cards.Load(); c != nil {
		return *c
	}
	return nil
}

// payByCard splits the total between balance and card and hands the card
// part to the channels. The trade is returned as it stands, still waiting
// for payment; the top-up the channels name follows the card part.
func (s *Service) payByCard(ctx context.Context, u *identity.User, t *Trade, p PayParams) (*Trade, error) {
	cp := s.cardPayer()
	if cp == nil {
		return nil, &zhifu.Error{Code: zhifu.ChannelUnavailable, Param: "method",
			Message: "card payment is not available; pay with method \"balance\""}
	}
	pay := CardPayment{TradeNo: t.TradeNo, CardID: p.CardID, CardAmount: t.TotalAmount}
	if p.Method == MethodBalanceCard {
		b, err := s.cfg.Wallet.Balance(ctx, u)
		if err != nil {
			return nil, err
		}
		if b.Available >= t.TotalAmount {
			return s.payBalance(ctx, payer{num: u.Num, userID: u.UserID}, t.TradeNo, s.cfg.Clock.Now())
		}
		pay.BalanceAmount = max(b.Available, 0)
		pay.CardAmount = t.TotalAmount - pay.BalanceAmount
	}
	started, err := cp.PayByCard(ctx, u, pay)
	if err != nil {
		return nil, err
	}
	now, err := loadTrade(ctx, s.cfg.Store.Reader(), t.TradeNo, false)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = t
	}
	now.Payment = started
	return now, nil
}

// CardSettlement is a trade's side of a card payment whose money has
// reached the buyer's wallet, decided inside the channels' op by
// SettleCardPayment and saved by FinishCardPayment.
type CardSettlement struct {
	old *Trade
	ch  change
}

// Transfer is the payment to make from the buyer's wallet, or nil when the
// trade can no longer be paid (paid already, closed, expired, another
// buyer's): the money is then the caller's to give back.
func (c *CardSettlement) Transfer() *ledger.Transfer {
	if c.ch.refusal != nil {
		return nil
	}
	return c.ch.transfer
}

// Refusal says why the trade cannot be paid; nil when it can.
func (c *CardSettlement) Refusal() error {
	if c.ch.refusal == nil {
		return nil
	}
	return c.ch.refusal
}

// SettleCardPayment locks trade tradeNo in the caller's transaction and
// decides, by the rule of balance payments, whether buyerID can still pay
// it at now. The caller puts Transfer (if any) after the transfers that
// brought the money into the wallet, and calls FinishCardPayment with its
// result. The caller's op must hold the key "trade:<trade_no>".
func (s *Service) SettleCardPayment(ctx context.Context, tx ledger.Tx, tradeNo, buyerID string, now time.Time) (*CardSettlement, error) {
	num, ok := zhifu.ParseUserID(buyerID)
	if !ok {
		return nil, fmt.Errorf("trade: card payment by %q, not a user id", buyerID)
	}
	t, err := loadTrade(ctx, tx, tradeNo, true)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return &CardSettlement{ch: refuse(zhifu.NotFound, "no trade %s", tradeNo)}, nil
	}
	ch := payChange(t, payer{num: num, userID: buyerID}, now, s.ledgerID)
	if ch.fault != nil {
		return nil, ch.fault
	}
	return &CardSettlement{old: t, ch: ch}, nil
}

// FinishCardPayment saves what SettleCardPayment decided, once the
// transfer's result is known: the trade paid, or an expired trade closed;
// and writes the merchant's notification in the same transaction.
func (s *Service) FinishCardPayment(ctx context.Context, tx ledger.Tx, c *CardSettlement, result ledger.TransferResult, now time.Time) error {
	if c.ch.trade == nil {
		return nil
	}
	if tr := c.Transfer(); tr != nil && result != ledger.TransferOK {
		return fmt.Errorf("trade %s: card payment transfer %s: %s", c.old.TradeNo, tr.ID, result)
	}
	if err := saveTrade(ctx, tx, c.old, c.ch.trade); err != nil {
		return err
	}
	return s.notify(ctx, tx, c.ch.trade, nil, now)
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
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo, "paycode:" + authCode}, now: now,
		recoverable: true}
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
