package channel

import (
	"context"
	"io"

	"zhifu/bankapi"
)

// Bank is one bank as the channels speak to it: the calls of the protocol
// in package bankapi. bankapi.Client implements it over HTTP; an adapter of
// a bank that speaks another protocol implements it by translating, and
// must keep its promises:
//
//   - Debit and Credit are safe to repeat with the same request: the
//     bank moves the money once per RequestID.
//   - An answer of the bank other than success is a *bankapi.APIError; a
//     503 with CodeSystemBusy, CodeBankUnavailable or CodeMaintenance
//     promises the bank did nothing with the request, a 404 from Inquire
//     that it never received it, a 400 that it refused the request as
//     invalid. Any other error means the outcome is unknown.
//   - VerifyCallback authenticates a callback (header is the value of
//     bankapi.SignatureHeader) and decodes the transaction it reports.
type Bank interface {
	VerifyCard(ctx context.Context, cardNo, holder string) (bankapi.Card, error)
	Debit(ctx context.Context, req bankapi.TxnRequest) (bankapi.Transaction, error)
	Credit(ctx context.Context, req bankapi.TxnRequest) (bankapi.Transaction, error)
	Inquire(ctx context.Context, requestID string) (bankapi.Transaction, error)
	Statement(ctx context.Context, date string) (bankapi.Statement, error)
	// OpenStatement starts reading the statement of date as it streams in,
	// in bankapi's statement format, for days too long to hold at once;
	// the caller closes it.
	OpenStatement(ctx context.Context, date string) (io.ReadCloser, error)
	Maintenance(ctx context.Context) (bankapi.MaintenanceNotice, error)
	EbankURL(requestID string, amount int64, returnURL, callbackURL string) string
	VerifyCallback(header string, body []byte) (bankapi.Transaction, error)
	// Probe asks the bank something that moves no money, to learn whether
	// it answers: nil, or an error the bank answered with for the
	// request's own sake (4xx), means it does.
	Probe(ctx context.Context) error
}

var _ Bank = (*bankapi.Client)(nil)

// BankBooks is a bank's own account of the platform's money there, for
// the custody check: what the bank says, not what the platform recorded.
type BankBooks struct {
	// Settlement is the platform's settlement balance at the bank, fen.
	Settlement int64
	// Debited and Credited sum the bank's successful debits (top-ups) and
	// credits (payouts) for the platform, fen.
	Debited, Credited int64
	// Unbalanced, when not nil, is the bank's own finding that its books
	// do not balance.
	Unbalanced error
}
