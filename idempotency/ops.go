package idempotency

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"zhifu/ledger"
)

// guard records a key in the transaction of its request's first change.
type guard struct {
	req Request
	now time.Time

	refused atomic.Bool // Check found the key taken: the request changed nothing
	// over is set once the request has answered: a guard no op claimed
	// may still be committed afterwards (Batcher.RunGuard, for a request
	// that changed nothing), and must then neither refuse nor record.
	over atomic.Bool
}

func (g *guard) Keys() []string { return []string{keyOf(g.req)} }

func keyOf(r Request) string { return "idempotency:" + r.Scope + ":" + r.Key }

// Check refuses the change if the key was recorded since the request's
// look before it ran: another process applied a request with this key
// meanwhile.
// lockKeySQL reads and locks a request's key.
const lockKeySQL = `SELECT request_hash, state, created_at FROM idempotency_keys
		WHERE scope = ? AND idem_key = ? FOR UPDATE`

// Reads names Check's read, for a store to run with the batch's others
// (ledger.Prefetcher).
func (g *guard) Reads() []ledger.Read {
	if g.over.Load() {
		return nil
	}
	return []ledger.Read{{Query: lockKeySQL, Args: []any{g.req.Scope, g.req.Key}}}
}

func (g *guard) Check(ctx context.Context, tx ledger.Tx) (error, error) {
	g.refused.Store(false)
	if g.over.Load() {
		return nil, nil
	}
	var hash string
	var state int
	var created int64
	err := tx.QueryRow(ctx, lockKeySQL, g.req.Scope, g.req.Key).Scan(&hash, &state, &created)
	switch {
	case errors.Is(err, ledger.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("check idempotency key: %w", err)
	case !counts(state, created, g.now):
		return nil, nil
	}
	g.refused.Store(true)
	if hash != g.req.Hash {
		return errReused(), nil
	}
	return errInUse(), nil
}

// Record writes the key beside the change, if the request changed
// anything; a request refused for a business reason changed nothing and
// leaves its key to the stored response. Writing over a row is allowed
// only where Check would have: an expired row or an old claim.
func (g *guard) Record(ctx context.Context, tx ledger.Tx, applied bool) error {
	if !applied || g.over.Load() {
		return nil
	}
	// No row written means another process recorded the key after Check:
	// the Write's count error is an ErrConflict, so the transaction runs
	// again and Check sees the key.
	err := tx.Write(ctx, 1, `INSERT INTO idempotency_keys (scope, idem_key, request_hash, state, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (scope, idem_key) DO UPDATE SET request_hash = excluded.request_hash,
			state = excluded.state, status = 0, content_type = '', body = '', created_at = excluded.created_at
		WHERE idempotency_keys.state NOT IN (?, ?) OR idempotency_keys.created_at <= ?`,
		g.req.Scope, g.req.Key, g.req.Hash, stateApplied, g.now.UnixNano(),
		stateDone, stateApplied, g.now.Add(-TTL).UnixNano())
	if err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	}
	return nil
}

// storeOp stores a request's response under its key. It replaces the row
// the request's own change wrote, or one that no longer counts; never a
// live row of another request.
type storeOp struct {
	req  Request
	resp Response
	now  time.Time
}

func (o *storeOp) Keys() []string { return []string{keyOf(o.req)} }

func (o *storeOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *storeOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	err := tx.Write(ctx, -1, `INSERT INTO idempotency_keys
		(scope, idem_key, request_hash, state, status, content_type, body, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, idem_key) DO UPDATE SET request_hash = excluded.request_hash,
			state = excluded.state, status = excluded.status, content_type = excluded.content_type,
			body = excluded.body, created_at = excluded.created_at
		WHERE idempotency_keys.request_hash = excluded.request_hash
			OR idempotency_keys.state NOT IN (?, ?) OR idempotency_keys.created_at <= ?`,
		o.req.Scope, o.req.Key, o.req.Hash, stateDone, o.resp.Status, o.resp.ContentType,
		string(o.resp.Body), o.now.UnixNano(), stateDone, stateApplied, o.now.Add(-TTL).UnixNano())
	if err != nil {
		return fmt.Errorf("store idempotent response: %w", err)
	}
	return nil
}

// sweepOp deletes up to sweepRowsMax keys that no longer count.
type sweepOp struct {
	cutoff  int64
	deleted int64
}

func (o *sweepOp) Keys() []string { return []string{"idempotency:sweep"} }

func (o *sweepOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.deleted = 0
	return nil, nil
}

func (o *sweepOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	var err error
	o.deleted, err = tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE (scope, idem_key) IN
		(SELECT scope, idem_key FROM idempotency_keys WHERE created_at <= ? LIMIT ?)`, o.cutoff, sweepRowsMax)
	if err != nil {
		return fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return nil
}

func (k *Keeper) sweepLoop() {
	defer close(k.done)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-k.stop
		cancel()
	}()
	k.RunSweeps(ctx)
}

// RunSweeps sweeps expired keys every sweepInterval until ctx ends.
func (k *Keeper) RunSweeps(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.Sweep(ctx); err != nil && ctx.Err() == nil {
				k.cfg.Logger.Warn("idempotency sweep", "err", err)
			}
		}
	}
}

// Sweep deletes expired keys in bounded batches on the ledger's background
// lane, and returns once fewer than a batch remain (or after
// sweepBatchesMax batches).
func (k *Keeper) Sweep(ctx context.Context) error {
	for range sweepBatchesMax {
		op := &sweepOp{cutoff: k.cfg.Clock.Now().Add(-TTL).UnixNano()}
		c, cancel := context.WithTimeout(ctx, sweepTimeout)
		err := k.cfg.Batcher.DoBulk(c, op)
		cancel()
		if err != nil {
			return err
		}
		if op.deleted < sweepRowsMax {
			return nil
		}
	}
	return nil
}
