package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"zhifu/ledger"
)

// writeTx is the store's side of one ledger write transaction. SQLite's
// write lock, taken by BEGIN IMMEDIATE, already excludes every other writer,
// so locking accounts is a plain read.
type writeTx struct {
	querier
	tx *sql.Tx
}

func (w *writeTx) LockAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	return lookupAccounts(ctx, w.querier, ids)
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

// updateAccountsSQL writes every changed account's balances in one
// statement, from a JSON array of [id, debits pending, debits posted,
// credits pending, credits posted] rows, and returns the rows as written.
// One statement whatever the batch's size: run once per account, the
// update and the read-back the ledger checks were a quarter of the commit
// path's CPU with batches of one transfer per caller.
const updateAccountsSQL = `UPDATE accounts SET debits_pending = v.dpend, debits_posted = v.dpost,
		credits_pending = v.cpend, credits_posted = v.cpost
	FROM (SELECT value->>0 AS id, value->>1 AS dpend, value->>2 AS dpost, value->>3 AS cpend,
		value->>4 AS cpost FROM json_each(?)) AS v
	WHERE accounts.id = v.id
	RETURNING ` + accountColumns

func (w *writeTx) UpdateAccounts(ctx context.Context, accounts []ledger.Account) ([]ledger.Account, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	b := make([]byte, 0, 16+len(accounts)*48)
	b = append(b, '[')
	for i, a := range accounts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, a.ID, 10)
		for _, v := range [...]int64{a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted} {
			b = append(b, ',')
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ']')
	}
	b = append(b, ']')
	rows, err := w.QueryContext(ctx, updateAccountsSQL, string(b))
	if err != nil {
		return nil, fmt.Errorf("sqlite: update accounts: %w", err)
	}
	written, err := scanAccounts(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: update accounts: %w", err)
	}
	return written, nil
}
