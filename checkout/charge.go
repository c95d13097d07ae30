package checkout

import (
	"zhifu"
	"zhifu/trade"
)

// chargeOf decides what the buyer is charged for trade t: the one place
// the buyer's part (buyer_pay_amount) and the discount (discount_amount)
// are decided, for every way of paying. Today there are no discounts and
// the buyer pays the whole total. Marketing campaigns plug in here: a
// discount then needs the campaign's budget to pay its part to the seller
// beside the buyer's transfer, which trade's pay rule refuses to do
// without (trade.Service.Pay faults on a charge it cannot pay).
//
// It runs on the trade as read under its lock when a balance payment or a
// card payment's settlement is made, and on the trade as read without one
// when a card payment is split.
func chargeOf(t *trade.Trade) trade.Charge {
	return trade.Charge{BuyerPay: t.TotalAmount}
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
