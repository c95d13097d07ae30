package wallet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

const (
	depositTransferPrefix = "deposit:"
	// depositHashedPrefix marks a transfer id made from a reference too
	// long to be spelled out; ':' never follows it, so the two forms never
	// meet.
	depositHashedPrefix = "deposit#"
	// ReferenceLenMax bounds a bank reference.
	ReferenceLenMax = 64
)

// depositTransferID names the ledger transfer of the deposit under
// reference: "deposit:<reference>", readable in the ledger, or, when that
// would exceed ledger.IDLenMax, "deposit#" and a hash of the reference.
// Either way one reference always names one transfer.
func depositTransferID(reference string) string {
	if len(depositTransferPrefix)+len(reference) <= ledger.IDLenMax {
		return depositTransferPrefix + reference
	}
	h := sha256.Sum256([]byte(reference))
	return (depositHashedPrefix + hex.EncodeToString(h[:]))[:ledger.IDLenMax]
}

// Deposit is money a user sent to the platform's account at a bank by
// ordinary bank transfer, confirmed by an operator and credited to the
// user's wallet.
type Deposit struct {
	DepositID string
	UserID    string
	Amount    zhifu.Amount
	Bank      string
	Reference string // the bank's reference: each is credited once
	CreatedAt time.Time
}

// Deposit credits a confirmed bank deposit to a user's wallet. The bank's
// reference is the deposit's identity: the same reference again returns the
// deposit already made (created is false) if user, amount and bank agree,
// and is 409 CONTEXT_INCONSISTENT if they do not. The ledger transfer is
// named after the reference too (depositTransferID), so the money moves
// once even if the rows were ever lost.
func (s *Service) Deposit(ctx context.Context, userID string, amount zhifu.Amount, bank, reference string) (d *Deposit, created bool, err error) {
	bankIndex, ok := zhifu.BankIndex(bank)
	if !ok {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "bank",
			Message: fmt.Sprintf("unknown bank; one of %v", zhifu.Banks)}
	}
	if !printable(reference, 1, ReferenceLenMax) {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "reference",
			Message: fmt.Sprintf("reference must be 1 to %d printable ASCII characters without spaces", ReferenceLenMax)}
	}
	if err := checkAmount(amount); err != nil {
		return nil, false, err
	}
	u, err := s.cfg.Identity.UserByID(ctx, userID)
	if err != nil {
		return nil, false, err
	}
	op := &depositOp{
		d: Deposit{DepositID: s.newID("D"), UserID: u.UserID, Amount: amount, Bank: bank,
			Reference: reference, CreatedAt: s.cfg.Clock.Now().UTC()},
		walletID: zhifu.WalletAccountID(u.Num), settlementID: zhifu.BankSettlementAccountID(bankIndex),
	}
	if err := s.runRepairing(ctx, op, &op.result, u); err != nil {
		return nil, false, fmt.Errorf("deposit: %w", err)
	}
	if op.existing != nil {
		e := op.existing
		if e.UserID != u.UserID || e.Amount != amount || e.Bank != bank {
			return nil, false, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "reference",
				Message: "this reference was already deposited with a different user, amount or bank"}
		}
		return e, false, nil
	}
	switch r := op.result; {
	case r.Succeeded():
		return &op.d, true, nil
	case existsDifferently(r):
		// Someone moved money under this reference's transfer id by hand.
		return nil, false, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "reference",
			Message: "this reference was already credited with different content"}
	default:
		return nil, false, fmt.Errorf("deposit %s: ledger refused: %s", op.d.DepositID, r)
	}
}

// runRepairing runs op and, if the ledger found one of its accounts
// missing, creates the platform's accounts and those of users, and runs it
// once more. *result is where op leaves its transfer's result.
func (s *Service) runRepairing(ctx context.Context, op ledger.Op, result *ledger.TransferResult, users ...*identity.User) error {
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return err
	}
	if *result != ledger.TransferDebitAccountNotFound && *result != ledger.TransferCreditAccountNotFound {
		return nil
	}
	s.cfg.Logger.Warn("wallet: ledger accounts missing; creating them", "result", result.String())
	if err := s.EnsurePlatformAccounts(ctx); err != nil {
		return err
	}
	for _, u := range users {
		if err := s.EnsureUserAccounts(ctx, u); err != nil {
			return err
		}
	}
	return s.cfg.Batcher.Do(ctx, op)
}

// depositOp records a deposit and credits it in one transaction.
type depositOp struct {
	d                      Deposit
	walletID, settlementID int64

	existing *Deposit // the deposit already made under this reference
	result   ledger.TransferResult
}

func (o *depositOp) Keys() []string { return []string{"deposit:" + o.d.Reference} }

func (o *depositOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.existing, o.result = nil, ledger.TransferOK
	e, err := loadDeposit(ctx, tx, o.d.Reference, true)
	if err != nil || e != nil {
		o.existing = e
		return nil, err
	}
	return []ledger.Transfer{{
		ID: depositTransferID(o.d.Reference), DebitAccountID: o.settlementID, CreditAccountID: o.walletID,
		Amount: int64(o.d.Amount), Ledger: identity.CNYLedger, Code: zhifu.TransferDeposit,
	}}, nil
}

func (o *depositOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.existing != nil {
		return nil
	}
	o.result = results[0]
	if !o.result.Succeeded() {
		return nil
	}
	n, err := tx.Exec(ctx, `INSERT INTO deposits (deposit_id, reference, bank, user_id, amount, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		o.d.DepositID, o.d.Reference, o.d.Bank, o.d.UserID, int64(o.d.Amount), o.d.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("insert deposit: %w", err)
	}
	if n == 0 {
		// Another process recorded this reference after we looked (its
		// transfer made ours "exists"): the deposit is theirs.
		o.existing, err = loadDeposit(ctx, tx, o.d.Reference, false)
		if err == nil && o.existing == nil {
			err = errors.New("deposit row vanished")
		}
		return err
	}
	return nil
}

// loadDeposit reads the deposit made under reference, or nil.
func loadDeposit(ctx context.Context, q ledger.Querier, reference string, lock bool) (*Deposit, error) {
	query := `SELECT deposit_id, user_id, amount, bank, created_at FROM deposits WHERE reference = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	d := Deposit{Reference: reference}
	var amount, created int64
	err := q.QueryRow(ctx, query, reference).Scan(&d.DepositID, &d.UserID, &amount, &d.Bank, &created)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load deposit: %w", err)
	}
	d.Amount, d.CreatedAt = zhifu.Amount(amount), time.Unix(0, created).UTC()
	return &d, nil
}

// existsDifferently reports whether r says the transfer id is taken by a
// transfer with other content.
func existsDifferently(r ledger.TransferResult) bool {
	switch r {
	case ledger.TransferExistsWithDifferentFlags, ledger.TransferExistsWithDifferentPendingID,
		ledger.TransferExistsWithDifferentDebitAccountID, ledger.TransferExistsWithDifferentCreditAccountID,
		ledger.TransferExistsWithDifferentAmount, ledger.TransferExistsWithDifferentLedger,
		ledger.TransferExistsWithDifferentCode, ledger.TransferExistsWithDifferentUserData:
		return true
	}
	return false
}

func checkAmount(a zhifu.Amount) error {
	if a < zhifu.AmountMin || a > zhifu.AmountMax {
		return &zhifu.Error{Code: zhifu.InvalidAmount, Param: "amount", Message: "amount must be between 0.01 and 100000000.00"}
	}
	return nil
}

// printable reports whether s is min..max characters of printable ASCII
// other than space.
func printable(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
