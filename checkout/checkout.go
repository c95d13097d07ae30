// Package checkout decides how a trade is paid. A buyer pays from the
// balance, by card, or by balance plus card; checkout decides what the
// buyer is charged (charge.go: the buyer's part and the discount, in one
// place), makes balance payments through package trade, splits a card
// payment's charge between the balance (frozen meanwhile) and the card,
// hands the card part to the bank channels (package channel), and, when
// the bank's money has arrived in the buyer's wallet, settles the trade
// inside the channels' own transaction (Settler, the channels'
// TradeSettler). Online banking tops up a wallet only; it is not a way to
// pay a trade.
//
// It is the one package that knows both trades and channels: trade does
// not know the channels, and channel knows a trade only by its number and
// the Settler it is given. The two values are built in order, without a
// setter: NewSettler over the trades first, for channel.Config; then New
// over the trades and the channels.
package checkout

import (
	"context"
	"fmt"

	"zhifu"
	"zhifu/campaign"
	"zhifu/channel"
	"zhifu/identity"
	"zhifu/trade"
	"zhifu/wallet"
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

// Config is what the service needs.
type Config struct {
	Trades *trade.Service
	Wallet *wallet.Service
	// Channels pays card parts; nil turns card payments off
	// (CHANNEL_UNAVAILABLE).
	Channels *channel.Service
	// Discounter gives balance payments the campaigns' discounts; nil for
	// none.
	Discounter campaign.Discounter
}

// Service pays trades.
type Service struct {
	cfg    Config
	pricer trade.Pricer // nil without campaigns
}

// New returns the checkout over its trades and channels.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg}
	if cfg.Discounter != nil {
		s.pricer = pricer{cfg.Discounter}
	}
	return s
}

// Pay pays trade tradeNo for user u and returns the trade as it now is.
//
// From the balance ("balance") the payment is immediate (trade.Service.Pay:
// one transfer "pay:<trade_no>", a trade paid at most once).
//
// By card ("card", or "balance+card" for what the balance does not cover)
// the card part goes to the bank channels: the trade comes back still
// WAIT_BUYER_PAY, with the payment PROCESSING, while the bank works, and
// is paid by the Settler, by the same rule and with the same transfer id,
// once the bank has taken the money. balance+card with a balance that
// covers the whole charge is a balance payment.
func (s *Service) Pay(ctx context.Context, u *identity.User, tradeNo string, p PayParams) (*trade.Trade, error) {
	switch p.Method {
	case MethodBalance:
		if p.CardID != "" {
			return nil, invalid("card_id", "card_id goes with card payments only")
		}
		return s.cfg.Trades.Pay(ctx, u, tradeNo, s.pricer)
	case MethodCard, MethodBalanceCard:
	default:
		return nil, invalid("method", `method must be "balance", "card" or "balance+card"`)
	}
	t, payable, err := s.cfg.Trades.Payable(ctx, u, tradeNo)
	if err != nil || !payable {
		return t, err
	}
	return s.payByCard(ctx, u, t, p)
}

// payByCard splits the charge between balance and card and hands the card
// part to the channels. The trade is returned as it stands, still waiting
// for payment; the top-up the channels name follows the card part.
func (s *Service) payByCard(ctx context.Context, u *identity.User, t *trade.Trade, p PayParams) (*trade.Trade, error) {
	c := chargeOf(t)
	var available zhifu.Amount
	if p.Method == MethodBalanceCard {
		b, err := s.cfg.Wallet.Balance(ctx, u)
		if err != nil {
			return nil, err
		}
		available = b.Available
	}
	part := split(c, p.Method, available)
	if part.card == 0 {
		return s.cfg.Trades.Pay(ctx, u, t.TradeNo, s.pricer)
	}
	if s.cfg.Channels == nil {
		return nil, &zhifu.Error{Code: zhifu.ChannelUnavailable, Param: "method",
			Message: "card payment is not available; pay with method \"balance\""}
	}
	started, err := s.cfg.Channels.PayByCard(ctx, u, channel.CardPayment{TradeNo: t.TradeNo, CardID: p.CardID,
		CardAmount: part.card, BalanceAmount: part.balance})
	if err != nil {
		return nil, err
	}
	now, err := s.cfg.Trades.Get(ctx, t.TradeNo)
	if err != nil {
		return nil, err
	}
	now.Payment = &trade.CardPayment{PaymentID: started.PaymentID, Bank: started.Bank, Status: started.Status,
		CardAmount: started.CardAmount, BalanceAmount: started.BalanceAmount}
	return now, nil
}

func invalid(param, format string, args ...any) *zhifu.Error {
	return &zhifu.Error{Code: zhifu.InvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}
