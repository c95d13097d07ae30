package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"zhifu/ledger"
)

// writeTx is the store's side of one ledger write transaction. SQLite's
// write lock, taken by BEGIN IMMEDIATE, already excludes every other writer,
// so locking accounts is a plain read.
type writeTx struct {
	querier
	tx    *sql.Tx
	cache *accountCache
	// seen holds the accounts as this transaction read and wrote them:
	// what a guarded UPDATE expects, and what the cache keeps on commit.
	seen map[int64]ledger.Account
}

func (w *writeTx) LockAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	return w.lockAccounts(ctx, ids)
}

func (w *writeTx) LoadTransfers(ctx context.Context, ids []string) ([]ledger.Transfer, error) {
	return lookupTransfers(ctx, w.querier, ids)
}

func (w *writeTx) LoadResolutions(ctx context.Context, pendingIDs []string) (map[string]ledger.TransferFlags, error) {
	rows, err := w.QueryContext(ctx, `SELECT pending_id, flags FROM transfers
		WHERE pending_id IN (SELECT value FROM json_each(?))`, jsonStrings(pendingIDs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: load resolutions: %w", err)
	}
	defer rows.Close()
	out := make(map[string]ledger.TransferFlags)
	for rows.Next() {
		var id string
		var flags ledger.TransferFlags
		if err := rows.Scan(&id, &flags); err != nil {
			return nil, err
		}
		out[id] = flags & (ledger.PostPending | ledger.VoidPending)
	}
	return out, rows.Err()
}

func (w *writeTx) InsertAccounts(ctx context.Context, accounts []ledger.Account) error {
	for _, a := range accounts {
		if _, err := w.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (?,?,?,?,?,?,?,?,?)`,
			a.ID, a.Ledger, a.Code, a.Flags, a.DebitsPending, a.DebitsPosted,
			a.CreditsPending, a.CreditsPosted, a.Timestamp); err != nil {
			return fmt.Errorf("sqlite: insert account %d: %w", a.ID, err)
		}
	}
	return nil
}

const transferColumnCount = 12

// insertTransfersSQL is a multi-row INSERT OR ROLLBACK. The ledger has
// looked every id up under the write lock, so a conflict here is a bug,
// and the whole transaction goes; with the default (ABORT), SQLite would
// keep a statement journal, a copy of every page the statement touches,
// to undo the statement alone: an eighth of the commit path's time with a
// long history.
func insertTransfersSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR ROLLBACK INTO transfers (` + transferColumns + `) VALUES `)
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// insertSQL holds the multi-row INSERT for each power of two of rows up
// to insertChunkRows. A batch of n transfers goes in chunks of those sizes
// (25 as 16, 8 and 1), so that the statements are always the same few and
// the statement cache keeps them, rather than SQLite parsing a statement of
// 12n placeholders on every commit.
var insertSQL = func() map[int]string {
	m := make(map[int]string)
	for n := 1; n <= insertChunkRows; n *= 2 {
		m[n] = insertTransfersSQL(n)
	}
	return m
}()

// insertChunk is the number of rows of the next chunk of a batch of n.
func insertChunk(n int) int {
	c := 1
	for c*2 <= n && c*2 <= insertChunkRows {
		c *= 2
	}
	return c
}

func (w *writeTx) InsertTransfers(ctx context.Context, transfers []ledger.Transfer) error {
	args := make([]any, 0, min(len(transfers), insertChunkRows)*transferColumnCount)
	for len(transfers) > 0 {
		n := insertChunk(len(transfers))
		args = args[:0]
		for _, t := range transfers[:n] {
			var pending any
			if t.PendingID != "" {
				pending = t.PendingID
			}
			args = append(args, t.ID, t.DebitAccountID, t.CreditAccountID, t.Amount, pending, t.Ledger,
				t.Code, t.Flags, t.UserData, t.Timestamp, t.DebitBalance, t.CreditBalance)
		}
		if _, err := w.ExecContext(ctx, insertSQL[n], args...); err != nil {
			return fmt.Errorf("sqlite: insert transfers: %w", err)
		}
		transfers = transfers[n:]
	}
	return nil
}

// UpdateAccounts writes each account's balances with one kept statement,
// then reads the rows back in the same transaction. Both ways of having
// the update return its rows were slower here (measured with the ledger
// benchmark, 512 callers of one transfer, alternated): UPDATE … RETURNING
// a row at a time by a fifth, as SQLite gathers a RETURNING statement's
// rows in a table of its own before the first is read; one
// UPDATE … FROM json_each for the whole batch by a tenth, as SQLite parses
// the JSON text again for every value it takes out.
func (w *writeTx) UpdateAccounts(ctx context.Context, accounts []ledger.Account) ([]ledger.Account, error) {
	ids := make([]int64, len(accounts))
	for i, a := range accounts {
		b, ok := w.seen[a.ID]
		if !ok {
			return nil, fmt.Errorf("sqlite: update account %d: not locked in this transaction", a.ID)
		}
		res, err := w.ExecContext(ctx, guardedUpdateSQL,
			a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted, a.ID,
			b.DebitsPending, b.DebitsPosted, b.CreditsPending, b.CreditsPosted)
		if err != nil {
			return nil, fmt.Errorf("sqlite: update account %d: %w", a.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return nil, fmt.Errorf("sqlite: update account %d: %w", a.ID, errStaleAccount)
		}
		ids[i] = a.ID
	}
	slices.Sort(ids)
	written, err := lookupAccounts(ctx, w.querier, ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read back accounts: %w", err)
	}
	for _, a := range written {
		w.seen[a.ID] = a
	}
	return written, nil
}
