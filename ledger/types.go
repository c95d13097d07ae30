package ledger

import "fmt"

// AccountFlags constrain an account's balance.
type AccountFlags uint16

const (
	// DebitsMustNotExceedCredits keeps a credit-normal account (a wallet, a
	// budget) from going below zero: pending plus posted debits may not exceed
	// posted credits.
	DebitsMustNotExceedCredits AccountFlags = 1 << iota
	// CreditsMustNotExceedDebits is the mirror rule for debit-normal accounts.
	CreditsMustNotExceedDebits

	accountFlagsKnown = DebitsMustNotExceedCredits | CreditsMustNotExceedDebits
)

// TransferFlags say what kind of transfer this is.
type TransferFlags uint16

const (
	// Linked chains this transfer to the next one in the same submission: the
	// chain succeeds or fails as a whole.
	Linked TransferFlags = 1 << iota
	// Pending reserves the amount (pending balances) until posted or voided.
	Pending
	// PostPending posts a pending transfer, in full (Amount 0) or in part.
	PostPending
	// VoidPending releases a pending transfer.
	VoidPending

	transferFlagsKnown = Linked | Pending | PostPending | VoidPending
)

// Limits on what the ledger accepts.
const (
	// IDLenMax bounds a transfer id.
	IDLenMax = 64
	// UserDataLenMax bounds the caller's free text on a transfer.
	UserDataLenMax = 128
)

// Account is one account of the chart of accounts. Balances are in the
// ledger's minor unit and only ever change through transfers.
type Account struct {
	ID             int64
	Ledger         uint32 // ISO 4217 numeric currency code
	Code           uint16 // kind of account (wallet, escrow, settlement…), chosen by the caller
	Flags          AccountFlags
	DebitsPending  int64
	DebitsPosted   int64
	CreditsPending int64
	CreditsPosted  int64
	Timestamp      int64 // unix nanoseconds when created
}

// Balance is the posted credit balance: credits minus debits. It is what a
// wallet holder owns; debit-normal accounts (banks) show a negative figure.
func (a Account) Balance() int64 { return a.CreditsPosted - a.DebitsPosted }

// Available is the posted credit balance less pending debits: what a
// credit-normal account can still spend.
func (a Account) Available() int64 { return a.CreditsPosted - a.DebitsPosted - a.DebitsPending }

// Transfer moves Amount from DebitAccountID to CreditAccountID. It is never
// changed once created; a pending transfer is resolved by a second transfer
// that names it in PendingID.
type Transfer struct {
	ID              string
	DebitAccountID  int64
	CreditAccountID int64
	Amount          int64
	PendingID       string // for PostPending and VoidPending
	Ledger          uint32
	Code            uint16 // reason for the transfer, chosen by the caller
	Flags           TransferFlags
	UserData        string

	// Set by the ledger.
	Timestamp     int64 // unix nanoseconds when committed
	DebitBalance  int64 // debit account's Balance() after this transfer
	CreditBalance int64 // credit account's Balance() after this transfer
}

// Entry is one line of an account's history: a transfer seen from one side,
// with the account's posted balance after it.
type Entry struct {
	Seq       int64 // store order; entries of one account are in commit order
	Transfer  Transfer
	AccountID int64
	// Amount is signed from the account's point of view: credits positive,
	// debits negative. Pending and voided transfers move no posted money and
	// are reported with their own flags.
	Amount  int64
	Balance int64
}

// EntryOf turns a stored transfer into account id's entry.
func EntryOf(seq int64, t Transfer, id int64) Entry {
	e := Entry{Seq: seq, Transfer: t, AccountID: id}
	moves := t.Flags&(Pending|VoidPending) == 0
	switch id {
	case t.CreditAccountID:
		e.Balance = t.CreditBalance
		if moves {
			e.Amount = t.Amount
		}
	case t.DebitAccountID:
		e.Balance = t.DebitBalance
		if moves {
			e.Amount = -t.Amount
		}
	}
	return e
}

func (f TransferFlags) String() string { return fmt.Sprintf("%#x", uint16(f)) }
