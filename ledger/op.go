package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Op is one caller's unit of work in a batch: the business rows it reads and
// writes (a trade's status, an outbox message) commit in the same database
// transaction as its ledger transfers, or not at all.
//
// The batcher runs every op of a batch in one transaction: first each op's
// Prepare, which reads (and locks) what it needs and returns the transfers
// to apply; then the ledger rules over all of them; then each op's Finish,
// which sees its transfers' results and writes its rows. Ops must have no
// effect outside the transaction: a batch may run more than once (the store
// retries on conflicts), so Prepare starts from scratch each time.
//
// An error from Prepare or Finish means the database failed, not that the
// business said no: it aborts the transaction. The batcher then runs each op
// of the batch alone, so one op's failure reaches only its own caller. A
// business refusal (trade already paid, balance too low) is recorded in the
// op and is not an error.
type Op interface {
	// Keys name the business objects the op reads or changes, such as
	// "trade:T1" and "paycode:28…". A batch holds at most one op per key, so
	// an op's Prepare never sees another op of its own batch half-done. Ops
	// with no keys never conflict.
	Keys() []string
	Prepare(ctx context.Context, tx Tx) ([]Transfer, error)
	Finish(ctx context.Context, tx Tx, results []TransferResult) error
}

// Read is a query an op's Prepare will run, named before it runs
// (Prefetcher): its text, as the op will pass it to the Querier, and its
// arguments.
type Read struct {
	Query string
	Args  []any
}

// Prefetcher is an op that can name, before its Prepare, reads its Prepare
// will make: the row it locks, the nonce it looks up. A store that pays a
// round trip per statement (PostgreSQL) runs all the named reads of a batch
// at once, in one round trip, and answers the Prepares' reads from what
// came back; a store without round trips (SQLite) does not implement
// Prefetching, and the reads run as usual. Naming a read is only a hint:
// one named but not made costs its share of that round trip (and, if it
// locks, keeps its lock to the end of the transaction), one made but not
// named runs on its own, and a prefetched answer is given only while the
// transaction has written nothing since it was read.
type Prefetcher interface {
	Reads() []Read
}

// Prefetching is a Tx that runs named reads ahead of the ops' Prepares.
type Prefetching interface {
	Prefetch(ctx context.Context, reads []Read) error
}

// Querier runs business statements. Queries are written once, with ?
// placeholders; each store rewrites them for its database. A query that ends
// in " FOR UPDATE" locks the rows it reads where the database has row locks
// (PostgreSQL); SQLite's single writer needs none and drops the clause.
//
// Write is for a statement whose outcome the caller does not read beyond
// "it worked": an outbox row, a trade's new status under the lock its op
// holds. The store may hold it back and send it with the transaction's
// next statement or its commit, several in one round trip (PostgreSQL
// pipelines them); its error, or a count of rows changed other than
// wantRows (when wantRows >= 0), then fails the transaction at that point,
// as an error from Finish would. Outside a write transaction, and on
// SQLite, it runs at once.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	Write(ctx context.Context, wantRows int64, query string, args ...any) error
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is a single-row result; Scan returns ErrNoRows when there is none.
type Row interface {
	Scan(dest ...any) error
}

// ErrConflict is what an op returns (wrapped) when a row it read changed
// under it in another process, so that its check no longer holds: the store
// rolls back and runs the transaction again, as it does for the database's
// own serialisation failures.
var ErrConflict = errors.New("ledger: conflicting change by another process")

// WriteCountError is a Write that changed another number of rows than
// it was to. Writes name rows their op read, or made sure of, under its
// locks (a trade's status, a nonce not yet spent), so another count means
// another process changed them meanwhile: the error is an ErrConflict,
// and the transaction runs again on fresh rows.
type WriteCountError struct {
	Query      string
	Rows, Want int64
}

func (e *WriteCountError) Unwrap() error { return ErrConflict }

func (e *WriteCountError) Error() string {
	q := e.Query
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		q = q[:i]
	}
	return fmt.Sprintf("ledger: %d rows changed, want %d: %s", e.Rows, e.Want, q)
}

// CheckWrite is what every store's Write does with the count of rows a
// statement changed.
func CheckWrite(query string, rows, want int64) error {
	if want >= 0 && rows != want {
		return &WriteCountError{Query: query, Rows: rows, Want: want}
	}
	return nil
}

// ErrNoRows is what Row.Scan returns when the query found nothing, whatever
// the database.
var ErrNoRows = errors.New("ledger: no rows")

// transferOp is a plain submission of transfers with no business rows.
type transferOp struct {
	transfers []Transfer
	results   []TransferResult
}

func (o *transferOp) Keys() []string { return nil }

func (o *transferOp) Prepare(context.Context, Tx) ([]Transfer, error) { return o.transfers, nil }

func (o *transferOp) Finish(_ context.Context, _ Tx, r []TransferResult) error {
	o.results = r
	return nil
}

// CommitOps runs ops in one transaction as described on Op. Ops are taken
// in order of their first key, so that processes sharing a database tend to
// lock business rows in one order; where they still cross, PostgreSQL finds
// the deadlock and the store runs the batch again.
func CommitOps(ctx context.Context, st Store, ops []Op, now int64) error {
	_, err := commitOps(ctx, st, ops, now)
	return err
}

// commitOps is CommitOps that also says how many transfers it created.
func commitOps(ctx context.Context, st Store, ops []Op, now int64) (created int, err error) {
	ops = append([]Op(nil), ops...)
	sort.SliceStable(ops, func(i, j int) bool { return firstKey(ops[i]) < firstKey(ops[j]) })
	err = st.Update(ctx, func(tx Tx) error {
		created = 0
		if err := prefetch(ctx, tx, ops); err != nil {
			return err
		}
		subs := make([][]Transfer, len(ops))
		for i, op := range ops {
			var err error
			if subs[i], err = op.Prepare(ctx, tx); err != nil {
				return err
			}
		}
		s, err := load(ctx, tx, subs)
		if err != nil {
			return err
		}
		for i, op := range ops {
			if err := op.Finish(ctx, tx, s.Apply(subs[i], now)); err != nil {
				return err
			}
		}
		if len(s.created) == 0 {
			return nil
		}
		if err := tx.InsertTransfers(ctx, s.created); err != nil {
			return err
		}
		created = len(s.created)
		changed := s.Changed()
		assertBalanced(s.before, changed)
		written, err := tx.UpdateAccounts(ctx, changed)
		if err != nil {
			return err
		}
		assertWritten(changed, written)
		return nil
	})
	if err != nil {
		created = 0
	}
	return created, err
}

// prefetch runs the reads the ops name (Prefetcher), if the store can run
// them ahead.
func prefetch(ctx context.Context, tx Tx, ops []Op) error {
	pf, ok := tx.(Prefetching)
	if !ok {
		return nil
	}
	var reads []Read
	for _, op := range ops {
		if p, ok := op.(Prefetcher); ok {
			reads = append(reads, p.Reads()...)
		}
	}
	if len(reads) == 0 {
		return nil
	}
	return pf.Prefetch(ctx, reads)
}

func firstKey(op Op) string {
	if k := op.Keys(); len(k) > 0 {
		return k[0]
	}
	return ""
}
