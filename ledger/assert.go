package ledger

import (
	"context"
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

// assertWritten reads back, in the same transaction, the accounts the batch
// wrote and checks the store holds exactly those balances.
func assertWritten(ctx context.Context, tx Tx, changed []Account) error {
	ids := make([]int64, len(changed))
	for i, a := range changed {
		ids[i] = a.ID
	}
	got, err := tx.LockAccounts(ctx, ids)
	if err != nil {
		return fmt.Errorf("read back accounts: %w", err)
	}
	if len(got) != len(changed) {
		panic(fmt.Sprintf("ledger: wrote %d accounts, read back %d", len(changed), len(got)))
	}
	byID := make(map[int64]Account, len(got))
	for _, a := range got {
		byID[a.ID] = a
	}
	for _, want := range changed {
		if g := byID[want.ID]; g != want {
			panic(fmt.Sprintf("ledger: account %d reads back as %+v after writing %+v", want.ID, g, want))
		}
	}
	return nil
}
