package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"zhifu/ledger"
)

// writeTx is the store's side of one ledger write transaction. Unlike
// SQLite, PostgreSQL lets several writers in at once, so LockAccounts takes
// row locks (FOR UPDATE, in ascending id order) that last until the
// transaction ends. Under READ COMMITTED every later statement sees what the
// writers that held those locks before committed. Every method first sends
// the Writes the pipeline holds, so statements run in the order made.
type writeTx struct {
	querier
	tx *lazyTx
}

func (w *writeTx) LockAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	out, _, err := w.LockAccountsLoadTransfers(ctx, ids, nil)
	return out, err
}

func (w *writeTx) LoadTransfers(ctx context.Context, ids []string) ([]ledger.Transfer, error) {
	_, out, err := w.LockAccountsLoadTransfers(ctx, nil, ids)
	return out, err
}

// LockAccountsLoadTransfers sends the held Writes, the accounts' lock and
// the transfers' look-up in one round trip (ledger.LockingLoader).
func (w *writeTx) LockAccountsLoadTransfers(ctx context.Context, accountIDs []int64, transferIDs []string) ([]ledger.Account, []ledger.Transfer, error) {
	var accounts []ledger.Account
	var transfers []ledger.Transfer
	var qs []piped
	if len(accountIDs) > 0 {
		// Ascending and unique: rows are locked in array order, and every
		// process locking in one order is what keeps them from deadlocking.
		qs = append(qs, piped{lockAccountsSQL, []any{sortedUniqueInts(accountIDs)},
			readInto(&accounts, scanAccounts, "load accounts")})
	}
	if len(transferIDs) > 0 {
		qs = append(qs, piped{lookupTransfersSQL, []any{uniqueStrings(transferIDs)},
			readInto(&transfers, scanTransfers, "load transfers")})
	}
	if err := w.p.flushWith(ctx, qs...); err != nil {
		return nil, nil, err
	}
	return accounts, transfers, nil
}

// readInto is a piped statement's reader that keeps what scan made of its
// rows in *out.
func readInto[T any](out *[]T, scan func(pgx.Rows) ([]T, error), what string) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("postgres: %s: %w", what, err)
		}
		*out = v
		return nil
	}
}

func (w *writeTx) LoadResolutions(ctx context.Context, pendingIDs []string) (map[string]ledger.TransferFlags, error) {
	if err := w.p.flush(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]ledger.TransferFlags)
	if len(pendingIDs) == 0 {
		return out, nil
	}
	rows, err := w.tx.Query(ctx, lookupResolutionsSQL, pendingIDs)
	if err != nil {
		return nil, fmt.Errorf("postgres: load resolutions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var flags int64
		if err := rows.Scan(&id, &flags); err != nil {
			return nil, fmt.Errorf("postgres: load resolutions: %w", err)
		}
		out[id] = ledger.TransferFlags(flags) & (ledger.PostPending | ledger.VoidPending)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: load resolutions: %w", err)
	}
	return out, nil
}

// InsertAccounts inserts with one statement over arrays, in ascending id
// order so that two processes creating overlapping sets of accounts wait on
// each other rather than deadlock. A duplicate id fails with
// unique_violation, which makes Update run the transaction again.
func (w *writeTx) InsertAccounts(ctx context.Context, accounts []ledger.Account) error {
	w.p.wrote()
	if err := w.p.flush(ctx); err != nil {
		return err
	}
	if len(accounts) == 0 {
		return nil
	}
	n := len(accounts)
	id, ledgerID, code, flags := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	dpend, dpost, cpend, cpost, ts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, a := range accounts {
		id[i], ledgerID[i], code[i], flags[i] = a.ID, int64(a.Ledger), int64(a.Code), int64(a.Flags)
		dpend[i], dpost[i], cpend[i], cpost[i], ts[i] = a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted, a.Timestamp
	}
	if _, err := w.tx.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
			$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) ORDER BY 1`,
		id, ledgerID, code, flags, dpend, dpost, cpend, cpost, ts); err != nil {
		return fmt.Errorf("postgres: insert accounts: %w", err)
	}
	return nil
}

var transferColumnNames = []string{"id", "debit_account_id", "credit_account_id", "amount", "pending_id",
	"ledger", "code", "flags", "user_data", "ts", "debit_balance", "credit_balance"}

// Limits.
const (
	// insertPipelinedMax is the most transfers InsertTransfers sends as
	// one INSERT held with the transaction's Writes; more go by COPY,
	// faster for many rows but a round trip of its own.
	insertPipelinedMax = 512
)

// insertTransfersSQL inserts a batch's transfers from arrays, in array
// order (seq follows it).
const insertTransfersSQL = `INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, pending_id,
		ledger, code, flags, user_data, ts, debit_balance, credit_balance)
	SELECT id, debit_account_id, credit_account_id, amount, pending_id, ledger, code, flags, user_data, ts,
		debit_balance, credit_balance
	FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[],
		$8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[])
		WITH ORDINALITY AS v(id, debit_account_id, credit_account_id, amount, pending_id, ledger, code, flags,
			user_data, ts, debit_balance, credit_balance, n)
	ORDER BY n`

// InsertTransfers inserts the transfers; seq is assigned in slice order.
// A batch of up to insertPipelinedMax is one INSERT over arrays, held
// with the Writes and sent with the transaction's next statement (the
// balances' update); a larger one goes by COPY, the fastest way into
// PostgreSQL. A duplicate id or pending_id fails with unique_violation,
// which makes Update run the transaction again.
func (w *writeTx) InsertTransfers(ctx context.Context, transfers []ledger.Transfer) error {
	w.p.wrote()
	if len(transfers) == 0 {
		return nil
	}
	if len(transfers) <= insertPipelinedMax {
		n := len(transfers)
		id, pending, userData := make([]string, n), make([]*string, n), make([]string, n)
		debit, credit, amount, ledgerID := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		code, flags, ts, dbal, cbal := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for i := range transfers {
			t := &transfers[i]
			id[i], debit[i], credit[i], amount[i] = t.ID, t.DebitAccountID, t.CreditAccountID, t.Amount
			if t.PendingID != "" {
				pending[i] = &t.PendingID
			}
			ledgerID[i], code[i], flags[i], userData[i] = int64(t.Ledger), int64(t.Code), int64(t.Flags), t.UserData
			ts[i], dbal[i], cbal[i] = t.Timestamp, t.DebitBalance, t.CreditBalance
		}
		return w.p.queue(ctx, int64(n), insertTransfersSQL,
			[]any{id, debit, credit, amount, pending, ledgerID, code, flags, userData, ts, dbal, cbal})
	}
	if err := w.p.flush(ctx); err != nil {
		return err
	}
	// CopyFrom encodes each row before asking for the next, so one slice
	// serves every row.
	row := make([]any, len(transferColumnNames))
	src := pgx.CopyFromSlice(len(transfers), func(i int) ([]any, error) {
		t := &transfers[i]
		var pending any
		if t.PendingID != "" {
			pending = t.PendingID
		}
		row[0], row[1], row[2], row[3] = t.ID, t.DebitAccountID, t.CreditAccountID, t.Amount
		row[4], row[5], row[6], row[7] = pending, int64(t.Ledger), int64(t.Code), int64(t.Flags)
		row[8], row[9], row[10], row[11] = t.UserData, t.Timestamp, t.DebitBalance, t.CreditBalance
		return row, nil
	})
	n, err := w.tx.CopyFrom(ctx, pgx.Identifier{"transfers"}, transferColumnNames, src)
	if err != nil {
		return fmt.Errorf("postgres: insert transfers: %w", err)
	}
	if n != int64(len(transfers)) {
		return fmt.Errorf("postgres: insert transfers: copied %d rows of %d", n, len(transfers))
	}
	return nil
}

// updateAccountsSQL writes a batch's balances from arrays and returns the
// rows as written.
const updateAccountsSQL = `UPDATE accounts a SET debits_pending = v.dpend, debits_posted = v.dpost,
		credits_pending = v.cpend, credits_posted = v.cpost
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v(id, dpend, dpost, cpend, cpost)
		WHERE a.id = v.id
		RETURNING a.id, a.ledger, a.code, a.flags, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.ts`

// UpdateAccounts writes the balances of all accounts in one statement,
// sent with the held Writes (the batch's business rows and transfers) in
// one round trip, and returns the rows as written.
func (w *writeTx) UpdateAccounts(ctx context.Context, accounts []ledger.Account) ([]ledger.Account, error) {
	w.p.wrote()
	if len(accounts) == 0 {
		return nil, w.p.flush(ctx)
	}
	n := len(accounts)
	id, dpend, dpost, cpend, cpost := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, a := range accounts {
		id[i], dpend[i], dpost[i], cpend[i], cpost[i] = a.ID, a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted
	}
	var written []ledger.Account
	if err := w.p.flushWith(ctx, piped{updateAccountsSQL, []any{id, dpend, dpost, cpend, cpost},
		readInto(&written, scanAccounts, "update accounts")}); err != nil {
		return nil, err
	}
	return written, nil
}
