package postgres

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// tripCounter counts the round trips of write transactions: every query,
// pipelined batch, copy and statement preparation that a connection sends
// while it runs an Update. The rest of the pool's traffic (reads outside
// a transaction) is not counted.
type tripCounter struct {
	active sync.Map // *pgx.Conn running an Update → struct{}
	trips  atomic.Int64
}

var (
	_ pgx.QueryTracer    = (*tripCounter)(nil)
	_ pgx.BatchTracer    = (*tripCounter)(nil)
	_ pgx.CopyFromTracer = (*tripCounter)(nil)
	_ pgx.PrepareTracer  = (*tripCounter)(nil)
)

// watch counts conn's round trips until the returned function is called.
func (c *tripCounter) watch(conn *pgx.Conn) (stop func()) {
	c.active.Store(conn, struct{}{})
	return func() { c.active.Delete(conn) }
}

func (c *tripCounter) count(conn *pgx.Conn) {
	if _, ok := c.active.Load(conn); ok {
		c.trips.Add(1)
	}
}

func (c *tripCounter) TraceQueryStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.count(conn)
	return ctx
}

func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *tripCounter) TraceBatchStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.count(conn)
	return ctx
}

func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *tripCounter) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.count(conn)
	return ctx
}

func (c *tripCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (c *tripCounter) TracePrepareStart(ctx context.Context, conn *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.count(conn)
	return ctx
}

func (c *tripCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// RoundTrips reports how many round trips to the server this process's
// write transactions have made so far, their BEGIN and COMMIT among them.
// A benchmark divides the change by the transactions it committed.
func (db *DB) RoundTrips() int64 { return db.trips.trips.Load() }
