package billpay

import (
	"context"
	"fmt"
	"slices"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/ledger"
)

// AccountNoLenMax bounds the payer's account number with a biller.
const AccountNoLenMax = 32

// transferPrefix names a bill payment's ledger transfer:
// "billpay:<payment_id>".
const transferPrefix = "billpay:"

// PayParams are a user's bill payment.
type PayParams struct {
	BillerID  string
	AccountNo string
	Amount    zhifu.Amount
	// IdempotencyKey, when set, names the payment: the payment id derives
	// from it and the payer, and the same key again finds the payment
	// instead of paying twice; for a different payment it is 409
	// CONTEXT_INCONSISTENT.
	IdempotencyKey string
}

// Pay pays a bill from u's wallet to the biller's, at once and entirely or
// not at all. created is false when the Idempotency-Key found the payment
// made before.
//
// The Discounter is asked inside the payment's transaction; a discount
// moves from the campaign's budget to the biller, linked before the
// payer's transfer of Amount − Discount, so both move or neither does. If
// the budget ran short by the commit, the payment is made again without a
// discount.
func (s *Service) Pay(ctx context.Context, u *identity.User, p PayParams) (pay *Payment, created bool, err error) {
	if !validAccountNo(p.AccountNo) {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "account_no",
			Message: fmt.Sprintf("account_no must be 1 to %d letters, digits or '-'", AccountNoLenMax)}
	}
	if p.Amount < zhifu.AmountMin || p.Amount > zhifu.AmountMax {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidAmount, Param: "amount",
			Message: "amount must be between 0.01 and 100000000.00"}
	}
	b, err := s.biller(ctx, p.BillerID, "biller_id")
	if err != nil {
		return nil, false, err
	}
	if b.UserID == u.UserID {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "biller_id",
			Message: "cannot pay a bill to your own wallet"}
	}
	payee, err := s.cfg.Identity.UserByID(ctx, b.UserID)
	if err != nil {
		return nil, false, fmt.Errorf("billpay: biller %s's wallet: %w", b.MerchantID, err)
	}
	now := s.cfg.Clock.Now().UTC()
	id := zhifu.NewID("BP", now)
	if p.IdempotencyKey != "" {
		id = zhifu.KeyedID("BP", u.UserID, p.IdempotencyKey)
		e, err := loadPayment(ctx, s.cfg.Store.Reader(), id, false)
		if err != nil {
			return nil, false, err
		}
		if e != nil {
			return samePayment(e, u, p)
		}
	}
	pay = &Payment{PaymentID: id, UserID: u.UserID, BillerID: b.MerchantID, AccountNo: p.AccountNo, Amount: p.Amount,
		Status: StatusSuccess, CreatedAt: now}
	op := &payOp{svc: s, p: pay, payer: zhifu.WalletAccountID(u.Num), payee: zhifu.WalletAccountID(payee.Num),
		discount: true}
	if err := s.run(ctx, op, u, payee); err != nil {
		return nil, false, err
	}
	if op.budgetShort {
		// The budget ran out between the offer and the commit: nothing
		// moved, and the bill is paid at full price.
		op = &payOp{svc: s, p: pay, payer: op.payer, payee: op.payee}
		if err := s.run(ctx, op, u, payee); err != nil {
			return nil, false, err
		}
	}
	if op.existing != nil {
		return samePayment(op.existing, u, p)
	}
	switch r := op.result; r {
	case ledger.TransferOK:
		return pay, true, nil
	case ledger.TransferExceedsCredits:
		return nil, false, &zhifu.Error{Code: zhifu.BalanceNotEnough, Param: "amount", Message: "available balance is not enough"}
	case ledger.TransferOverflowsCredits, ledger.TransferOverflowsCreditsPosted:
		return nil, false, &zhifu.Error{Code: zhifu.LimitExceeded, Param: "amount", Message: "the biller's balance cannot grow by this much"}
	default:
		return nil, false, fmt.Errorf("billpay: %s: ledger refused: %s", pay.PaymentID, r)
	}
}

// run commits op in the payments lane and, if the ledger found one of its
// wallets missing, creates the accounts and commits it once more.
func (s *Service) run(ctx context.Context, op *payOp, users ...*identity.User) error {
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return fmt.Errorf("bill payment: %w", err)
	}
	if op.result != ledger.TransferDebitAccountNotFound && op.result != ledger.TransferCreditAccountNotFound {
		return nil
	}
	if s.cfg.Wallet == nil {
		return nil
	}
	s.cfg.Logger.Warn("billpay: ledger accounts missing; creating them", "result", op.result.String())
	for _, u := range users {
		if err := s.cfg.Wallet.EnsureUserAccounts(ctx, u); err != nil {
			return err
		}
	}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return fmt.Errorf("bill payment: %w", err)
	}
	return nil
}

func samePayment(e *Payment, u *identity.User, p PayParams) (*Payment, bool, error) {
	if e.UserID != u.UserID || e.BillerID != p.BillerID || e.AccountNo != p.AccountNo || e.Amount != p.Amount {
		return nil, false, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "Idempotency-Key",
			Message: "this Idempotency-Key was already used for a different bill payment"}
	}
	return e, false, nil
}

func validAccountNo(s string) bool {
	if len(s) == 0 || len(s) > AccountNoLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// payOp pays one bill and writes its row, in one transaction.
type payOp struct {
	svc          *Service
	p            *Payment
	payer, payee int64 // wallet accounts
	// discount: ask the Discounter (the first attempt).
	discount bool

	existing    *Payment
	grant       campaign.Grant
	result      ledger.TransferResult
	budgetShort bool
}

func (o *payOp) Keys() []string { return []string{"billpay:" + o.p.PaymentID} }

func (o *payOp) payment() campaign.Payment {
	return campaign.Payment{Kind: zhifu.KindBillPayment, Ref: o.p.PaymentID, PayerID: o.p.UserID,
		PayeeID: o.p.BillerID, Amount: o.p.Amount, Now: o.p.CreatedAt}
}

func (o *payOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.existing, o.grant, o.result, o.budgetShort = nil, campaign.Grant{}, ledger.TransferOK, false
	o.p.Discount, o.p.CampaignID, o.p.Label = 0, "", ""
	e, err := loadPayment(ctx, tx, o.p.PaymentID, true)
	if err != nil || e != nil {
		o.existing = e
		return nil, err
	}
	var trs []ledger.Transfer
	if o.discount {
		g, err := campaign.Ask(ctx, o.svc.cfg.Discounter, tx, o.payment())
		if err != nil {
			return nil, err
		}
		if g.Discount > 0 {
			o.grant = g
			o.p.Discount, o.p.CampaignID, o.p.Label = g.Discount, g.CampaignID, g.Label
			trs = append(trs, campaign.DiscountTransfer(g, o.p.PaymentID, o.payee, o.svc.ledgerID))
		}
	}
	return append(trs, ledger.Transfer{ID: transferPrefix + o.p.PaymentID, DebitAccountID: o.payer,
		CreditAccountID: o.payee, Amount: int64(o.p.PayerAmount()), Ledger: o.svc.ledgerID,
		Code: zhifu.TransferBillPayment, UserData: o.p.AccountNo}), nil
}

func (o *payOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.existing != nil {
		return nil
	}
	if slices.Contains(results, ledger.TransferExists) {
		// Another process paid it under the same key after Prepare
		// looked, and committed first: the payment is theirs.
		e, err := loadPayment(ctx, tx, o.p.PaymentID, false)
		if err != nil || e != nil {
			o.existing = e
			return err
		}
		return fmt.Errorf("billpay: %s: transfer exists without its row", o.p.PaymentID)
	}
	if o.grant.Discount > 0 {
		short, err := campaign.Told(ctx, o.svc.cfg.Discounter, tx, o.payment(), o.grant, results[0])
		if err != nil || short {
			o.budgetShort = short
			return err
		}
	}
	o.result = results[len(results)-1]
	if o.result != ledger.TransferOK {
		return nil
	}
	inserted, err := insertPayment(ctx, tx, o.p)
	if err != nil {
		return err
	}
	if !inserted {
		// Another process recorded it after Prepare looked; its transfer
		// would have made ours "exists", so this cannot commit.
		return fmt.Errorf("billpay: %s recorded concurrently", o.p.PaymentID)
	}
	return nil
}
