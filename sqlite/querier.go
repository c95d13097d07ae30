package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"zhifu/ledger"
)

// querier adapts *sql.DB or *sql.Tx to ledger.Querier. SQLite takes the
// ledger's ? placeholders as they are; a trailing FOR UPDATE is dropped
// because the single writer already excludes everyone else.
type querier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func dialect(query string) string {
	trimmed := strings.TrimRight(query, " \t\n;")
	if strings.HasSuffix(strings.ToUpper(trimmed), " FOR UPDATE") {
		return trimmed[:len(trimmed)-len(" FOR UPDATE")]
	}
	return query
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, dialect(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q querier) Query(ctx context.Context, query string, args ...any) (ledger.Rows, error) {
	rows, err := q.q.QueryContext(ctx, dialect(query), args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) ledger.Row {
	return sqlRow{q.q.QueryRowContext(ctx, dialect(query), args...)}
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type sqlRow struct{ row *sql.Row }

func (r sqlRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.ErrNoRows
	}
	return err
}

// Reader runs business queries on the read pool.
func (db *DB) Reader() ledger.Querier { return querier{db.reader} }
