package ledger

import (
	"context"
	"sync/atomic"
)

// Guard is a check a request must pass in the same transaction as the first
// change it makes: a merchant request's nonce, say, is spent in the very
// transaction that creates the trade, rather than in one of its own that
// the request would wait for first. A request carries its guard in its
// context (WithGuard); the first op the request commits through the
// batcher claims it, and the op then runs only if the guard passes.
type Guard interface {
	// Keys name what the guard touches, like an op's keys.
	Keys() []string
	// Check runs first in the guarded op's Prepare. A non-nil refusal
	// stops the op: it applies nothing, and Do returns the refusal.
	Check(ctx context.Context, tx Tx) (refusal error, err error)
	// Record runs first in the guarded op's Finish and writes what the
	// guard must remember. It returns an error if what Check saw has
	// changed meanwhile (another process won a race), which aborts the
	// batch; the batcher then runs each op alone and Check sees the change.
	Record(ctx context.Context, tx Tx) error
}

type guardKey struct{}

// guardSlot is a request's guard and whether an op has claimed it.
type guardSlot struct {
	g       Guard
	claimed atomic.Bool
}

// WithGuard returns a context whose first op through a batcher is guarded
// by g.
func WithGuard(ctx context.Context, g Guard) context.Context {
	return context.WithValue(ctx, guardKey{}, &guardSlot{g: g})
}

// claimGuard returns the context's guard if no op has claimed it yet.
func claimGuard(ctx context.Context) Guard {
	slot, _ := ctx.Value(guardKey{}).(*guardSlot)
	if slot == nil || !slot.claimed.CompareAndSwap(false, true) {
		return nil
	}
	return slot.g
}

// RunGuard commits the context's guard on its own if no op has claimed it:
// for a request that changed nothing, so its guard is still spent.
func (b *Batcher) RunGuard(ctx context.Context) error {
	g := claimGuard(ctx)
	if g == nil {
		return nil
	}
	op := &guarded{g: g}
	if err := b.do(ctx, &submission{op: op, size: 0}); err != nil {
		return err
	}
	return op.refusal
}

// guarded is an op (possibly none) behind a guard.
type guarded struct {
	g       Guard
	op      Op
	refusal error
}

func (o *guarded) Keys() []string {
	keys := o.g.Keys()
	if o.op != nil {
		keys = append(append([]string(nil), keys...), o.op.Keys()...)
	}
	return keys
}

func (o *guarded) Prepare(ctx context.Context, tx Tx) ([]Transfer, error) {
	refusal, err := o.g.Check(ctx, tx)
	o.refusal = refusal
	if err != nil || refusal != nil || o.op == nil {
		return nil, err
	}
	return o.op.Prepare(ctx, tx)
}

func (o *guarded) Finish(ctx context.Context, tx Tx, results []TransferResult) error {
	if o.refusal != nil {
		return nil
	}
	if err := o.g.Record(ctx, tx); err != nil {
		return err
	}
	if o.op == nil {
		return nil
	}
	return o.op.Finish(ctx, tx, results)
}
