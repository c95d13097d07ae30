package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is a write transaction on a connection of the pool whose BEGIN
// is not sent on its own: it goes with the transaction's first statement,
// at the head of that statement's batch, so that it costs no round trip.
// A bare BEGIN's round trip took about a millisecond of a paid-trade
// batch's five on the benchmark machine (BENCHMARKS.md), on loopback:
// most likely the server's process waiting for a busy core. A statement that is not a batch (a plain
// Exec or Query first) sends BEGIN ahead of it, as pgx's own Begin does.
type lazyTx struct {
	c     *pgxpool.Conn
	begun bool // BEGIN has been sent
	done  bool // committed or rolled back
}

const beginSQL = "BEGIN ISOLATION LEVEL READ COMMITTED"

func (t *lazyTx) Conn() *pgx.Conn { return t.c.Conn() }

// begin sends BEGIN on its own, if it has not gone yet.
func (t *lazyTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	if _, err := t.c.Exec(ctx, beginSQL); err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	t.begun = true
	return nil
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.begin(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.c.Exec(ctx, sql, args...)
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.c.Query(ctx, sql, args...)
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.begin(ctx); err != nil {
		return errPgxRow{err}
	}
	return t.c.QueryRow(ctx, sql, args...)
}

func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	return t.c.CopyFrom(ctx, table, columns, src)
}

// SendBatch sends b, led by BEGIN if it has not gone yet; the results
// read are b's, BEGIN's checked before the first of them.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.begun {
		return t.c.SendBatch(ctx, b)
	}
	led := &pgx.Batch{}
	led.Queue(beginSQL)
	for _, q := range b.QueuedQueries {
		led.Queue(q.SQL, q.Arguments...)
	}
	t.begun = true // sent: whatever comes of it, the end is a ROLLBACK or a COMMIT
	return &begunResults{br: t.c.SendBatch(ctx, led)}
}

// Commit commits the transaction; one that never sent a statement has
// nothing to commit. A COMMIT the server answers with ROLLBACK (the
// transaction had failed) is an error.
func (t *lazyTx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.done = true
	if !t.begun {
		return nil
	}
	tag, err := t.c.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback ends the transaction if Commit did not, and gives the
// connection back to the pool, which closes it if it is still in a
// transaction (the ROLLBACK failed).
func (t *lazyTx) Rollback(ctx context.Context) {
	if !t.done && t.begun {
		t.c.Exec(ctx, "ROLLBACK")
	}
	t.done = true
	t.c.Release()
}

// begunResults are a batch's results led by BEGIN's, which the first
// read checks and skips.
type begunResults struct {
	br      pgx.BatchResults
	checked bool
	err     error
}

func (r *begunResults) skipBegin() error {
	if !r.checked {
		r.checked = true
		if _, err := r.br.Exec(); err != nil {
			r.err = fmt.Errorf("postgres: begin: %w", err)
		}
	}
	return r.err
}

func (r *begunResults) Exec() (pgconn.CommandTag, error) {
	if err := r.skipBegin(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.br.Exec()
}

func (r *begunResults) Query() (pgx.Rows, error) {
	if err := r.skipBegin(); err != nil {
		return nil, err
	}
	return r.br.Query()
}

func (r *begunResults) QueryRow() pgx.Row {
	if err := r.skipBegin(); err != nil {
		return errPgxRow{err}
	}
	return r.br.QueryRow()
}

func (r *begunResults) Close() error {
	err := r.skipBegin()
	return errors.Join(err, r.br.Close())
}

// Tx is nil: the batch's BEGIN is lazyTx's, not one begun by pgx.
func (r *begunResults) Tx() pgx.Tx { return nil }

// errPgxRow is a pgx.Row whose query could not be sent.
type errPgxRow struct{ err error }

func (r errPgxRow) Scan(...any) error { return r.err }
