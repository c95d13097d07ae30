package banksim

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"zhifu/bankapi"
)

// SQLite settings, as package zhifu/sqlite opens its own file: WAL, FULL
// sync (a transaction the bank acknowledged survives a crash), one writer.
const (
	readConnsMax  = 4
	busyTimeoutMs = 10_000
	tokenKeyBytes = 32
	// writeQueueMax bounds writers waiting for the commit loop;
	// writeBatchMax bounds the writes sharing one transaction.
	writeQueueMax = 4096
	writeBatchMax = 256
)

const schema = `
CREATE TABLE IF NOT EXISTS banks (
	bank             TEXT PRIMARY KEY,
	token_key        BLOB NOT NULL,
	settlement       INTEGER NOT NULL CHECK (settlement >= 0),
	settlement_float INTEGER NOT NULL,
	funding          INTEGER NOT NULL,
	txn_seq          INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS cards (
	bank       TEXT NOT NULL,
	card_token TEXT NOT NULL,
	holder     TEXT NOT NULL,
	last4      TEXT NOT NULL,
	balance    INTEGER NOT NULL CHECK (balance >= 0),
	created_at INTEGER NOT NULL,
	PRIMARY KEY (bank, card_token)
) STRICT;
CREATE TABLE IF NOT EXISTS journal (
	bank         TEXT NOT NULL,
	request_id   TEXT NOT NULL,
	kind         TEXT NOT NULL CHECK (kind IN ('debit', 'credit')),
	channel      TEXT NOT NULL CHECK (channel IN ('api', 'ebank')),
	card_token   TEXT NOT NULL,
	amount       INTEGER NOT NULL CHECK (amount > 0),
	callback_url TEXT NOT NULL,
	status       TEXT NOT NULL CHECK (status IN ('ACCEPTED', 'SUCCESS', 'FAILED')),
	reason       TEXT NOT NULL,
	bank_txn_id  TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	settled_at   INTEGER,
	PRIMARY KEY (bank, request_id)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS journal_bank_txn ON journal (bank, bank_txn_id);
CREATE INDEX IF NOT EXISTS journal_settled ON journal (bank, settled_at);
CREATE INDEX IF NOT EXISTS journal_status ON journal (status);
`

// store is the banks' books in SQLite. It loads and saves; the rules that
// decide a transaction's outcome are in rules.go.
type store struct {
	writer  *sql.DB
	reader  *sql.DB
	writes  chan write
	stop    chan struct{}
	stopped chan struct{}
}

func openStore(ctx context.Context, path string) (*store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("banksim: create data folder: %w", err)
		}
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs))
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	writer, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("banksim: open: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	reader, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("banksim: open: %w", err)
	}
	reader.SetMaxOpenConns(readConnsMax)
	reader.SetMaxIdleConns(readConnsMax)
	st := &store{writer: writer, reader: reader, writes: make(chan write, writeQueueMax),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go st.commitLoop()
	if _, err := writer.ExecContext(ctx, schema+repeatsSchema); err != nil {
		st.close()
		return nil, fmt.Errorf("banksim: schema: %w", err)
	}
	return st, nil
}

// close stops the commit loop (after the batch it is committing) and closes
// the database. Callers must have stopped writing.
func (st *store) close() error {
	close(st.stop)
	<-st.stopped
	return errors.Join(st.reader.Close(), st.writer.Close())
}

// write is one caller's part of a group commit.
type write struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error
}

// update runs fn in a write transaction and returns once it is durable.
// Concurrent callers share one transaction (group commit): each fn runs in
// its own savepoint, so an error undoes only that fn, and one fsync covers
// them all. A caller always waits for its answer, so a fn that ran is never
// reported as not having run.
func (st *store) update(ctx context.Context, fn func(*sql.Tx) error) error {
	w := write{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case st.writes <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-st.stop:
		return errStoreClosed
	}
	return <-w.done
}

var errStoreClosed = errors.New("banksim: store closed")

// commitLoop gathers waiting writes into batches until the store closes.
func (st *store) commitLoop() {
	defer close(st.stopped)
	for {
		var batch []write
		select {
		case w := <-st.writes:
			batch = append(batch, w)
		case <-st.stop:
			return
		}
	gather:
		for len(batch) < writeBatchMax {
			select {
			case w := <-st.writes:
				batch = append(batch, w)
			default:
				break gather
			}
		}
		st.commit(batch)
	}
}

// commit runs a batch in one transaction and answers every writer.
func (st *store) commit(batch []write) {
	errs := make([]error, len(batch))
	tx, err := st.writer.BeginTx(context.Background(), nil)
	if err == nil {
		for i, w := range batch {
			if errs[i], err = runSavepoint(tx, w); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = tx.Commit()
	} else if tx != nil {
		tx.Rollback()
	}
	for i, w := range batch {
		if err != nil {
			errs[i] = fmt.Errorf("banksim: commit: %w", err)
		}
		w.done <- errs[i]
	}
}

// runSavepoint runs one write in its own savepoint. It returns the write's
// error, and a second error when the transaction itself can no longer be
// trusted (a savepoint could not be opened, released or rolled back), which
// fails the whole batch.
func runSavepoint(tx *sql.Tx, w write) (werr, txErr error) {
	if err := w.ctx.Err(); err != nil {
		return err, nil
	}
	if _, err := tx.Exec(`SAVEPOINT w`); err != nil {
		return nil, err
	}
	if err := w.fn(tx); err != nil {
		if _, rerr := tx.Exec(`ROLLBACK TO w`); rerr != nil {
			return err, rerr
		}
		_, rerr := tx.Exec(`RELEASE w`)
		return err, rerr
	}
	_, err := tx.Exec(`RELEASE w`)
	return nil, err
}

// ensureBank creates bank's books with the float the first time and returns
// the bank's card-token key, made once from crypto/rand and kept, so that a
// card keeps its token across restarts.
func (st *store) ensureBank(ctx context.Context, bank string, float int64) ([]byte, error) {
	key := make([]byte, tokenKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	err := st.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO banks (bank, token_key, settlement, settlement_float, funding)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (bank) DO NOTHING`, bank, key, float, float, float); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT token_key FROM banks WHERE bank = ?`, bank).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("banksim: bank %s: %w", bank, err)
	}
	return key, nil
}

// errHolderMismatch is a verify whose holder differs from the card's.
var errHolderMismatch = errors.New("holder does not match the card")

// provisionCard opens the card's account with starting on its first verify,
// adding starting to the bank's funding; later verifies only check the
// holder.
func (st *store) provisionCard(ctx context.Context, bank, token, holder, last4 string, starting int64, now time.Time) error {
	return st.update(ctx, func(tx *sql.Tx) error {
		var have string
		err := tx.QueryRowContext(ctx, `SELECT holder FROM cards WHERE bank = ? AND card_token = ?`, bank, token).Scan(&have)
		switch {
		case err == nil && have == holder:
			return nil
		case err == nil:
			return errHolderMismatch
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("banksim: verify: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cards (bank, card_token, holder, last4, balance, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, bank, token, holder, last4, starting, now.UnixNano()); err != nil {
			return fmt.Errorf("banksim: verify: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE banks SET funding = funding + ? WHERE bank = ?`, starting, bank); err != nil {
			return fmt.Errorf("banksim: verify: %w", err)
		}
		return nil
	})
}

const journalColumns = `request_id, bank, kind, channel, card_token, amount, callback_url, status, reason,
	bank_txn_id, created_at, settled_at`

// row is a journal row.
type row struct {
	txnIn
	Status    string
	Reason    string
	BankTxnID string
	Created   int64
	Settled   sql.NullInt64
}

type scanner interface{ Scan(dest ...any) error }

func scanRow(s scanner) (row, error) {
	var r row
	err := s.Scan(&r.RequestID, &r.Bank, &r.Kind, &r.Channel, &r.CardToken, &r.Amount, &r.CallbackURL,
		&r.Status, &r.Reason, &r.BankTxnID, &r.Created, &r.Settled)
	return r, err
}

// transaction is the row as the API shows it.
func (r row) transaction() bankapi.Transaction {
	t := bankapi.Transaction{RequestID: r.RequestID, Bank: r.Bank, Kind: r.Kind, Status: r.Status, Amount: r.Amount,
		BankTxnID: r.BankTxnID, Reason: r.Reason, CreatedAt: time.Unix(0, r.Created).In(beijing)}
	if r.Settled.Valid {
		at := time.Unix(0, r.Settled.Int64).In(beijing)
		t.SettledAt = &at
	}
	return t
}

func (st *store) get(ctx context.Context, bank, requestID string) (row, bool, error) {
	r, err := scanRow(st.reader.QueryRowContext(ctx, `SELECT `+journalColumns+` FROM journal
		WHERE bank = ? AND request_id = ?`, bank, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, false, nil
	}
	if err != nil {
		return row{}, false, fmt.Errorf("banksim: inquiry: %w", err)
	}
	return r, true, nil
}
