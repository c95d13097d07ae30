package ledger

// TransferResult is the outcome of one transfer. Checks run in the order of
// the constants below (idempotency first after the transfer's own shape), and
// the first that fails names the result. TransferOK and TransferExists are
// successes: Exists means the same id with the same content was already
// committed and nothing changed.
//
// A post or void may leave accounts, ledger, code and (for a post in full)
// the amount zero, to take them from the pending transfer. When such a
// transfer is replayed, a zero field matches whatever was stored: a replayed
// "post in full" therefore matches a stored partial post of the same id.
// Callers that need to tell the two apart give the amount explicitly.
type TransferResult uint8

const (
	TransferOK TransferResult = iota
	TransferLinkedEventFailed
	TransferLinkedEventChainOpen
	TransferIDMustNotBeEmpty
	TransferIDTooLong
	TransferUserDataTooLong
	TransferFlagsAreMutuallyExclusive
	TransferFlagsUnknown
	TransferPendingIDMustBeEmpty
	TransferPendingIDMustNotBeEmpty
	TransferPendingIDMustBeDifferent
	TransferDebitAccountIDMustNotBeZero
	TransferCreditAccountIDMustNotBeZero
	TransferAccountsMustBeDifferent
	TransferAmountMustNotBeNegative
	TransferAmountMustNotBeZero
	TransferLedgerMustNotBeZero
	TransferCodeMustNotBeZero
	TransferExistsWithDifferentFlags
	TransferExistsWithDifferentPendingID
	TransferExistsWithDifferentDebitAccountID
	TransferExistsWithDifferentCreditAccountID
	TransferExistsWithDifferentAmount
	TransferExistsWithDifferentLedger
	TransferExistsWithDifferentCode
	TransferExistsWithDifferentUserData
	TransferExists
	TransferPendingTransferNotFound
	TransferPendingTransferNotPending
	TransferPendingTransferHasDifferentDebitAccountID
	TransferPendingTransferHasDifferentCreditAccountID
	TransferPendingTransferHasDifferentLedger
	TransferPendingTransferHasDifferentCode
	TransferExceedsPendingTransferAmount
	TransferPendingTransferHasDifferentAmount
	TransferPendingTransferAlreadyPosted
	TransferPendingTransferAlreadyVoided
	TransferDebitAccountNotFound
	TransferCreditAccountNotFound
	TransferAccountsMustHaveTheSameLedger
	TransferMustHaveTheSameLedgerAsAccounts
	TransferOverflowsDebitsPending
	TransferOverflowsCreditsPending
	TransferOverflowsDebitsPosted
	TransferOverflowsCreditsPosted
	TransferOverflowsDebits
	TransferOverflowsCredits
	TransferExceedsCredits
	TransferExceedsDebits
	transferResultCount
)

var transferResultNames = [transferResultCount]string{
	"ok", "linked_event_failed", "linked_event_chain_open", "id_must_not_be_empty", "id_too_long",
	"user_data_too_long", "flags_are_mutually_exclusive", "flags_unknown", "pending_id_must_be_empty",
	"pending_id_must_not_be_empty", "pending_id_must_be_different", "debit_account_id_must_not_be_zero",
	"credit_account_id_must_not_be_zero", "accounts_must_be_different", "amount_must_not_be_negative",
	"amount_must_not_be_zero", "ledger_must_not_be_zero", "code_must_not_be_zero",
	"exists_with_different_flags", "exists_with_different_pending_id",
	"exists_with_different_debit_account_id", "exists_with_different_credit_account_id",
	"exists_with_different_amount", "exists_with_different_ledger", "exists_with_different_code",
	"exists_with_different_user_data", "exists", "pending_transfer_not_found",
	"pending_transfer_not_pending", "pending_transfer_has_different_debit_account_id",
	"pending_transfer_has_different_credit_account_id", "pending_transfer_has_different_ledger",
	"pending_transfer_has_different_code", "exceeds_pending_transfer_amount",
	"pending_transfer_has_different_amount", "pending_transfer_already_posted",
	"pending_transfer_already_voided", "debit_account_not_found", "credit_account_not_found",
	"accounts_must_have_the_same_ledger", "transfer_must_have_the_same_ledger_as_accounts",
	"overflows_debits_pending", "overflows_credits_pending", "overflows_debits_posted",
	"overflows_credits_posted", "overflows_debits", "overflows_credits", "exceeds_credits",
	"exceeds_debits",
}

func (r TransferResult) String() string {
	if r < transferResultCount {
		return transferResultNames[r]
	}
	return "unknown"
}

// Succeeded reports whether the transfer is (now or already) committed.
func (r TransferResult) Succeeded() bool { return r == TransferOK || r == TransferExists }

// AccountResult is the outcome of creating one account, checked in order.
type AccountResult uint8

const (
	AccountOK AccountResult = iota
	AccountIDMustNotBeZero
	AccountFlagsAreMutuallyExclusive
	AccountFlagsUnknown
	AccountLedgerMustNotBeZero
	AccountCodeMustNotBeZero
	AccountBalancesMustBeZero
	AccountExistsWithDifferentFlags
	AccountExistsWithDifferentLedger
	AccountExistsWithDifferentCode
	AccountExists
	accountResultCount
)

var accountResultNames = [accountResultCount]string{
	"ok", "id_must_not_be_zero", "flags_are_mutually_exclusive", "flags_unknown",
	"ledger_must_not_be_zero", "code_must_not_be_zero", "balances_must_be_zero",
	"exists_with_different_flags", "exists_with_different_ledger", "exists_with_different_code", "exists",
}

func (r AccountResult) String() string {
	if r < accountResultCount {
		return accountResultNames[r]
	}
	return "unknown"
}

// Succeeded reports whether the account exists as asked.
func (r AccountResult) Succeeded() bool { return r == AccountOK || r == AccountExists }
