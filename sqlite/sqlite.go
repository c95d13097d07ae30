// Package sqlite stores zhifu's ledger in an embedded SQLite database: the
// default, so that running the platform needs nothing but the binary. It uses
// a pure-Go driver (no C toolchain), WAL journaling and synchronous=FULL, so a
// commit that returned survives a crash of the process or the machine.
//
// All writes go through one connection; SQLite allows one writer at a time
// anyway, and the ledger's batcher makes each write a large batch. Reads use
// a separate pool and see the last committed state.
//
// The database holds the ledger's own tables (migrations/, version 0001) and
// the business tables, whose migrations package schema holds for both stores.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"zhifu/ledger"
	"zhifu/schema"
)

// migrations holds the ledger's own tables; the business tables' migrations
// are package schema's, shared with package postgres.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Limits.
const (
	readConnsMax = 8
	// busyTimeoutMs lets another process holding the write lock finish.
	busyTimeoutMs = 10_000
	// insertChunkRows is the rows per multi-row INSERT (13 columns each stays
	// far below SQLite's limit on bound parameters).
	insertChunkRows = 256
	// cacheKiB is the page cache per connection.
	cacheKiB = 256 * 1024
	// mmapBytes is how much of the file reads may map.
	mmapBytes = 1 << 30
	// walCheckpointPages is how large the WAL grows before a checkpoint
	// (256 MiB of 4 KiB pages). A checkpoint copies each page once however
	// many commits wrote it since the last, so with a long history, whose
	// index pages every batch dirties again, four times the WAL of 64 MiB
	// wrote a third fewer bytes per transfer and took half again as many
	// transfers a second (BENCHMARKS.md). A restart after a crash reads
	// back at most this much WAL.
	walCheckpointPages = 65536
)

// DB is the SQLite ledger store. It implements ledger.Store.
type DB struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	// Statements kept prepared on each pool's connections.
	writeStmts, readStmts *stmtCache
	// accounts is the writer's copy of the accounts it last locked.
	accounts *accountCache
}

var _ ledger.Store = (*DB)(nil)

// Open opens (creating if needed) the database file at path and applies the
// migrations it lacks: the ledger's (embedded here) and the business
// tables' (package schema).
func Open(ctx context.Context, path string) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create data folder: %w", err)
		}
	}
	if err := registerGatherVFS(); err != nil {
		return nil, err
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs))
		q.Add("_pragma", "foreign_keys(1)")
		// A large page cache and memory-mapped reads keep the hot part of
		// the accounts and the history indexes in memory; fewer, larger
		// checkpoints keep the copy from WAL to the main file off the
		// commit path most of the time.
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", cacheKiB))
		q.Add("_pragma", fmt.Sprintf("mmap_size(%d)", mmapBytes))
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointPages))
		// Statement journals (kept while a multi-row statement runs, to undo
		// it alone) stay in memory instead of spilling to a temporary file.
		q.Add("_pragma", "temp_store(MEMORY)")
		q.Set("_txlock", txlock)
		if txlock == "immediate" {
			// The writer's WAL writes go out one per commit (walwrites.go).
			q.Set("vfs", gatherVFSName)
		}
		return "file:" + path + "?" + q.Encode()
	}
	writer, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	reader, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	reader.SetMaxOpenConns(readConnsMax)
	reader.SetMaxIdleConns(readConnsMax)
	db := &DB{path: path, writer: writer, reader: reader, writeStmts: newStmtCache(), readStmts: newStmtCache(),
		accounts: newAccountCache()}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes the database. Every committed transaction is already durable.
func (db *DB) Close() error {
	return errors.Join(db.readStmts.close(), db.writeStmts.close(), db.reader.Close(), db.writer.Close())
}

// migrate applies the migrations the database lacks, each in its own write
// transaction that first looks whether another process applied it meanwhile.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.writer.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	ledgerMigrations, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	ms, err := schema.Migrations(schema.SQLite, ledgerMigrations)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	for _, m := range ms {
		if err := db.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, m schema.Migration) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	var recorded string
	err = tx.QueryRowContext(ctx, `SELECT name FROM schema_migrations WHERE version = ?`, m.Version).Scan(&recorded)
	switch {
	case err == nil:
		if err := m.CheckRecorded(recorded); err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
	}
	return tx.Commit()
}

// Update runs fn in one write transaction (BEGIN IMMEDIATE, so the write lock
// is taken up front and no other process can interleave) and commits.
func (db *DB) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	w := &writeTx{querier: querier{db: db.writer, tx: tx, stmts: db.writeStmts, bound: newBoundStmts()}, tx: tx,
		cache: db.accounts, seen: make(map[int64]ledger.Account)}
	if err := db.accounts.begin(ctx, w); err != nil {
		tx.Rollback()
		return err
	}
	if err := fn(w); err != nil {
		tx.Rollback()
		db.accounts.reset()
		return err
	}
	if err := tx.Commit(); err != nil {
		db.accounts.reset()
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	db.accounts.commit(w.seen)
	db.writeStmts.prepareWanted(ctx, db.writer)
	return nil
}

// queryer is what a read needs from *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const accountColumns = `id, ledger, code, flags, debits_pending, debits_posted, credits_pending, credits_posted, ts`

const transferColumns = `id, debit_account_id, credit_account_id, amount, pending_id, ledger, code, flags, user_data, ts, debit_balance, credit_balance`

func scanAccounts(rows *sql.Rows) ([]ledger.Account, error) {
	defer rows.Close()
	var out []ledger.Account
	for rows.Next() {
		var a ledger.Account
		if err := rows.Scan(&a.ID, &a.Ledger, &a.Code, &a.Flags, &a.DebitsPending, &a.DebitsPosted,
			&a.CreditsPending, &a.CreditsPosted, &a.Timestamp); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// scanTransfer scans transferColumns, optionally preceded by seq.
func scanTransfer(rows *sql.Rows, seq *int64) (ledger.Transfer, error) {
	var t ledger.Transfer
	var pending sql.NullString
	dest := []any{&t.ID, &t.DebitAccountID, &t.CreditAccountID, &t.Amount, &pending, &t.Ledger, &t.Code,
		&t.Flags, &t.UserData, &t.Timestamp, &t.DebitBalance, &t.CreditBalance}
	if seq != nil {
		dest = append([]any{seq}, dest...)
	}
	err := rows.Scan(dest...)
	t.PendingID = pending.String
	return t, err
}

func scanTransfers(rows *sql.Rows) ([]ledger.Transfer, error) {
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

// jsonInts and jsonStrings pass a list as one parameter, read back with
// json_each: one statement whatever the list's length.
func jsonInts(ids []int64) string {
	b := make([]byte, 0, 8*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

func jsonStrings(ids []string) string {
	b := make([]byte, 0, 24*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, id)
	}
	return string(append(b, ']'))
}

func lookupAccounts(ctx context.Context, q queryer, ids []int64) ([]ledger.Account, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonInts(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: load accounts: %w", err)
	}
	return scanAccounts(rows)
}

func lookupTransfers(ctx context.Context, q queryer, ids []string) ([]ledger.Transfer, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+transferColumns+` FROM transfers
		WHERE id IN (SELECT value FROM json_each(?))`, jsonStrings(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: load transfers: %w", err)
	}
	return scanTransfers(rows)
}

// LookupAccounts reads committed accounts by id.
func (db *DB) LookupAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	return lookupAccounts(ctx, db.reader, ids)
}

// LookupTransfers reads committed transfers by id.
func (db *DB) LookupTransfers(ctx context.Context, ids []string) ([]ledger.Transfer, error) {
	return lookupTransfers(ctx, db.reader, ids)
}

// Snapshot reads all accounts and per-account transfer sums in one read
// transaction, which in WAL mode sees one committed state throughout.
func (db *DB) Snapshot(ctx context.Context) (ledger.Snapshot, error) {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ledger.Snapshot{}, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	defer tx.Rollback()
	snap, err := readSnapshot(ctx, tx)
	if err != nil {
		return ledger.Snapshot{}, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	return snap, nil
}

// snapshotSumsSQL computes, for every account, the four balances from its
// transfers. Posted: plain transfers and posts. Pending: pending transfers
// not yet posted or voided. Package postgres has its own version of it.
const snapshotSumsSQL = `
WITH resolved AS (SELECT pending_id FROM transfers WHERE pending_id IS NOT NULL),
sides AS (
	SELECT debit_account_id AS account_id,
		CASE WHEN flags & 14 = 0 OR flags & 4 != 0 THEN amount ELSE 0 END AS dposted,
		CASE WHEN flags & 2 != 0 AND id NOT IN (SELECT pending_id FROM resolved) THEN amount ELSE 0 END AS dpending,
		0 AS cposted, 0 AS cpending
	FROM transfers
	UNION ALL
	SELECT credit_account_id,
		0, 0,
		CASE WHEN flags & 14 = 0 OR flags & 4 != 0 THEN amount ELSE 0 END,
		CASE WHEN flags & 2 != 0 AND id NOT IN (SELECT pending_id FROM resolved) THEN amount ELSE 0 END
	FROM transfers
)
SELECT account_id, sum(dpending), sum(dposted), sum(cpending), sum(cposted) FROM sides GROUP BY account_id`

func readSnapshot(ctx context.Context, tx *sql.Tx) (ledger.Snapshot, error) {
	snap := ledger.Snapshot{Sums: make(map[int64]ledger.Sums)}
	rows, err := tx.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY id`)
	if err != nil {
		return snap, err
	}
	if snap.Accounts, err = scanAccounts(rows); err != nil {
		return snap, err
	}
	rows, err = tx.QueryContext(ctx, snapshotSumsSQL)
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
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM transfers`).Scan(&snap.TransferCount)
	return snap, err
}
