package ledger

import (
	"fmt"
)

// Paired assertions around every commit (TigerBeetle's TIGER_STYLE): what a
// batch is about to write must balance, and what the store then holds must
// be what was written. Either failing is a bug in the rules or the store,
// never a bad request, and the process stops rather than commit a ledger it
// cannot vouch for.

// assertBalanced checks that the batch's changes to accounts balance: over
// the accounts it changed, debits grew exactly as much as credits, posted
// and pending alike. Every transfer debits one account and credits another
// by one amount, so anything else means the rules lost or made money.
func assertBalanced(before map[int64]Account, changed []Account) {
	var debitsPosted, creditsPosted, debitsPending, creditsPending int64
	for _, a := range changed {
		b, ok := before[a.ID]
		if !ok {
			panic(fmt.Sprintf("ledger: account %d changed without being loaded", a.ID))
		}
		assertAccount(&a)
		debitsPosted += a.DebitsPosted - b.DebitsPosted
		creditsPosted += a.CreditsPosted - b.CreditsPosted
		debitsPending += a.DebitsPending - b.DebitsPending
		creditsPending += a.CreditsPending - b.CreditsPending
	}
	if debitsPosted != creditsPosted || debitsPending != creditsPending {
		panic(fmt.Sprintf("ledger: batch does not balance: posted %+d/%+d, pending %+d/%+d",
			debitsPosted, creditsPosted, debitsPending, creditsPending))
	}
}

// assertWritten checks that the store holds exactly the balances the batch
// wrote: written is what its update returned of the rows it changed (the
// database's own rows after the write, in the same statement, so that a
// statement that set the wrong columns, or missed a row, is caught without
// reading every account a second time).
func assertWritten(changed, written []Account) {
	if len(written) != len(changed) {
		panic(fmt.Sprintf("ledger: wrote %d accounts, read back %d", len(changed), len(written)))
	}
	byID := make(map[int64]Account, len(written))
	for _, a := range written {
		byID[a.ID] = a
	}
	for _, want := range changed {
		if g := byID[want.ID]; g != want {
			panic(fmt.Sprintf("ledger: account %d reads back as %+v after writing %+v", want.ID, g, want))
		}
	}
}
