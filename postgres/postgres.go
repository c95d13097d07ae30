// Package postgres stores zhifu's ledger in PostgreSQL, for deployments that
// run several processes against one database or want the database on its own
// machine. It implements ledger.Store with pgx's connection pool and the same
// tables as package sqlite: the ledger's own (migrations/, version 0001) and
// the business tables, whose migrations package schema holds for both.
//
// Writes run in READ COMMITTED transactions with synchronous_commit on, so a
// commit that returned is durable. Concurrent processes are kept apart by row
// locks taken in ascending account id order (SELECT ... FOR UPDATE), which
// cannot deadlock; the conflicts the database may still report (serialisation
// failures, deadlocks, duplicate keys from two processes creating the same id)
// make Update run the transaction again from the start, and so does a
// connection lost before COMMIT was sent. A multi-host URL
// (postgres://h1:5432,h2:5432/db?target_session_attrs=read-write) makes the
// pool dial, after a failover, whichever host now takes writes; a COMMIT
// whose answer was lost is reported, never run again.
//
// A batch costs a few round trips, not one per statement: the reads its
// ops name ahead (ledger.Prefetcher) go together in one, before the ops'
// Prepares; the writes whose outcome no op reads (Querier.Write) wait and
// go together before the next statement or the commit; transfers are
// copied in (COPY) and balances written in one statement.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"zhifu/ledger"
	"zhifu/schema"
)

// migrations holds the ledger's own tables; the business tables' migrations
// are package schema's, shared with package sqlite.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Limits.
const (
	// poolConnsMax bounds the connections one process holds. Writes are
	// batched, so a few connections carry the load; the bound keeps several
	// processes well inside the server's max_connections.
	poolConnsMax = 16
	// updateAttemptsMax bounds the times Update runs fn when the database
	// reports a conflict.
	updateAttemptsMax = 10
	// retryBackoffMin and retryBackoffMax bound the pause before a retry. It
	// doubles with every attempt and is jittered, so that processes that
	// collided do not collide again in step.
	retryBackoffMin = 2 * time.Millisecond
	retryBackoffMax = 100 * time.Millisecond
	// connectTimeout bounds dialling one host when the URL sets no
	// connect_timeout.
	connectTimeout = 5 * time.Second
	// migrationLockKey is the pg_advisory_xact_lock key that serialises
	// processes applying migrations at once ("zhifu" in ASCII, then 1).
	migrationLockKey int64 = 0x7a68696675_0001
)

// SQLSTATE codes on which Update retries.
const (
	sqlstateSerializationFailure = "40001"
	sqlstateDeadlockDetected     = "40P01"
	sqlstateUniqueViolation      = "23505"
	// The server going away, or a standby that does not take writes (a
	// connection made to it before a failover).
	sqlstateAdminShutdown            = "57P01"
	sqlstateCrashShutdown            = "57P02"
	sqlstateCannotConnectNow         = "57P03"
	sqlstateReadOnlyTransaction      = "25006"
	sqlstateConnectionExceptionClass = "08"
)

// DB is the PostgreSQL ledger store. It implements ledger.Store and is safe
// for concurrent use.
type DB struct {
	pool  *pgxpool.Pool
	trips *tripCounter
}

var _ ledger.Store = (*DB)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx accepts), checks that the server answers, and
// applies the embedded migrations. Several processes may open the same
// database at once: migrations are applied under an advisory lock.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	cfg.MaxConns = poolConnsMax
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// A host that does not answer (a multi-host URL's dead primary)
		// is given up on soon, for the next.
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	// Durability is not negotiable, whatever the server's or database's
	// default: a commit that returned must survive a crash.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	trips := &tripCounter{}
	cfg.ConnConfig.Tracer = trips
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := &DB{pool: pool, trips: trips}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Pool returns the connection pool, for packages that keep business rows in
// the same database.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes every connection; it waits for connections in use to be
// released. Every committed transaction is already durable.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// migrate applies the migrations not yet applied, all in one transaction
// that first takes an advisory lock: a second process starting at the same
// moment waits, then finds everything applied.
func (db *DB) migrate(ctx context.Context) error {
	ledgerMigrations, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	ms, err := schema.Migrations(schema.PostgreSQL, ledgerMigrations)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	recorded := make(map[int]string)
	var version int32
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&version, &name}, func() error {
		recorded[int(version)] = name
		return nil
	}); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	for _, m := range ms {
		if name, ok := recorded[m.Version]; ok {
			if err := m.CheckRecorded(name); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			continue
		}
		// Without arguments pgx uses the simple protocol, which runs a file
		// of several statements in one call.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
			m.Version, m.Name); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: commit: %w", err)
	}
	return nil
}

// Update runs fn in one READ COMMITTED transaction and commits it. If the
// database reports a serialisation failure, a deadlock or a unique violation
// (another process committed the same transfer or account id first), or fn
// reports ledger.ErrConflict, the transaction is rolled back and fn runs
// again from the start after a short jittered pause, up to
// updateAttemptsMax times in all; then the last error is returned. Any other
// error is returned at once; fn's own errors are returned as fn returned
// them.
func (db *DB) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.update(ctx, fn)
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == updateAttemptsMax {
			return fmt.Errorf("postgres: gave up after %d attempts: %w", attempt, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return fmt.Errorf("postgres: update: %w", err)
		}
	}
}

func (db *DB) update(ctx context.Context, fn func(ledger.Tx) error) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer db.trips.watch(c.Conn())()
	// BEGIN goes with the first statement (lazyTx). Rolling back a
	// committed transaction does nothing; the rollback runs even if ctx
	// is done, and gives the connection back to the pool.
	tx := &lazyTx{c: c}
	defer tx.Rollback(context.WithoutCancel(ctx))
	p := &pipeline{tx: tx}
	if err := fn(&writeTx{querier: querier{q: tx, p: p}, tx: tx}); err != nil {
		return err
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return &commitError{err}
	}
	return nil
}

// commitError is a failed COMMIT: whether the transaction committed is not
// known, so it is never run again here.
type commitError struct{ err error }

func (e *commitError) Error() string { return "postgres: commit: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// retryable reports whether running the transaction again may succeed: a
// conflict with another transaction, or a connection lost (the server
// restarting, a standby being promoted) before COMMIT was sent, when the
// transaction certainly did not commit and the pool dials again, through
// every host of a multi-host URL to the one that takes writes.
func retryable(err error) bool {
	var ce *commitError
	switch {
	case errors.As(err, &ce), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, ledger.ErrConflict):
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return connectionLost(err)
	}
	switch pgErr.Code {
	case sqlstateSerializationFailure, sqlstateDeadlockDetected, sqlstateUniqueViolation,
		sqlstateAdminShutdown, sqlstateCrashShutdown, sqlstateCannotConnectNow, sqlstateReadOnlyTransaction:
		return true
	}
	return strings.HasPrefix(pgErr.Code, sqlstateConnectionExceptionClass)
}

// connectionLost reports whether err is the connection failing rather than
// the database refusing.
func connectionLost(err error) bool {
	var ne net.Error
	var connect *pgconn.ConnectError
	return pgconn.SafeToRetry(err) || errors.As(err, &connect) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// backoff is the pause after the given failed attempt (1-based): doubling
// from retryBackoffMin, capped at retryBackoffMax, jittered to between half
// and all of that.
func backoff(attempt int) time.Duration {
	d := retryBackoffMax
	if shift := attempt - 1; shift < 16 {
		d = min(retryBackoffMin<<shift, retryBackoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// queryer is what a read needs from the pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const accountColumns = `id, ledger, code, flags, debits_pending, debits_posted, credits_pending, credits_posted, ts`

const transferColumns = `id, debit_account_id, credit_account_id, amount, pending_id, ledger, code, flags, user_data, ts, debit_balance, credit_balance`

// The per-batch lookups probe the index once per id: each id of the
// unnested array is looked up by a LATERAL subquery with LIMIT 1 (ids are
// unique, so the limit changes nothing but the plan), which PostgreSQL
// cannot flatten into a hash join over the whole table. "= ANY($1)", and a
// plain join against the array too, let the planner, which sees the
// array's length in a custom plan, choose a sequential scan once a batch
// names a few thousand ids: the defect that made a batch of 3,000
// transfers take seconds once 300,000 were stored. The lateral form stays
// on the index whatever the batch's size and the table's;
// TestBatchLookupsUseIndexes checks the plans.
const (
	lookupAccountsSQL = `SELECT a.id, a.ledger, a.code, a.flags, a.debits_pending, a.debits_posted,
		a.credits_pending, a.credits_posted, a.ts
		FROM unnest($1::bigint[]) AS v(id)
		CROSS JOIN LATERAL (SELECT * FROM accounts WHERE id = v.id LIMIT 1) a`
	lockAccountsSQL = `SELECT a.id, a.ledger, a.code, a.flags, a.debits_pending, a.debits_posted,
		a.credits_pending, a.credits_posted, a.ts
		FROM unnest($1::bigint[]) WITH ORDINALITY AS v(id, n)
		CROSS JOIN LATERAL (SELECT * FROM accounts WHERE id = v.id LIMIT 1 FOR UPDATE) a ORDER BY v.n`
	lookupTransfersSQL = `SELECT t.id, t.debit_account_id, t.credit_account_id, t.amount, t.pending_id, t.ledger,
		t.code, t.flags, t.user_data, t.ts, t.debit_balance, t.credit_balance
		FROM unnest($1::text[]) AS v(id)
		CROSS JOIN LATERAL (SELECT * FROM transfers WHERE id = v.id LIMIT 1) t`
	lookupResolutionsSQL = `SELECT t.pending_id, t.flags
		FROM unnest($1::text[]) AS v(id)
		CROSS JOIN LATERAL (SELECT pending_id, flags FROM transfers WHERE pending_id = v.id LIMIT 1) t`
)

func scanAccounts(rows pgx.Rows) ([]ledger.Account, error) {
	defer rows.Close()
	var out []ledger.Account
	for rows.Next() {
		var a ledger.Account
		var ledgerID, code, flags int64
		if err := rows.Scan(&a.ID, &ledgerID, &code, &flags, &a.DebitsPending, &a.DebitsPosted,
			&a.CreditsPending, &a.CreditsPosted, &a.Timestamp); err != nil {
			return nil, err
		}
		a.Ledger, a.Code, a.Flags = uint32(ledgerID), uint16(code), ledger.AccountFlags(flags)
		out = append(out, a)
	}
	return out, rows.Err()
}

// scanTransfer scans transferColumns, optionally preceded by seq.
func scanTransfer(rows pgx.Rows, seq *int64) (ledger.Transfer, error) {
	var t ledger.Transfer
	var pending *string
	var ledgerID, code, flags int64
	dest := []any{&t.ID, &t.DebitAccountID, &t.CreditAccountID, &t.Amount, &pending, &ledgerID, &code,
		&flags, &t.UserData, &t.Timestamp, &t.DebitBalance, &t.CreditBalance}
	if seq != nil {
		dest = append([]any{seq}, dest...)
	}
	if err := rows.Scan(dest...); err != nil {
		return t, err
	}
	if pending != nil {
		t.PendingID = *pending
	}
	t.Ledger, t.Code, t.Flags = uint32(ledgerID), uint16(code), ledger.TransferFlags(flags)
	return t, nil
}

func scanTransfers(rows pgx.Rows) ([]ledger.Transfer, error) {
	defer rows.Close()
	var out []ledger.Transfer
	for rows.Next() {
		t, err := scanTransfer(rows, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// lookupAccounts reads accounts by id in ascending id order, outside a
// transaction (a write transaction locks them: LockAccountsLoadTransfers).
func lookupAccounts(ctx context.Context, q queryer, ids []int64) ([]ledger.Account, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, lookupAccountsSQL+` ORDER BY a.id`, sortedUniqueInts(ids))
	if err != nil {
		return nil, fmt.Errorf("postgres: load accounts: %w", err)
	}
	out, err := scanAccounts(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: load accounts: %w", err)
	}
	return out, nil
}

func lookupTransfers(ctx context.Context, q queryer, ids []string) ([]ledger.Transfer, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, lookupTransfersSQL, uniqueStrings(ids))
	if err != nil {
		return nil, fmt.Errorf("postgres: load transfers: %w", err)
	}
	out, err := scanTransfers(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: load transfers: %w", err)
	}
	return out, nil
}

// sortedUniqueInts and uniqueStrings drop repeated ids, which the joins against
// the array would otherwise answer once per repeat; ids usually come sorted
// and unique, and are then returned as they are.
func sortedUniqueInts(ids []int64) []int64 {
	if slices.IsSorted(ids) && len(slices.Compact(slices.Clone(ids))) == len(ids) {
		return ids
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func uniqueStrings(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// LookupAccounts reads committed accounts by id, in ascending id order.
// Unknown ids are absent from the result.
func (db *DB) LookupAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	return lookupAccounts(ctx, db.pool, ids)
}

// LookupTransfers reads committed transfers by id. Unknown ids are absent
// from the result.
func (db *DB) LookupTransfers(ctx context.Context, ids []string) ([]ledger.Transfer, error) {
	return lookupTransfers(ctx, db.pool, ids)
}

// entriesSQL reads an account's transfers newest first. Each branch of the
// union walks one index backwards and stops at the limit; a NULL limit is
// LIMIT ALL.
const entriesSQL = `SELECT seq, ` + transferColumns + ` FROM (
	(SELECT * FROM transfers WHERE debit_account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3)
	UNION ALL
	(SELECT * FROM transfers WHERE credit_account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3)
) t ORDER BY seq DESC LIMIT $3`

// entriesAfterSQL reads an account's transfers oldest first, between two
// seqs, each branch walking one index forwards.
const entriesAfterSQL = `SELECT seq, ` + transferColumns + ` FROM (
	(SELECT * FROM transfers WHERE debit_account_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4)
	UNION ALL
	(SELECT * FROM transfers WHERE credit_account_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4)
) t ORDER BY seq LIMIT $4`

// Entries returns up to limit entries of an account, newest first, with Seq
// below beforeSeq; beforeSeq <= 0 means from the newest. As in package
// sqlite, a negative limit means no limit.
func (db *DB) Entries(ctx context.Context, accountID, beforeSeq int64, limit int) ([]ledger.Entry, error) {
	if beforeSeq <= 0 {
		beforeSeq = 1<<63 - 1
	}
	return db.entries(ctx, accountID, limit, entriesSQL, accountID, beforeSeq)
}

// EntriesAfter returns up to limit entries of an account, oldest first, with
// afterSeq < Seq < beforeSeq; beforeSeq <= 0 means to the newest.
func (db *DB) EntriesAfter(ctx context.Context, accountID, afterSeq, beforeSeq int64, limit int) ([]ledger.Entry, error) {
	if beforeSeq <= 0 {
		beforeSeq = 1<<63 - 1
	}
	return db.entries(ctx, accountID, limit, entriesAfterSQL, accountID, afterSeq, beforeSeq)
}

// entries runs one of the two reads above; the limit is their last
// parameter, NULL (LIMIT ALL) when negative.
func (db *DB) entries(ctx context.Context, accountID int64, limit int, query string, args ...any) ([]ledger.Entry, error) {
	var lim *int64
	if limit >= 0 {
		l := int64(limit)
		lim = &l
	}
	rows, err := db.pool.Query(ctx, query, append(args, lim)...)
	if err != nil {
		return nil, fmt.Errorf("postgres: entries: %w", err)
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		var seq int64
		t, err := scanTransfer(rows, &seq)
		if err != nil {
			return nil, fmt.Errorf("postgres: entries: %w", err)
		}
		out = append(out, ledger.EntryOf(seq, t, accountID))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: entries: %w", err)
	}
	return out, nil
}

// snapshotSumsSQL computes, for every account, the four balances from its
// transfers, as package sqlite does. Posted: plain transfers (flags&14 = 0)
// and posts (flags&4). Pending: pending transfers (flags&2) that no other
// transfer names in pending_id, that is neither posted nor voided. NOT EXISTS
// (an anti-join on the unique pending_id index) is sqlite's NOT IN without
// its quadratic worst case; pending_id IS NOT NULL is implied by equality.
// PostgreSQL's sum(bigint) is numeric, so each is cast back; a sum that does
// not fit int64 is an error rather than a wrong figure.
const snapshotSumsSQL = `
WITH sides AS (
	SELECT debit_account_id AS account_id,
		CASE WHEN t.flags & 14 = 0 OR t.flags & 4 != 0 THEN t.amount ELSE 0 END AS dposted,
		CASE WHEN t.flags & 2 != 0 AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id)
			THEN t.amount ELSE 0 END AS dpending,
		0::bigint AS cposted, 0::bigint AS cpending
	FROM transfers t
	UNION ALL
	SELECT credit_account_id,
		0, 0,
		CASE WHEN t.flags & 14 = 0 OR t.flags & 4 != 0 THEN t.amount ELSE 0 END,
		CASE WHEN t.flags & 2 != 0 AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id)
			THEN t.amount ELSE 0 END
	FROM transfers t
)
SELECT account_id, sum(dpending)::bigint, sum(dposted)::bigint, sum(cpending)::bigint, sum(cposted)::bigint
FROM sides GROUP BY account_id`

// Snapshot reads all accounts, the per-account sums of their transfers and
// the transfer count in one REPEATABLE READ READ ONLY transaction, so all
// three see the same committed state.
func (db *DB) Snapshot(ctx context.Context) (ledger.Snapshot, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return ledger.Snapshot{}, fmt.Errorf("postgres: snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	snap, err := readSnapshot(ctx, tx)
	if err != nil {
		return ledger.Snapshot{}, fmt.Errorf("postgres: snapshot: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return ledger.Snapshot{}, fmt.Errorf("postgres: snapshot: %w", err)
	}
	return snap, nil
}

func readSnapshot(ctx context.Context, tx pgx.Tx) (ledger.Snapshot, error) {
	snap := ledger.Snapshot{Sums: make(map[int64]ledger.Sums)}
	rows, err := tx.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY id`)
	if err != nil {
		return snap, err
	}
	if snap.Accounts, err = scanAccounts(rows); err != nil {
		return snap, err
	}
	rows, err = tx.Query(ctx, snapshotSumsSQL)
	if err != nil {
		return snap, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var s ledger.Sums
		if err := rows.Scan(&id, &s.DebitsPending, &s.DebitsPosted, &s.CreditsPending, &s.CreditsPosted); err != nil {
			return snap, err
		}
		snap.Sums[id] = s
	}
	if err := rows.Err(); err != nil {
		return snap, err
	}
	err = tx.QueryRow(ctx, `SELECT count(*) FROM transfers`).Scan(&snap.TransferCount)
	return snap, err
}

// BytesWritten reports the server's write-ahead log position, in bytes
// since the log began: everything every database on the server has logged,
// full-page images included. A benchmark that is the server's only writer
// divides the change by the transfers it committed to get the WAL bytes
// written per transfer. (Data pages reach their files later, at
// checkpoints, and are not counted.)
func (db *DB) BytesWritten(ctx context.Context) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: wal position: %w", err)
	}
	return n, nil
}
