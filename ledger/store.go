package ledger

import (
	"context"
	"sort"
)

// Tx is a store's side of one write transaction. The store locks and loads
// rows and writes back what the rules decided; it decides nothing itself.
type Tx interface {
	// LockAccounts loads the accounts with the given ids, which come sorted
	// ascending, and holds them against other writers until the transaction
	// ends. Ids with no account are absent from the result.
	LockAccounts(ctx context.Context, ids []int64) ([]Account, error)
	// LoadTransfers loads committed transfers by id; unknown ids are absent.
	LoadTransfers(ctx context.Context, ids []string) ([]Transfer, error)
	// LoadResolutions reports which of the given pending transfers have been
	// posted or voided: pending id → PostPending or VoidPending.
	LoadResolutions(ctx context.Context, pendingIDs []string) (map[string]TransferFlags, error)
	// InsertAccounts and InsertTransfers write rows.
	InsertAccounts(ctx context.Context, accounts []Account) error
	InsertTransfers(ctx context.Context, transfers []Transfer) error
	// UpdateAccounts writes the accounts' balances and returns the rows
	// as the database holds them after the write (UPDATE … RETURNING),
	// in any order: the ledger checks them against what it wrote.
	UpdateAccounts(ctx context.Context, accounts []Account) ([]Account, error)
	// Querier runs business statements in the same transaction.
	Querier
}

// LockingLoader is a Tx that can lock accounts and load transfers in one
// step, as LockAccounts then LoadTransfers would: a store that pays a
// round trip per statement (PostgreSQL) sends both at once. The ledger
// uses it when a batch resolves no pending transfer, whose accounts it
// would have to load first.
type LockingLoader interface {
	LockAccountsLoadTransfers(ctx context.Context, accountIDs []int64, transferIDs []string) ([]Account, []Transfer, error)
}

// Store keeps the ledger durably. Package sqlite and package postgres
// implement it; package storetest holds the one test suite both must pass.
type Store interface {
	// Update runs fn in one write transaction and commits it durably. Where
	// the database lets writers conflict (PostgreSQL: a serialisation
	// failure, a deadlock, a duplicate key), Update rolls back and runs fn
	// again from the start, a bounded number of times. SQLite admits one
	// writer at a time and waits for it instead.
	Update(ctx context.Context, fn func(Tx) error) error
	// Reader runs business queries outside any write transaction; they see
	// the last committed state.
	Reader() Querier
	// LookupAccounts and LookupTransfers read committed rows.
	LookupAccounts(ctx context.Context, ids []int64) ([]Account, error)
	LookupTransfers(ctx context.Context, ids []string) ([]Transfer, error)
	// Entries returns up to limit entries of an account, newest first, with
	// Seq below beforeSeq (0 means from the newest).
	Entries(ctx context.Context, accountID int64, beforeSeq int64, limit int) ([]Entry, error)
	// EntriesAfter returns up to limit entries of an account, oldest first,
	// with afterSeq < Seq < beforeSeq (beforeSeq <= 0: no upper bound). A
	// negative limit means no limit, in both.
	EntriesAfter(ctx context.Context, accountID int64, afterSeq, beforeSeq int64, limit int) ([]Entry, error)
	// Snapshot reads every account and the per-account sums of transfers in
	// one consistent read, for the audit.
	Snapshot(ctx context.Context) (Snapshot, error)
	Close() error
}

// Sums are one account's balances recomputed from its transfers.
type Sums struct {
	DebitsPending, DebitsPosted, CreditsPending, CreditsPosted int64
}

// Snapshot is the audit's view of the whole ledger at one instant.
type Snapshot struct {
	Accounts      []Account
	Sums          map[int64]Sums
	TransferCount int64
}

// CreateAccounts creates accounts in one transaction and returns a result
// per account. Creating an account that exists with the same flags, ledger and
// code is AccountExists.
func CreateAccounts(ctx context.Context, st Store, accounts []Account) ([]AccountResult, error) {
	results := make([]AccountResult, len(accounts))
	err := st.Update(ctx, func(tx Tx) error {
		ids := make([]int64, 0, len(accounts))
		for _, a := range accounts {
			ids = append(ids, a.ID)
		}
		existing, err := tx.LockAccounts(ctx, sortedUnique(ids))
		if err != nil {
			return err
		}
		byID := make(map[int64]*Account, len(existing))
		for i := range existing {
			byID[existing[i].ID] = &existing[i]
		}
		var fresh []Account
		// fresh grows in ascending id order, so processes creating
		// overlapping accounts insert in one order and never deadlock.
		order := make([]int, len(accounts))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(x, y int) bool { return accounts[order[x]].ID < accounts[order[y]].ID })
		fresh = make([]Account, 0, len(accounts))
		for _, i := range order {
			a := accounts[i]
			results[i] = CreateAccount(byID[a.ID], a)
			if results[i] == AccountOK {
				fresh = append(fresh, a)
				byID[a.ID] = &fresh[len(fresh)-1]
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		return tx.InsertAccounts(ctx, fresh)
	})
	return results, err
}

// Commit applies several callers' submissions of plain transfers in one
// transaction: it loads and locks every row they touch, runs the rules, and
// writes the result. The store commits durably before Commit returns.
// Submissions are applied in order, as if one after the other.
func Commit(ctx context.Context, st Store, subs [][]Transfer, now int64) ([][]TransferResult, error) {
	ops := make([]Op, len(subs))
	tops := make([]transferOp, len(subs))
	for i := range subs {
		tops[i].transfers = subs[i]
		ops[i] = &tops[i]
	}
	if err := CommitOps(ctx, st, ops, now); err != nil {
		return nil, err
	}
	out := make([][]TransferResult, len(subs))
	for i := range tops {
		out[i] = tops[i].results
	}
	return out, nil
}

// load reads what the submissions touch. Pending transfers are read first to
// learn their accounts; then all accounts are locked in ascending id order, so
// that several processes on one database never deadlock on each other; then
// the transfers' own ids and the pending transfers' resolutions are read
// under those locks.
func load(ctx context.Context, tx Tx, subs [][]Transfer) (*State, error) {
	s := NewState()
	var ids, pendingIDs []string
	var accountIDs []int64
	for _, sub := range subs {
		for _, t := range sub {
			ids = append(ids, t.ID)
			if t.PendingID != "" && t.Flags&resolvingFlags != 0 {
				pendingIDs = append(pendingIDs, t.PendingID)
			}
			accountIDs = appendNonZero(accountIDs, t.DebitAccountID, t.CreditAccountID)
		}
	}
	pendingIDs = sortedUniqueStrings(pendingIDs)
	if len(pendingIDs) > 0 {
		pending, err := tx.LoadTransfers(ctx, pendingIDs)
		if err != nil {
			return nil, err
		}
		for i := range pending {
			p := pending[i]
			s.Transfers[p.ID] = &p
			accountIDs = appendNonZero(accountIDs, p.DebitAccountID, p.CreditAccountID)
		}
	}
	var accounts []Account
	var existing []Transfer
	var err error
	if ll, ok := tx.(LockingLoader); ok && len(pendingIDs) == 0 {
		accounts, existing, err = ll.LockAccountsLoadTransfers(ctx, sortedUnique(accountIDs), sortedUniqueStrings(ids))
		if err != nil {
			return nil, err
		}
	} else {
		if accounts, err = tx.LockAccounts(ctx, sortedUnique(accountIDs)); err != nil {
			return nil, err
		}
		if existing, err = tx.LoadTransfers(ctx, sortedUniqueStrings(ids)); err != nil {
			return nil, err
		}
	}
	s.before = make(map[int64]Account, len(accounts))
	for i := range accounts {
		s.Accounts[accounts[i].ID] = &accounts[i]
		s.before[accounts[i].ID] = accounts[i]
	}
	for i := range existing {
		e := existing[i]
		s.Transfers[e.ID] = &e
	}
	if len(pendingIDs) > 0 {
		if s.Resolved, err = tx.LoadResolutions(ctx, pendingIDs); err != nil {
			return nil, err
		}
		if s.Resolved == nil {
			s.Resolved = make(map[string]TransferFlags)
		}
	}
	return s, nil
}

func appendNonZero(ids []int64, a, b int64) []int64 {
	if a != 0 {
		ids = append(ids, a)
	}
	if b != 0 {
		ids = append(ids, b)
	}
	return ids
}

func sortedUnique(ids []int64) []int64 {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

func sortedUniqueStrings(ids []string) []string {
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if id != "" && (i == 0 || id != ids[i-1]) {
			out = append(out, id)
		}
	}
	return out
}
