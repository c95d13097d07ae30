package ledger

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the batcher.
const (
	// BatchTransfersMax bounds the transfers committed in one transaction.
	BatchTransfersMax = 8192
	// BatchOpsMax bounds the ops committed in one transaction.
	BatchOpsMax = 4096
	// SubmissionTransfersMax bounds one caller's submission.
	SubmissionTransfersMax = 1024
	// QueueLenMax bounds the submissions waiting for a batch. A full queue
	// answers ErrBusy at once rather than letting callers pile up.
	QueueLenMax = 65536
	// commitTimeout bounds one batch's transaction, so a stuck database
	// fails the batch's callers instead of halting the batcher.
	commitTimeout = 30 * time.Second
	// opTransfersGuess is what a business op is assumed to add to a batch
	// before its Prepare says; business ops move money in a few legs.
	opTransfersGuess = 4
)

var (
	// ErrBusy means the queue is full: the caller should back off and retry.
	ErrBusy = errors.New("ledger: batcher queue full")
	// ErrClosed means the batcher is shutting down.
	ErrClosed = errors.New("ledger: batcher closed")
	// ErrTooLarge means a submission exceeds SubmissionTransfersMax.
	ErrTooLarge = errors.New("ledger: submission too large")
)

// Batcher gathers concurrent callers' ops into one database transaction
// (group commit). It never waits to fill a batch: while one batch commits,
// the next gathers, so an idle system answers at once and a busy one commits
// thousands of transfers per fsync. A caller gets its answer only after its
// batch is durable.
type Batcher struct {
	store Store
	now   func() time.Time
	queue chan *submission

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}

	stats BatcherStats
}

// BatcherStats are counters for metrics.
type BatcherStats struct {
	Batches         atomic.Int64
	Ops             atomic.Int64
	Transfers       atomic.Int64 // transfers committed (refused ones are not counted)
	CommitErrors    atomic.Int64
	CommitNanos     atomic.Int64
	LastBatchSize   atomic.Int64 // ops in the last batch
	QueueRejections atomic.Int64
}

type submission struct {
	op   Op
	size int // transfers it is expected to add
	err  error
	done chan struct{}
}

// NewBatcher starts a batcher over st. now gives commit timestamps.
func NewBatcher(st Store, now func() time.Time) *Batcher {
	b := &Batcher{store: st, now: now, queue: make(chan *submission, QueueLenMax), done: make(chan struct{})}
	go b.run()
	return b
}

// Stats returns the batcher's counters.
func (b *Batcher) Stats() *BatcherStats { return &b.stats }

// Submit commits one caller's transfers (a linked chain must lie within one
// submission) and returns a result per transfer. If ctx ends first the
// outcome is unknown: the transfers may or may not commit, and the caller
// finds out by looking them up (their ids make a retry safe).
func (b *Batcher) Submit(ctx context.Context, transfers []Transfer) ([]TransferResult, error) {
	if len(transfers) > SubmissionTransfersMax {
		return nil, ErrTooLarge
	}
	if len(transfers) == 0 {
		return nil, nil
	}
	op := &transferOp{transfers: transfers}
	if err := b.do(ctx, op, len(transfers)); err != nil {
		return nil, err
	}
	return op.results, nil
}

// Do commits one op and returns when its batch is durable. As with Submit,
// if ctx ends first the outcome is unknown.
func (b *Batcher) Do(ctx context.Context, op Op) error {
	return b.do(ctx, op, opTransfersGuess)
}

func (b *Batcher) do(ctx context.Context, op Op, size int) error {
	s := &submission{op: op, size: size, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	select {
	case b.queue <- s:
	default:
		b.mu.RUnlock()
		b.stats.QueueRejections.Add(1)
		return ErrBusy
	}
	b.mu.RUnlock()
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking submissions, commits everything already queued and
// returns when the last batch is durable.
func (b *Batcher) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	<-b.done
}

// gathering is one batch being filled.
type gathering struct {
	batch []*submission
	keys  map[string]bool
	size  int
	next  []*submission // held back for the next batch
	full  bool
}

// add puts s in the batch, or holds it back when its key is taken or the
// batch is full.
func (g *gathering) add(s *submission) {
	if g.full || (len(g.batch) > 0 && (g.size+s.size > BatchTransfersMax || len(g.batch) >= BatchOpsMax)) {
		g.full = true
		g.next = append(g.next, s)
		return
	}
	keys := s.op.Keys()
	for _, k := range keys {
		if g.keys[k] {
			g.next = append(g.next, s)
			return
		}
	}
	for _, k := range keys {
		g.keys[k] = true
	}
	g.batch = append(g.batch, s)
	g.size += s.size
}

func (b *Batcher) run() {
	defer close(b.done)
	var held []*submission
	open := true
	for open || len(held) > 0 {
		if len(held) == 0 {
			s, ok := <-b.queue
			if !ok {
				open = false
				continue
			}
			held = append(held, s)
		}
		g := gathering{keys: make(map[string]bool)}
		for _, s := range held {
			g.add(s)
		}
	gather:
		// Held-back ops are bounded by what one batch can take.
		for open && !g.full && len(g.next) < BatchOpsMax {
			select {
			case s, ok := <-b.queue:
				if !ok {
					open = false
					break gather
				}
				g.add(s)
			default:
				break gather
			}
		}
		held = g.next
		b.commit(g.batch)
	}
}

func (b *Batcher) commit(batch []*submission) {
	ops := make([]Op, len(batch))
	for i, s := range batch {
		ops[i] = s.op
	}
	start := time.Now()
	// The batch runs under its own context: one caller giving up must not
	// abort the others' commit. Callers that gave up were told the outcome
	// is unknown and will look it up.
	err := b.commitOps(ops)
	if err != nil && len(batch) > 1 {
		// Find the op that failed: each runs alone, and only its caller
		// hears of the failure.
		for _, s := range batch {
			s.err = b.commitOps([]Op{s.op})
		}
	} else {
		for _, s := range batch {
			s.err = err
		}
	}
	b.stats.CommitNanos.Add(int64(time.Since(start)))
	b.stats.Batches.Add(1)
	b.stats.Ops.Add(int64(len(batch)))
	b.stats.LastBatchSize.Store(int64(len(batch)))
	for _, s := range batch {
		if s.err != nil {
			b.stats.CommitErrors.Add(1)
		} else if t, ok := s.op.(*transferOp); ok {
			for _, r := range t.results {
				if r == TransferOK {
					b.stats.Transfers.Add(1)
				}
			}
		}
		close(s.done)
	}
}

func (b *Batcher) commitOps(ops []Op) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	return CommitOps(ctx, b.store, ops, b.now().UnixNano())
}
