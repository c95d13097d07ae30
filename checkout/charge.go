package checkout

import (
	"context"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/ledger"
	"zhifu/trade"
)

// chargeOf decides what the buyer is charged for a card payment of trade
// t: the whole total. Campaigns discount balance payments (pricer); a card
// payment's charge is split before the bank is asked and settled when its
// money arrives, and a discount decided at the split could be spent by
// then, so card payments carry none.
//
// It runs on the trade as read under its lock when a card payment's
// settlement is made, and on the trade as read without one when a card
// payment is split.
func chargeOf(t *trade.Trade) trade.Charge {
	return trade.Charge{BuyerPay: t.TotalAmount}
}

// pricer gives balance payments the campaigns' discounts: trade's Pricer
// over a campaign.Discounter, the payment being of kind trade, its payee
// the trade's merchant.
type pricer struct{ d campaign.Discounter }

func payment(t *trade.Trade, buyerID string, now time.Time) campaign.Payment {
	return campaign.Payment{Kind: zhifu.KindTrade, Ref: t.TradeNo, PayerID: buyerID, PayeeID: t.MerchantID,
		Amount: t.TotalAmount, Now: now}
}

func (p pricer) Discount(ctx context.Context, q ledger.Querier, t *trade.Trade, buyerID string, now time.Time) (campaign.Grant, error) {
	return campaign.Ask(ctx, p.d, q, payment(t, buyerID, now))
}

func (p pricer) Settled(ctx context.Context, q ledger.Querier, t *trade.Trade, buyerID string, now time.Time, g campaign.Grant, ok bool) error {
	return p.d.Settle(ctx, q, payment(t, buyerID, now), g, ok)
}

// parts is a charge split between the balance and the card.
type parts struct {
	balance zhifu.Amount // from the wallet (frozen meanwhile, with a card part)
	card    zhifu.Amount // from the card; 0 means a balance payment
}

// split divides charge c for the method: "card" puts it all on the card;
// "balance+card" takes what the available balance covers and puts the
// rest on the card, and is a plain balance payment when the balance covers
// it all; "balance" is the balance alone.
func split(c trade.Charge, method string, available zhifu.Amount) parts {
	switch method {
	case MethodCard:
		return parts{card: c.BuyerPay}
	case MethodBalanceCard:
		if available >= c.BuyerPay {
			return parts{balance: c.BuyerPay}
		}
		b := max(available, 0)
		return parts{balance: b, card: c.BuyerPay - b}
	}
	return parts{balance: c.BuyerPay}
}
