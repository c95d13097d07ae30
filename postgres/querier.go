package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"zhifu/ledger"
)

// pgxQuerier is what pgxpool.Pool and pgx.Tx have in common.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier adapts pgx to ledger.Querier, rewriting the ledger's ?
// placeholders into PostgreSQL's $1, $2…. Inside a write transaction it
// has a pipeline: Writes wait there and go to the server together, in one
// round trip, before the transaction's next statement or its commit.
type querier struct {
	q pgxQuerier
	p *pipeline // nil outside a write transaction
}

// pipeline holds a transaction's Writes not yet sent.
type pipeline struct {
	tx      *lazyTx
	batch   *pgx.Batch
	queries []string
	want    []int64

	// Reads run ahead for the ops' Prepares (Prefetch), by readKey,
	// until the transaction writes.
	prefetched map[string]*prefetched
	typeMap    *pgtype.Map
}

// Limits.
const (
	// pipelineWritesMax bounds the Writes held before they are sent anyway.
	pipelineWritesMax = 1024
)

// queue holds a Write back, sending what is held when the pipeline is full.
func (p *pipeline) queue(ctx context.Context, want int64, query string, args []any) error {
	if p.batch == nil {
		p.batch = &pgx.Batch{}
	}
	p.batch.Queue(query, args...)
	p.queries, p.want = append(p.queries, query), append(p.want, want)
	if len(p.want) >= pipelineWritesMax {
		return p.flush(ctx)
	}
	return nil
}

// flush sends the held Writes in one round trip and checks each one's
// outcome. Every statement of the transaction calls it first, so each
// runs after the Writes made before it, as if they had been sent at once.
func (p *pipeline) flush(ctx context.Context) error { return p.flushWith(ctx) }

// piped is a statement sent after the held Writes, in their round trip,
// whose rows read takes.
type piped struct {
	sql  string
	args []any
	read func(pgx.Rows) error
}

// flushWith sends the held Writes and then qs, in order, in one round
// trip: a statement whose rows the transaction needs (the accounts it
// locks, the balances it writes) costs no round trip of its own.
func (p *pipeline) flushWith(ctx context.Context, qs ...piped) error {
	if p == nil || len(p.want) == 0 && len(qs) == 0 {
		return nil
	}
	// The results are read through the batch sent, so the next Writes
	// go into a new one.
	batch, queries, want := p.batch, p.queries, p.want
	p.batch, p.queries, p.want = nil, nil, nil
	if batch == nil {
		batch = &pgx.Batch{}
	}
	for _, q := range qs {
		batch.Queue(q.sql, q.args...)
	}
	br := p.tx.SendBatch(ctx, batch)
	for i := range want {
		tag, err := br.Exec()
		if err == nil {
			err = ledger.CheckWrite(queries[i], tag.RowsAffected(), want[i])
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("postgres: write: %w", err)
		}
	}
	for _, q := range qs {
		rows, err := br.Query()
		if err != nil {
			err = fmt.Errorf("postgres: %w", err)
		} else {
			err = q.read(rows)
		}
		if err != nil {
			br.Close()
			return err
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: write: %w", err)
	}
	return nil
}

// rebound caches rewritten queries: business code uses a fixed set.
var rebound sync.Map

// rebind turns each ? outside quotes into $n.
func rebind(query string) string {
	if v, ok := rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	rebound.Store(query, out)
	return out
}

func (q querier) Write(ctx context.Context, want int64, query string, args ...any) error {
	q.p.wrote()
	if q.p != nil {
		return q.p.queue(ctx, want, rebind(query), args)
	}
	n, err := q.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	return ledger.CheckWrite(query, n, want)
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	q.p.wrote()
	if err := q.p.flush(ctx); err != nil {
		return 0, err
	}
	tag, err := q.q.Exec(ctx, rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q querier) Query(ctx context.Context, query string, args ...any) (ledger.Rows, error) {
	if pf := q.p.take(query, args); pf != nil {
		return &prefetchedRows{pf: pf, typeMap: q.p.typeMap}, nil
	}
	if err := q.p.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := q.q.Query(ctx, rebind(query), args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) ledger.Row {
	if pf := q.p.take(query, args); pf != nil {
		return prefetchedRow{&prefetchedRows{pf: pf, typeMap: q.p.typeMap}}
	}
	if err := q.p.flush(ctx); err != nil {
		return errRow{err}
	}
	return pgRow{q.q.QueryRow(ctx, rebind(query), args...)}
}

type pgRow struct{ row pgx.Row }

// errRow is a row whose query could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (r pgRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.ErrNoRows
	}
	return err
}

// Reader runs business queries on the pool, outside any write transaction.
func (db *DB) Reader() ledger.Querier { return querier{q: db.pool} }
