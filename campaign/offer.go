package campaign

import (
	"context"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// Payment is one payment a campaign may discount, as the package that
// owns the payment sees it inside the payment's transaction.
type Payment struct {
	Kind    string // zhifu.KindTrade, KindTransfer, KindCardRepayment or KindBillPayment
	Ref     string // the payment's own id: trade number, transfer id, repayment id, bill payment id
	PayerID string // the paying user's id
	// PayeeID is who is paid: the seller's merchant id for a trade, the
	// biller's merchant id for a bill, the recipient's user id for a
	// transfer, the issuing bank's name for a card repayment.
	PayeeID string
	Amount  zhifu.Amount // the full price
	Now     time.Time
}

// Grant is the discount a campaign gives one payment; the zero Grant gives
// none.
type Grant struct {
	CampaignID string
	Label      string       // shown to the payer
	Discount   zhifu.Amount // paid from the budget; the payer pays Amount − Discount
	Budget     int64        // the campaign's budget account
}

// Discounter decides discounts. The owner of a payment calls Offer inside
// the payment's op (its Prepare, with the op's transaction), puts
// DiscountTransfer(g, …) linked before the payer's transfer of
// Amount − Discount, and calls Settle in the op's Finish with whether the
// discount transfer went through. When the ledger refuses it (the budget
// ran short between the decision and the commit), the chain fails and the
// owner pays again without asking for a discount; Settle(ok=false), also
// told when the payer's own part failed, gives the payer's cap back.
type Discounter interface {
	Offer(ctx context.Context, q ledger.Querier, p Payment) (Grant, error)
	Settle(ctx context.Context, q ledger.Querier, p Payment, g Grant, ok bool) error
}

// DiscountTransfer is the transfer that pays grant g's discount of payment
// ref into account credit (where the payer's money goes: the payee's
// wallet, the escrow, the frozen account of a repayment). It is Linked:
// the payer's transfer must follow it in the same submission, so that
// both move or neither does.
func DiscountTransfer(g Grant, ref string, credit int64, ledgerID uint32) ledger.Transfer {
	return ledger.Transfer{ID: DiscountTransferID(ref), DebitAccountID: g.Budget, CreditAccountID: credit,
		Amount: int64(g.Discount), Ledger: ledgerID, Code: zhifu.TransferDiscount, Flags: ledger.Linked,
		UserData: g.CampaignID}
}

// DiscountTransferID is the id of the discount transfer of payment ref;
// the prefix keeps it apart from the payment's own transfer.
func DiscountTransferID(ref string) string { return "disc:" + ref }

// None gives no discounts: the Discounter of a platform without campaigns.
type None struct{}

func (None) Offer(context.Context, ledger.Querier, Payment) (Grant, error) { return Grant{}, nil }
func (None) Settle(context.Context, ledger.Querier, Payment, Grant, bool) error {
	return nil
}

// Ask asks d for payment p's discount and checks what it grants: a
// discount must leave the payer at least a fen to pay and name its budget;
// anything else is a fault of the discounter, not a discount.
func Ask(ctx context.Context, d Discounter, q ledger.Querier, p Payment) (Grant, error) {
	g, err := d.Offer(ctx, q, p)
	if err != nil {
		return Grant{}, fmt.Errorf("campaign: discount of %s %s: %w", p.Kind, p.Ref, err)
	}
	if g.Discount > 0 && (g.Discount >= p.Amount || g.Budget == 0) {
		return Grant{}, fmt.Errorf("campaign: %s offers %s off %s of %s %s from budget %d",
			g.CampaignID, g.Discount, p.Amount, p.Kind, p.Ref, g.Budget)
	}
	return g, nil
}

// Told tells d how grant g's discount transfer fared (result, the first of
// its chain; LinkedEventFailed when the payer's own part failed) and
// reports whether the budget refused it: the owner then pays again
// without a discount. Any other refusal of a discount is a fault.
func Told(ctx context.Context, d Discounter, q ledger.Querier, p Payment, g Grant, result ledger.TransferResult) (budgetShort bool, err error) {
	if g.Discount <= 0 {
		return false, nil
	}
	if err := d.Settle(ctx, q, p, g, result == ledger.TransferOK); err != nil {
		return false, fmt.Errorf("campaign: settle the discount of %s %s: %w", p.Kind, p.Ref, err)
	}
	switch result {
	case ledger.TransferOK, ledger.TransferLinkedEventFailed:
		return false, nil
	case ledger.TransferExceedsCredits:
		return true, nil
	}
	return false, fmt.Errorf("campaign: discount transfer of %s %s: %s", p.Kind, p.Ref, result)
}
