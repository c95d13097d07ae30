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
	// BulkQueueLenMax bounds the background lane (see DoBulk).
	BulkQueueLenMax = 262144
	// RideQueueLenMax bounds the riders waiting for a batch (see Ride).
	RideQueueLenMax = 65536
	// ridersPerBatchMax is how many riders one batch carries. Riders are
	// single small writes nobody waits on, so a batch takes many of them
	// whatever else it carries.
	ridersPerBatchMax = 1024
	// bulkOpsPerBusyBatch is how many background ops ride in a batch that
	// also carries urgent ones: enough to make steady progress, few enough
	// that a payment's commit barely grows. A batch with no urgent op takes
	// bulkOpsPerIdleBatch.
	bulkOpsPerBusyBatch = 64
	bulkOpsPerIdleBatch = 1024
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
	queue chan *submission // urgent lane: payments and everything a person waits on
	bulk  chan *submission // background lane: mass withdrawals, timers, bulk imports
	ride  chan *submission // riders: small writes that join whatever batch comes next

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}

	stats BatcherStats
}

// BatcherStats are counters for metrics.
type BatcherStats struct {
	Batches         atomic.Int64
	Ops             atomic.Int64
	Transfers       atomic.Int64 // transfers committed by any op (refused ones are not counted)
	CommitErrors    atomic.Int64
	CommitNanos     atomic.Int64
	LastBatchSize   atomic.Int64 // ops in the last batch
	QueueRejections atomic.Int64
}

type submission struct {
	op   Op
	bulk bool
	size int // transfers it is expected to add
	err  error
	done chan struct{}
	then func(error) // for riders: called once the batch is durable (or failed)
}

// NewBatcher starts a batcher over st. now gives commit timestamps.
func NewBatcher(st Store, now func() time.Time) *Batcher {
	b := &Batcher{store: st, now: now, queue: make(chan *submission, QueueLenMax),
		bulk: make(chan *submission, BulkQueueLenMax), ride: make(chan *submission, RideQueueLenMax),
		done: make(chan struct{})}
	go b.run()
	return b
}

// QueueLen reports how many submissions wait in each lane.
func (b *Batcher) QueueLen() (urgent, bulk int) { return len(b.queue), len(b.bulk) }

// Ride queues op to join the next batch, whichever lane fills it, without
// a commit of its own and without waiting: then, if not nil, is called with
// the outcome once that batch is durable or has failed. Ride is for small
// writes that may be lost in a crash without harm, because whoever needs
// them can do without (a stored response that a retry can rebuild). It
// returns false, and op will not run, when the rider queue is full or the
// batcher is closed.
func (b *Batcher) Ride(op Op, then func(error)) bool {
	s := &submission{op: op, done: make(chan struct{}), then: then}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false
	}
	select {
	case b.ride <- s:
		return true
	default:
		b.stats.QueueRejections.Add(1)
		return false
	}
}

// Stats returns the batcher's counters.
func (b *Batcher) Stats() *BatcherStats { return &b.stats }

// Submit commits one caller's transfers (a linked chain must lie within one
// submission), behind the context's guards if it is the request's first
// change, and returns a result per transfer. If ctx ends first the
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
	var sub Op = op
	var wrapped *guarded
	if gs := claimGuards(ctx); len(gs) > 0 {
		wrapped = &guarded{guards: gs, op: op}
		sub = wrapped
	}
	if err := b.do(ctx, &submission{op: sub, size: len(transfers)}); err != nil {
		return nil, err
	}
	if wrapped != nil && wrapped.refusal != nil {
		return nil, wrapped.refusal
	}
	return op.results, nil
}

// Do commits one op and returns when its batch is durable. As with Submit,
// if ctx ends first the outcome is unknown.
func (b *Batcher) Do(ctx context.Context, op Op) error {
	return b.doGuarded(ctx, op, false)
}

// DoBulk commits an op in the background lane: it waits while urgent work
// is queued, and a batch carries only a few background ops beside urgent
// ones. A burst of a hundred thousand withdrawals therefore queues here
// without slowing the payments that arrive meanwhile.
func (b *Batcher) DoBulk(ctx context.Context, op Op) error {
	return b.doGuarded(ctx, op, true)
}

// doGuarded commits op behind the context's guard if it is the request's
// first op (see Guard).
func (b *Batcher) doGuarded(ctx context.Context, op Op, bulk bool) error {
	gs := claimGuards(ctx)
	if len(gs) == 0 {
		return b.do(ctx, &submission{op: op, bulk: bulk, size: opTransfersGuess})
	}
	wrapped := &guarded{guards: gs, op: op}
	if err := b.do(ctx, &submission{op: wrapped, bulk: bulk, size: opTransfersGuess}); err != nil {
		return err
	}
	return wrapped.refusal
}

func (b *Batcher) do(ctx context.Context, s *submission) error {
	s.done = make(chan struct{})
	q := b.queue
	if s.bulk {
		q = b.bulk
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	select {
	case q <- s:
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
		close(b.bulk)
		close(b.ride)
	}
	b.mu.Unlock()
	<-b.done
}

// gathering is one batch being filled.
type gathering struct {
	batch []*submission
	keys  map[string]bool
	size  int
	bulk  int           // background ops in the batch
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
	if s.bulk {
		g.bulk++
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	q, bq, rq := b.queue, b.bulk, b.ride // set to nil once closed and drained
	var held []*submission
	for q != nil || bq != nil || rq != nil || len(held) > 0 {
		if len(held) == 0 {
			select {
			case s, ok := <-q:
				if !ok {
					q = nil
					continue
				}
				held = append(held, s)
			case s, ok := <-bq:
				if !ok {
					bq = nil
					continue
				}
				held = append(held, s)
			case s, ok := <-rq:
				if !ok {
					rq = nil
					continue
				}
				held = append(held, s)
			}
		}
		g := gathering{keys: make(map[string]bool)}
		for _, s := range held {
			g.add(s)
		}
		q = gather(q, &g, BatchOpsMax)
		bulkMax := bulkOpsPerIdleBatch
		if len(g.batch) > g.bulk {
			bulkMax = bulkOpsPerBusyBatch
		}
		bq = gather(bq, &g, bulkMax)
		rq = gather(rq, &g, ridersPerBatchMax)
		held = g.next
		b.commit(g.batch)
	}
}

// gather adds to g what is waiting on q, without waiting, until the batch
// is full or holds limit ops of q's lane. It returns nil for a closed q.
// Held-back ops are bounded by what one batch can take.
func gather(q chan *submission, g *gathering, limit int) chan *submission {
	for taken := 0; q != nil && !g.full && taken < limit && len(g.next) < BatchOpsMax; taken++ {
		select {
		case s, ok := <-q:
			if !ok {
				return nil
			}
			g.add(s)
		default:
			return q
		}
	}
	return q
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
	created, err := b.commitOps(ops)
	if err != nil && len(batch) > 1 {
		// Find the op that failed: each runs alone, and only its caller
		// hears of the failure.
		created = 0
		for _, s := range batch {
			var n int
			n, s.err = b.commitOps([]Op{s.op})
			created += n
		}
	} else {
		for _, s := range batch {
			s.err = err
		}
	}
	b.stats.Transfers.Add(int64(created))
	b.stats.CommitNanos.Add(int64(time.Since(start)))
	b.stats.Batches.Add(1)
	b.stats.Ops.Add(int64(len(batch)))
	b.stats.LastBatchSize.Store(int64(len(batch)))
	for _, s := range batch {
		if s.err != nil {
			b.stats.CommitErrors.Add(1)
		}
		close(s.done)
		if s.then != nil {
			s.then(s.err)
		}
	}
}

func (b *Batcher) commitOps(ops []Op) (created int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	return commitOps(ctx, b.store, ops, b.now().UnixNano())
}
