package bankapi

import (
	"time"
)

// VerifyRequest is the body of POST /banks/{bank}/cards/verify.
type VerifyRequest struct {
	CardNo string `json:"card_no"`
	Holder string `json:"holder"`
}

// Card is the answer to a verify: the bank's token for the card and its
// last four digits, all the platform may keep.
type Card struct {
	Bank      string `json:"bank"`
	CardToken string `json:"card_token"`
	Last4     string `json:"last4"`
}

// TxnRequest is the body of POST /banks/{bank}/debits and /credits.
type TxnRequest struct {
	RequestID   string `json:"request_id"`
	CardToken   string `json:"card_token"`
	Amount      int64  `json:"amount"` // fen
	CallbackURL string `json:"callback_url,omitempty"`
}

// Transaction is a debit or credit as the bank sees it: the answer to a
// debit, credit or inquiry, and the body of a callback.
type Transaction struct {
	RequestID string     `json:"request_id"`
	Bank      string     `json:"bank"`
	Kind      string     `json:"kind"`
	Status    string     `json:"status"`
	Amount    int64      `json:"amount"` // fen
	BankTxnID string     `json:"bank_txn_id,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SettledAt *time.Time `json:"settled_at,omitempty"`
}

// MaintenanceNotice is the answer to GET /banks/{bank}/maintenance.
type MaintenanceNotice struct {
	Windows []Window `json:"windows"`
}

// Window is a maintenance window [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// ErrorBody is every error answer of a bank: {"error","message"} and, for
// CodeMaintenance, "until".
type ErrorBody struct {
	Error   string     `json:"error"`
	Message string     `json:"message"`
	Until   *time.Time `json:"until,omitempty"`
}

// Kinds of transaction.
const (
	KindDebit  = "debit"  // card → the platform's settlement account
	KindCredit = "credit" // settlement account → card (a payout)
)

// Statuses of a transaction.
const (
	StatusAccepted = "ACCEPTED" // received; the outcome comes later
	StatusSuccess  = "SUCCESS"
	StatusFailed   = "FAILED"
)

// Reasons a transaction failed.
const (
	ReasonInsufficientFunds      = "INSUFFICIENT_FUNDS"
	ReasonSettlementInsufficient = "SETTLEMENT_INSUFFICIENT"
	ReasonCardNotFound           = "CARD_NOT_FOUND"
	ReasonBankError              = "BANK_ERROR"
	ReasonAmountOverflow         = "AMOUNT_OVERFLOW"
)

// Error codes of the bank API.
const (
	CodeInvalidRequest    = "INVALID_REQUEST"
	CodeInvalidCard       = "INVALID_CARD"
	CodeHolderMismatch    = "HOLDER_MISMATCH"
	CodeInvalidSignature  = "INVALID_SIGNATURE"
	CodeNotFound          = "NOT_FOUND"
	CodeRequestIDConflict = "REQUEST_ID_CONFLICT"
	CodeRequestTooLarge   = "REQUEST_TOO_LARGE"
	CodeSystemError       = "SYSTEM_ERROR"
	CodeSystemBusy        = "SYSTEM_BUSY"
	CodeBankUnavailable   = "BANK_UNAVAILABLE"
	CodeMaintenance       = "MAINTENANCE"
)

// Limits of the protocol's fields.
const (
	// RequestIDLenMax bounds a request_id: 1 to 64 characters of
	// [A-Za-z0-9._:-].
	RequestIDLenMax = 64
	// CallbackURLLenMax bounds callback_url and return_url.
	CallbackURLLenMax = 1024
)

// ValidRequestID reports whether id is a request_id the protocol allows.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > RequestIDLenMax {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Beijing is UTC+8, the banks' business day: statements are by Beijing
// date, and times in answers are given in it. A fixed zone needs no tzdata.
var Beijing = time.FixedZone("CST", 8*60*60)
