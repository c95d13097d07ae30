package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"zhifu/ledger"
)

// The writer's copy of the accounts never stands in for the database:
// another handle's commit empties it, and a change it cannot see (a
// statement of the writer's own outside the ledger) fails the next batch
// that touches the account, writes nothing from the copy, and the batch
// after reads the database again.
func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const bankID, walletID = 1, 2
	if _, err := ledger.CreateAccounts(ctx, a, []ledger.Account{{ID: bankID, Ledger: 156, Code: 10},
		{ID: walletID, Ledger: 156, Code: 1, Flags: ledger.DebitsMustNotExceedCredits}}); err != nil {
		t.Fatal(err)
	}
	move := func(st ledger.Store, id string, amount int64) error {
		res, err := ledger.Commit(ctx, st, [][]ledger.Transfer{{{ID: id, DebitAccountID: bankID, CreditAccountID: walletID,
			Amount: amount, Ledger: 156, Code: 1}}}, 1)
		if err == nil && res[0][0] != ledger.TransferOK {
			t.Fatalf("%s: %v", id, res[0][0])
		}
		return err
	}
	balance := func() int64 {
		as, err := a.LookupAccounts(ctx, []int64{walletID})
		if err != nil || len(as) != 1 {
			t.Fatalf("lookup: %v %v", as, err)
		}
		return as[0].CreditsPosted
	}
	cached := func(st *DB) bool {
		st.accounts.mu.Lock()
		defer st.accounts.mu.Unlock()
		_, ok := st.accounts.m[walletID]
		return ok
	}

	if err := move(a, "a1", 10); err != nil {
		t.Fatal(err)
	}
	if !cached(a) {
		t.Fatal("the account a batch wrote is not kept")
	}
	// Another handle (as another process would) commits: a's copy goes.
	if err := move(b, "b1", 5); err != nil {
		t.Fatal(err)
	}
	if err := move(a, "a2", 1); err != nil {
		t.Fatal(err)
	}
	if got := balance(); got != 16 {
		t.Fatalf("balance after writes through two handles: %d, want 16", got)
	}

	// A change on a's own connection, which data_version does not show.
	if err := a.Update(ctx, func(tx ledger.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE accounts SET credits_posted = credits_posted + 100 WHERE id = ?`, walletID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = move(a, "a3", 1)
	if !errors.Is(err, errStaleAccount) {
		t.Fatalf("batch over a stale copy: %v, want %v", err, errStaleAccount)
	}
	if got := balance(); got != 116 {
		t.Fatalf("balance after the refused batch: %d, want 116 (nothing written)", got)
	}
	if cached(a) {
		t.Fatal("the copy is kept after a refused batch")
	}
	if err := move(a, "a3", 1); err != nil {
		t.Fatalf("the batch after: %v", err)
	}
	if got := balance(); got != 117 {
		t.Fatalf("balance: %d, want 117", got)
	}
}
