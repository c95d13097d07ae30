package checkout

import (
	"context"
	"fmt"

	"zhifu"
	"zhifu/channel"
	"zhifu/ledger"
	"zhifu/trade"
)

// Settler settles a trade when the card part of its payment has reached
// the buyer's wallet: it is the channels' channel.TradeSettler, called in
// the transaction that resolves the card's top-up.
type Settler struct {
	trades *trade.Service
}

// NewSettler returns the settler of trades' card payments, for
// channel.Config.Settler.
func NewSettler(trades *trade.Service) *Settler {
	return &Settler{trades: trades}
}

// SettleTrade decides, by the rule of balance payments and the charge of
// chargeOf, whether p's trade takes the money now in the buyer's wallet.
// A trade that takes it must take exactly what arrived, the card part and
// the balance part split from the same charge; anything else is a fault.
func (s *Settler) SettleTrade(ctx context.Context, tx ledger.Tx, p channel.TradeSettle) (channel.TradeSettlement, error) {
	st, err := s.trades.Settle(ctx, tx, trade.SettleParams{TradeNo: p.TradeNo, BuyerID: p.BuyerID, Now: p.Now,
		Charge: chargeOf})
	if err != nil {
		return nil, err
	}
	if tr := st.Transfer(); tr != nil && zhifu.Amount(tr.Amount) != p.Amount {
		return nil, fmt.Errorf("checkout: payment %s brought %s for trade %s, which charges %s",
			p.PaymentID, p.Amount, p.TradeNo, zhifu.Amount(tr.Amount))
	}
	return st, nil
}

var _ channel.TradeSettler = (*Settler)(nil)
