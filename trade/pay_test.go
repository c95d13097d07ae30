package trade

import (
	"testing"

	"zhifu"
)

// TestCharged walks the check of a charge against the pay rule: a charge
// of the whole total pays, a refusal stays a refusal whatever the charge,
// and a charge the rule cannot pay (a discount, or a buyer's part that is
// not the total) is a fault, never a payment of another amount.
func TestCharged(t *testing.T) {
	tr := sample(Instant, WaitBuyerPay)
	total := func(t *Trade) Charge { return Charge{BuyerPay: t.TotalAmount} }
	discounted := func(t *Trade) Charge { return Charge{BuyerPay: t.TotalAmount - 100, Discount: 100} }
	short := func(t *Trade) Charge { return Charge{BuyerPay: t.TotalAmount - 100} }

	for name, charge := range map[string]ChargeFunc{"nil": nil, "total": total} {
		ch := charged(tr, payChange(tr, buyer, t0, testLedger), charge)
		if ch.fault != nil || ch.refusal != nil || ch.transfer == nil || ch.transfer.Amount != int64(tr.TotalAmount) {
			t.Errorf("%s charge: got fault %v refusal %v transfer %+v, want the total paid", name, ch.fault, ch.refusal, ch.transfer)
		}
	}
	for name, charge := range map[string]ChargeFunc{"discount": discounted, "short": short} {
		if ch := charged(tr, payChange(tr, buyer, t0, testLedger), charge); ch.fault == nil || ch.transfer != nil {
			t.Errorf("%s charge: got fault %v transfer %+v, want a fault and no transfer", name, ch.fault, ch.transfer)
		}
	}
	paid := sample(Instant, Success)
	ch := charged(paid, payChange(paid, buyer, t0, testLedger), discounted)
	if ch.fault != nil || ch.refusal == nil || ch.refusal.Code != zhifu.TradeHasSuccess {
		t.Errorf("paid trade: got fault %v refusal %v, want TRADE_HAS_SUCCESS", ch.fault, ch.refusal)
	}
}
