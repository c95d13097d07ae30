package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"

	"zhifu/ledger"
)

// querier adapts *sql.DB or *sql.Tx to ledger.Querier. SQLite takes the
// ledger's ? placeholders as they are; a trailing FOR UPDATE is dropped
// because the single writer already excludes everyone else.
//
// Statements are prepared once per connection and kept (stmts): SQLite
// otherwise parses every statement again on every call, which was a fifth
// of the CPU of a paid trade.
//
// Inside the write transaction a statement runs on the transaction's own
// handle of its kept statement (bound, made once per transaction rather
// than once per call) and without a cancellation watch of its own (see
// stmtContext).
type querier struct {
	db    *sql.DB
	tx    *sql.Tx // nil outside a transaction
	stmts *stmtCache
	bound *boundStmts // the transaction's handles; nil outside one
}

// boundStmts holds one transaction's handles on kept statements.
// database/sql makes a handle (Tx.StmtContext) with a lock, a map entry and
// an allocation each time; a batch runs the same few statements many
// times, so the handles are made once and closed with the transaction.
type boundStmts struct {
	mu sync.Mutex
	m  map[*sql.Stmt]*sql.Stmt
}

func newBoundStmts() *boundStmts { return &boundStmts{m: make(map[*sql.Stmt]*sql.Stmt)} }

func (b *boundStmts) get(ctx context.Context, tx *sql.Tx, st *sql.Stmt) *sql.Stmt {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.m[st]; ok {
		return h
	}
	h := tx.StmtContext(ctx, st)
	b.m[st] = h
	return h
}

// stmtContext is the context a statement runs with. Inside the write
// transaction no statement waits for another writer (BEGIN IMMEDIATE
// took the lock), and a watch per statement costs the driver a goroutine
// and two calls into SQLite, and database/sql another goroutine for each
// query's rows: a tenth of a one-row statement's time. So there the
// statement runs without cancellation, the transaction's deadline is
// checked before each statement, and database/sql still rolls the
// transaction back when its context ends. Reads outside a transaction
// keep their cancellation (a report query whose caller has gone stops).
func (q querier) stmtContext(ctx context.Context) (context.Context, error) {
	if q.tx == nil {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// stmt returns query's kept statement, bound to the transaction when there
// is one; nil when the query runs unprepared.
func (q querier) stmt(ctx context.Context, query string) *sql.Stmt {
	return q.kept(ctx, query, keepable(query))
}

// kept is stmt for a query the caller says whether to keep.
func (q querier) kept(ctx context.Context, query string, keep bool) *sql.Stmt {
	st := q.stmts.get(ctx, q.db, query, q.tx != nil, keep)
	if st != nil && q.tx != nil {
		if q.bound == nil {
			return q.tx.StmtContext(ctx, st)
		}
		return q.bound.get(ctx, q.tx, st)
	}
	return st
}

// QueryContext and ExecContext run the store's own statements: written for
// SQLite (no dialect to undo), and of fixed text however many placeholders
// they have (a multi-row INSERT), so always kept.
func (q querier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.query(ctx, query, true, args)
}

func (q querier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.exec(ctx, query, true, args)
}

// query and exec run query through its kept statement if there is one.
func (q querier) query(ctx context.Context, query string, keep bool, args []any) (*sql.Rows, error) {
	ctx, err := q.stmtContext(ctx)
	if err != nil {
		return nil, err
	}
	switch st := q.kept(ctx, query, keep); {
	case st != nil:
		return st.QueryContext(ctx, args...)
	case q.tx != nil:
		return q.tx.QueryContext(ctx, query, args...)
	default:
		return q.db.QueryContext(ctx, query, args...)
	}
}

func (q querier) exec(ctx context.Context, query string, keep bool, args []any) (sql.Result, error) {
	ctx, err := q.stmtContext(ctx)
	if err != nil {
		return nil, err
	}
	switch st := q.kept(ctx, query, keep); {
	case st != nil:
		return st.ExecContext(ctx, args...)
	case q.tx != nil:
		return q.tx.ExecContext(ctx, query, args...)
	default:
		return q.db.ExecContext(ctx, query, args...)
	}
}

// keepable says whether a business query is kept: not one whose text
// varies with its arguments.
func keepable(query string) bool { return strings.Count(query, "?") <= stmtPlaceholdersMax }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	query = dialect(query)
	res, err := q.exec(ctx, query, keepable(query), args)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Write runs at once: SQLite's statements are calls into the library, with
// no round trip to save.
func (q querier) Write(ctx context.Context, want int64, query string, args ...any) error {
	n, err := q.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	return ledger.CheckWrite(query, n, want)
}

func (q querier) Query(ctx context.Context, query string, args ...any) (ledger.Rows, error) {
	query = dialect(query)
	rows, err := q.query(ctx, query, keepable(query), args)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) ledger.Row {
	query = dialect(query)
	ctx, err := q.stmtContext(ctx)
	if err != nil {
		return errRow{err}
	}
	switch st := q.stmt(ctx, query); {
	case st != nil:
		return sqlRow{st.QueryRowContext(ctx, args...)}
	case q.tx != nil:
		return sqlRow{q.tx.QueryRowContext(ctx, query, args...)}
	default:
		return sqlRow{q.db.QueryRowContext(ctx, query, args...)}
	}
}

// dialect drops a trailing FOR UPDATE. It runs on every statement, so it
// compares in place rather than upper-casing a copy of the query.
func dialect(query string) string {
	const forUpdate = " FOR UPDATE"
	trimmed := strings.TrimRight(query, " \t\n;")
	if n := len(trimmed) - len(forUpdate); n >= 0 && strings.EqualFold(trimmed[n:], forUpdate) {
		return trimmed[:n]
	}
	return query
}

// Bounds of a statement cache. Statements whose text varies with their
// arguments (an IN list of n placeholders) would fill it with one entry
// per n, so statements with more placeholders than any fixed statement
// has are not kept. The widest fixed ones are whole rows: a trade's
// INSERT has 31 columns, its UPDATE 20; parsed on every call, those two
// were a tenth of a paid trade's CPU.
const (
	stmtCacheMax        = 512
	stmtPlaceholdersMax = 48
)

// stmtCache keeps the prepared statements of one *sql.DB by their text.
// database/sql prepares a kept statement on each connection the first
// time it runs there, and reuses it inside transactions on that connection.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool // met inside transactions, to prepare after
}

func newStmtCache() *stmtCache {
	return &stmtCache{m: make(map[string]*sql.Stmt), wanted: make(map[string]bool)}
}

// get returns the statement for query, preparing it on first use when
// keep; nil when it is not (yet) kept and the caller runs the query
// unprepared.
//
// Inside a transaction (inTx) a miss only notes the query: the writer
// pool has one connection, held by the transaction, so preparing on the
// pool would wait for it forever. Prepare runs the noted queries once the
// connection is free again.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, query string, inTx, keep bool) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, ok := c.m[query]
	full := len(c.m)+len(c.wanted) >= stmtCacheMax
	if !ok && inTx && !full && keep {
		c.wanted[query] = true
	}
	c.mu.Unlock()
	if ok || inTx || full || !keep {
		return st
	}
	return c.prepare(ctx, db, query)
}

func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, query string) *sql.Stmt {
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		// Let the plain call report the error.
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok {
		st.Close()
		return prev
	}
	c.m[query] = st
	return st
}

// prepareWanted prepares the queries transactions noted, on a pool whose
// connections are free.
func (c *stmtCache) prepareWanted(ctx context.Context, db *sql.DB) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	queries := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		queries = append(queries, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range queries {
		c.prepare(ctx, db, q)
	}
}

// close closes every kept statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type sqlRow struct{ row *sql.Row }

// errRow is a row whose statement did not run.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (r sqlRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.ErrNoRows
	}
	return err
}

// Reader runs business queries on the read pool.
func (db *DB) Reader() ledger.Querier {
	return querier{db: db.reader, stmts: db.readStmts}
}
