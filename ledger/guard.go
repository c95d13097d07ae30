package ledger

import (
	"context"
	"sync"
)

// Guard is a check a request must pass in the same transaction as the first
// change it makes: a merchant request's nonce, say, is spent in the very
// transaction that creates the trade, rather than in one of its own that
// the request would wait for first; and a request's Idempotency-Key is
// recorded in the transaction of its change, so that after a crash either
// both are there or neither is. A request carries its guards in its context
// (WithGuard); the first op the request commits through the batcher claims
// them all, and the op then runs only if every guard passes.
type Guard interface {
	// Keys name what the guard touches, like an op's keys.
	Keys() []string
	// Check runs first in the guarded op's Prepare. A non-nil refusal
	// stops the op: it applies nothing, and Do returns the refusal.
	Check(ctx context.Context, tx Tx) (refusal error, err error)
	// Record runs after the guarded op's Finish and writes what the guard
	// must remember; applied says whether the op changed anything (see
	// Applier). It returns an error wrapping ErrConflict if what Check saw
	// has changed meanwhile (another process won a race): the store runs
	// the transaction again, and Check sees the change.
	Record(ctx context.Context, tx Tx, applied bool) error
}

// Applier is implemented by ops that can tell, after Finish, whether they
// changed anything or only recorded a business refusal. An op that does not
// implement it is taken to have applied its change.
type Applier interface {
	Applied() bool
}

type guardKey struct{}

// guardSlot is a request's guards and whether an op has claimed them.
type guardSlot struct {
	mu      sync.Mutex
	guards  []Guard
	claimed bool
}

// WithGuard returns a context whose first op through a batcher is guarded
// by g, besides any guard ctx already carries that no op has claimed.
func WithGuard(ctx context.Context, g Guard) context.Context {
	if slot, _ := ctx.Value(guardKey{}).(*guardSlot); slot != nil {
		slot.mu.Lock()
		defer slot.mu.Unlock()
		if !slot.claimed {
			slot.guards = append(slot.guards, g)
			return ctx
		}
	}
	return context.WithValue(ctx, guardKey{}, &guardSlot{guards: []Guard{g}})
}

// claimGuards returns the context's guards if no op has claimed them yet.
func claimGuards(ctx context.Context) []Guard {
	slot, _ := ctx.Value(guardKey{}).(*guardSlot)
	if slot == nil {
		return nil
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.claimed {
		return nil
	}
	slot.claimed = true
	return slot.guards
}

// RunGuard commits the context's guards on their own if no op has claimed
// them: for a request that changed nothing, so its guards are still spent.
func (b *Batcher) RunGuard(ctx context.Context) error {
	gs := claimGuards(ctx)
	if len(gs) == 0 {
		return nil
	}
	op := &guarded{guards: gs}
	if err := b.do(ctx, &submission{op: op, size: 0}); err != nil {
		return err
	}
	return op.refusal
}

// guarded is an op (possibly none) behind a request's guards.
type guarded struct {
	guards  []Guard
	op      Op
	refusal error
}

func (o *guarded) Keys() []string {
	var keys []string
	for _, g := range o.guards {
		keys = append(keys, g.Keys()...)
	}
	if o.op != nil {
		keys = append(keys, o.op.Keys()...)
	}
	return keys
}

// Reads names the guards' reads and the op's, in the order Prepare makes
// them (Prefetcher).
func (o *guarded) Reads() []Read {
	var reads []Read
	for _, g := range o.guards {
		if p, ok := g.(Prefetcher); ok {
			reads = append(reads, p.Reads()...)
		}
	}
	if p, ok := o.op.(Prefetcher); ok {
		reads = append(reads, p.Reads()...)
	}
	return reads
}

func (o *guarded) Prepare(ctx context.Context, tx Tx) ([]Transfer, error) {
	o.refusal = nil
	for _, g := range o.guards {
		refusal, err := g.Check(ctx, tx)
		if err != nil || refusal != nil {
			o.refusal = refusal
			return nil, err
		}
	}
	if o.op == nil {
		return nil, nil
	}
	return o.op.Prepare(ctx, tx)
}

func (o *guarded) Finish(ctx context.Context, tx Tx, results []TransferResult) error {
	if o.refusal != nil {
		return nil
	}
	applied := false
	if o.op != nil {
		if err := o.op.Finish(ctx, tx, results); err != nil {
			return err
		}
		applied = true
		if a, ok := o.op.(Applier); ok {
			applied = a.Applied()
		}
	}
	for _, g := range o.guards {
		if err := g.Record(ctx, tx, applied); err != nil {
			return err
		}
	}
	return nil
}
