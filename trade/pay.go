package trade

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/ledger"
)

// Charge is what a payment of a trade takes, as package checkout decides
// it: the buyer's part, from the wallet, and the discount the platform
// gives. They add up to the trade's total.
type Charge struct {
	BuyerPay zhifu.Amount
	Discount zhifu.Amount
}

// ChargeFunc decides the charge of trade t, read under its lock at the
// moment of payment. A nil ChargeFunc charges the buyer the whole total.
type ChargeFunc func(t *Trade) Charge

// Pricer decides the discount of a balance payment, inside the payment's
// transaction: package checkout's, over the campaigns. Discount returns
// the grant for buyerID paying trade t (the zero grant for none); Settled
// is told in the same transaction whether the discount went through.
type Pricer interface {
	Discount(ctx context.Context, q ledger.Querier, t *Trade, buyerID string, now time.Time) (campaign.Grant, error)
	Settled(ctx context.Context, q ledger.Querier, t *Trade, buyerID string, now time.Time, g campaign.Grant, ok bool) error
}

// Pay pays trade tradeNo for user u from the balance and returns the trade
// as it now is; pricer (nil for none) may give a campaign's discount, paid
// from its budget in the same transaction: the buyer pays the total less
// the discount, the seller receives the whole total.
//
// A trade is paid at most once: the ledger transfer's id is
// "pay:<trade_no>", and the trade's status moves only in the same
// transaction, so concurrent or repeated requests find it paid
// (TRADE_HAS_SUCCESS). Concurrent payments of one trade in this process
// wait for the first (herd) and are then answered from a plain read once
// it is paid. Which way a trade is paid is package checkout's decision: it
// makes balance payments here, and pays the trade of a card payment with
// Settle once the card's money is in the wallet.
func (s *Service) Pay(ctx context.Context, u *identity.User, tradeNo string, pricer Pricer) (*Trade, error) {
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	who := payer{num: u.Num, userID: u.UserID}
	leader, err := s.paying.join(ctx, tradeNo)
	if err != nil {
		return nil, err
	}
	if leader {
		defer s.paying.leave(tradeNo)
		return s.payBalance(ctx, who, tradeNo, pricer, s.cfg.Clock.Now())
	}
	// A trade never returns to WAIT_BUYER_PAY, so a committed status past
	// it refuses the payment for good: answering from a plain read spares
	// the batcher a herd of requests for a trade already paid.
	now := s.cfg.Clock.Now()
	t, err := s.load(ctx, tradeNo)
	if err != nil {
		return nil, err
	}
	if ch := payChange(t, who, now, s.ledgerID); t.Status != WaitBuyerPay && ch.refusal != nil {
		return recovered(ctx, t, ch.refusal)
	}
	return s.payBalance(ctx, who, tradeNo, pricer, now)
}

// Payable tells whether user u may pay trade tradeNo now, for a payment
// whose money comes from elsewhere than the balance (a card). It answers
// from a plain read: the trade and true when the pay rule would take the
// payment; the trade and false when a request recovering its lost answer
// (idempotency.Recovering) finds the trade moved as that request's first
// run left it; otherwise the rule's refusal, once what the refusal itself
// does is done (a trade whose time to pay is up is closed).
func (s *Service) Payable(ctx context.Context, u *identity.User, tradeNo string) (*Trade, bool, error) {
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, false, err
	}
	now := s.cfg.Clock.Now()
	t, err := s.load(ctx, tradeNo)
	if err != nil {
		return nil, false, err
	}
	who := payer{num: u.Num, userID: u.UserID}
	ch := payChange(t, who, now, s.ledgerID)
	if ch.refusal == nil {
		return t, true, nil
	}
	if t.Status != WaitBuyerPay {
		t, err := recovered(ctx, t, ch.refusal)
		return t, false, err
	}
	// Refused while waiting for payment: the op applies the refusal under
	// the trade's lock (closing the trade if its time is up), moving no
	// money, since a refusal carries no transfer.
	payable := false
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: now, recoverable: true,
		decide: func(_ context.Context, _ ledger.Querier, t *Trade) (change, error) {
			ch := payChange(t, who, now, s.ledgerID)
			payable = ch.refusal == nil
			if payable {
				return change{}, nil // payable after all: the caller pays it
			}
			return ch, nil
		}}
	if err := s.do(ctx, op); err != nil {
		return nil, false, err
	}
	if payable {
		return op.old, true, nil
	}
	return op.ch.trade, false, nil
}

// load reads trade tradeNo outside any transaction; a missing trade is
// NOT_FOUND.
func (s *Service) load(ctx context.Context, tradeNo string) (*Trade, error) {
	t, err := loadTrade(ctx, s.cfg.Store.Reader(), tradeNo, false)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no trade %s", tradeNo)
	}
	return t, nil
}

// payBalance pays from the balance, with pricer's discount if it gives
// one. When the budget cannot pay the discount after all (the ledger
// refused its transfer, and with it the payment), the payment is made
// again at the full price.
func (s *Service) payBalance(ctx context.Context, who payer, tradeNo string, pricer Pricer, now time.Time) (*Trade, error) {
	for {
		op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: now, recoverable: true}
		op.decide = func(ctx context.Context, q ledger.Querier, t *Trade) (change, error) {
			ch := payChange(t, who, now, s.ledgerID)
			if pricer == nil || ch.refusal != nil || ch.transfer == nil {
				return ch, nil
			}
			g, err := pricer.Discount(ctx, q, t, who.userID, now)
			if err != nil || g.Discount <= 0 {
				return ch, err
			}
			return discounted(t, ch, g, s.ledgerID, func(ctx context.Context, q ledger.Querier, ok bool) error {
				return pricer.Settled(ctx, q, t, who.userID, now, g, ok)
			}), nil
		}
		if err := s.do(ctx, op); err != nil {
			return nil, err
		}
		if !op.budgetShort {
			return op.ch.trade, nil
		}
		pricer = nil
	}
}

// discounted turns the pay rule's change into a payment with grant g's
// discount: the buyer's transfer is the total less the discount, and the
// budget's transfer of the discount goes to the same account, linked
// before it.
func discounted(t *Trade, ch change, g campaign.Grant, ledgerID uint32,
	settle func(ctx context.Context, q ledger.Querier, ok bool) error) change {
	pay := *ch.transfer
	pay.Amount -= int64(g.Discount)
	d := campaign.DiscountTransfer(g, t.TradeNo, pay.CreditAccountID, ledgerID)
	u := *ch.trade
	u.BuyerPayAmount, u.DiscountAmount = zhifu.Amount(pay.Amount), g.Discount
	u.CampaignID, u.CampaignLabel, u.BudgetAccount = g.CampaignID, g.Label, g.Budget
	ch.trade, ch.transfer, ch.extra, ch.discounted = &u, &pay, &d, settle
	return ch
}

// charged checks the pay rule's change against the charge decided for
// trade t. The rule takes the whole total from the buyer; a charge that
// asks for anything else (a discount) cannot be paid until a campaign's
// budget pays its part, and is a fault rather than a payment of the wrong
// amount.
func charged(t *Trade, ch change, charge ChargeFunc) change {
	if charge == nil || ch.refusal != nil || ch.transfer == nil {
		return ch
	}
	if c := charge(t); c.Discount != 0 || c.BuyerPay != zhifu.Amount(ch.transfer.Amount) {
		return change{fault: fmt.Errorf("trade %s: charged %s with a discount of %s, but only the whole total %s can be paid",
			t.TradeNo, c.BuyerPay, c.Discount, zhifu.Amount(ch.transfer.Amount))}
	}
	return ch
}

// CardPayment is the card part of a payment still with the bank, as the
// answer to the pay request that started it shows it (View's payment).
// Package checkout fills it from what the bank channels recorded.
type CardPayment struct {
	PaymentID     string // the top-up that carries the card part
	Bank          string
	Status        string       // PROCESSING, SUCCESS or FAILED
	CardAmount    zhifu.Amount // debited from the card
	BalanceAmount zhifu.Amount // frozen in the wallet until the card part is decided
}

// SettleParams name a payment whose money has reached the buyer's wallet
// by other means than the balance (a card), to be paid to trade TradeNo.
type SettleParams struct {
	TradeNo string
	BuyerID string
	Now     time.Time
	Charge  ChargeFunc
}

// Settlement is a trade's side of a payment whose money has reached the
// buyer's wallet: decided by Settle, inside the caller's op, and saved by
// Finish once the op's transfers are known.
type Settlement struct {
	svc *Service
	now time.Time
	old *Trade
	ch  change
}

// Settle locks trade p.TradeNo in the caller's transaction and decides, by
// the rule of balance payments, whether p.BuyerID can still pay it at
// p.Now. The caller puts Transfer (if any) after the transfers that
// brought the money into the wallet, and calls Finish with its result. The
// caller's op must hold the key "trade:<trade_no>".
func (s *Service) Settle(ctx context.Context, tx ledger.Tx, p SettleParams) (*Settlement, error) {
	num, ok := zhifu.ParseUserID(p.BuyerID)
	if !ok {
		return nil, fmt.Errorf("trade: payment by %q, not a user id", p.BuyerID)
	}
	t, err := loadTrade(ctx, tx, p.TradeNo, true)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return &Settlement{svc: s, now: p.Now, ch: refuse(zhifu.NotFound, "no trade %s", p.TradeNo)}, nil
	}
	ch := charged(t, payChange(t, payer{num: num, userID: p.BuyerID}, p.Now, s.ledgerID), p.Charge)
	if ch.fault != nil {
		return nil, ch.fault
	}
	return &Settlement{svc: s, now: p.Now, old: t, ch: ch}, nil
}

// Transfer is the payment to make from the buyer's wallet, or nil when the
// trade can no longer be paid (paid already, closed, expired, another
// buyer's): the money is then the caller's to give back.
func (c *Settlement) Transfer() *ledger.Transfer {
	if c.ch.refusal != nil {
		return nil
	}
	return c.ch.transfer
}

// Refusal says why the trade cannot be paid; nil when it can.
func (c *Settlement) Refusal() error {
	if c.ch.refusal == nil {
		return nil
	}
	return c.ch.refusal
}

// Finish saves what Settle decided, once the transfer's result is known:
// the trade paid, or an expired trade closed; and writes the merchant's
// notification in the same transaction.
func (c *Settlement) Finish(ctx context.Context, tx ledger.Tx, result ledger.TransferResult) error {
	if c.ch.trade == nil {
		return nil
	}
	if tr := c.Transfer(); tr != nil && result != ledger.TransferOK {
		return fmt.Errorf("trade %s: payment transfer %s: %s", c.old.TradeNo, tr.ID, result)
	}
	if err := saveTrade(ctx, tx, c.old, c.ch.trade); err != nil {
		return err
	}
	return c.svc.notify(ctx, tx, c.ch.trade, nil, c.now)
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
