package zhifu

import (
	"errors"
	"fmt"
)

// Error codes of the public API. The HTTP status of each is decided in one
// table in package http.
const (
	InvalidRequest        = "INVALID_REQUEST"
	InvalidAmount         = "INVALID_AMOUNT"
	BuyerBalanceNotEnough = "BUYER_BALANCE_NOT_ENOUGH"
	BalanceNotEnough      = "BALANCE_NOT_ENOUGH"
	RefundAmountExceeded  = "REFUND_AMOUNT_EXCEEDED"
	LimitExceeded         = "LIMIT_EXCEEDED"
	Unauthorized          = "UNAUTHORIZED"
	InvalidSignature      = "INVALID_SIGNATURE"
	NotFound              = "NOT_FOUND"
	CardNotFound          = "CARD_NOT_FOUND"
	ContextInconsistent   = "CONTEXT_INCONSISTENT"
	IdempotencyKeyInUse   = "IDEMPOTENCY_KEY_IN_USE"
	TradeHasSuccess       = "TRADE_HAS_SUCCESS"
	TradeHasClose         = "TRADE_HAS_CLOSE"
	TradeStatusError      = "TRADE_STATUS_ERROR"
	RequestTooLarge       = "REQUEST_TOO_LARGE"
	IdempotencyKeyReused  = "IDEMPOTENCY_KEY_REUSED"
	RateLimited           = "RATE_LIMITED"
	SystemError           = "SYSTEM_ERROR"
	SystemBusy            = "SYSTEM_BUSY"
	Maintenance           = "MAINTENANCE"
	ChannelUnavailable    = "CHANNEL_UNAVAILABLE"
	// Forbidden is an extension for operators: an action this operator may
	// not take, such as approving what they proposed themselves.
	Forbidden = "FORBIDDEN"
	// LedgerRejected is an extension for the operator's ledger endpoints: a
	// transfer the ledger refused; the message names the ledger's result code.
	LedgerRejected = "LEDGER_REJECTED"
)

// Error is the application's one error type: a code from the list above, a
// message safe to show the caller, and optionally the offending parameter.
type Error struct {
	Code    string
	Message string
	Param   string
}

func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Param)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an *Error anywhere in err's chain, or
// SYSTEM_ERROR for any other error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return SystemError
}
