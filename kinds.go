package zhifu

// Payment kinds: what a payer pays for. Every payment carries its kind, and
// the kind is its ledger transfer's code (KindOfTransfer); campaigns are
// scoped to kinds.
const (
	KindTrade         = "trade"          // a merchant's trade, instant or escrow
	KindTransfer      = "transfer"       // user to user
	KindCardRepayment = "card_repayment" // a credit-card bill, paid to the issuing bank (信用卡还款)
	KindBillPayment   = "bill_payment"   // a biller's bill: electricity, water, phone (生活缴费)
)

// PaymentKinds lists every payment kind, in a fixed order.
func PaymentKinds() []string {
	return []string{KindTrade, KindTransfer, KindCardRepayment, KindBillPayment}
}

// ValidKind reports whether k is a payment kind.
func ValidKind(k string) bool {
	_, ok := TransferCodeOfKind(k)
	return ok
}

// TransferCodeOfKind is the code of the ledger transfer that takes a
// payment of kind k from the payer.
func TransferCodeOfKind(k string) (uint16, bool) {
	switch k {
	case KindTrade:
		return TransferPayment, true
	case KindTransfer:
		return TransferP2P, true
	case KindCardRepayment:
		return TransferCardRepayment, true
	case KindBillPayment:
		return TransferBillPayment, true
	}
	return 0, false
}

// KindOfTransfer is the payment kind a transfer code pays, if any.
func KindOfTransfer(code uint16) (string, bool) {
	for _, k := range PaymentKinds() {
		if c, _ := TransferCodeOfKind(k); c == code {
			return k, true
		}
	}
	return "", false
}
