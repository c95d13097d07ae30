package wallet

import (
	"context"
	"fmt"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// capitalTransferPrefix names the transfer of a capital injection after
// its bank reference.
const capitalTransferPrefix = "capital:"

// Capital is the platform's own money arriving at a bank: its capital,
// what pays for campaigns' discounts and covers losses. It is own funds,
// never a customer's.
type Capital struct {
	Bank      string
	Amount    zhifu.Amount
	Reference string
}

// AddCapital records amount of the platform's own money at bank, once per
// bank reference: bank settlement → own funds. The same reference again
// answers the capital already recorded if bank and amount agree, and is
// 409 CONTEXT_INCONSISTENT if they do not.
func (s *Service) AddCapital(ctx context.Context, amount zhifu.Amount, bank, reference string) (*Capital, error) {
	i, ok := zhifu.BankIndex(bank)
	if !ok {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "bank",
			Message: fmt.Sprintf("unknown bank; one of %v", zhifu.Banks)}
	}
	if !printable(reference, 1, ReferenceLenMax) {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "reference",
			Message: fmt.Sprintf("reference must be 1 to %d printable ASCII characters without spaces", ReferenceLenMax)}
	}
	if err := checkAmount(amount); err != nil {
		return nil, err
	}
	op := &transferOp{t: ledger.Transfer{ID: capitalTransferPrefix + reference,
		DebitAccountID: zhifu.BankSettlementAccountID(i), CreditAccountID: zhifu.OwnFundsAccountID,
		Amount: int64(amount), Ledger: identity.CNYLedger, Code: zhifu.TransferCapital, UserData: reference}}
	if err := s.runRepairing(ctx, op, &op.result); err != nil {
		return nil, fmt.Errorf("capital: %w", err)
	}
	switch r := op.result; {
	case r == ledger.TransferOK || r == ledger.TransferExists:
		return &Capital{Bank: bank, Amount: amount, Reference: reference}, nil
	case existsDifferently(r):
		return nil, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "reference",
			Message: "this reference was already recorded with a different bank or amount"}
	default:
		return nil, fmt.Errorf("capital %s: ledger refused: %s", reference, r)
	}
}
