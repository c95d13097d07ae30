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
	// SubmissionTransfersMax bounds one caller's submission.
	SubmissionTransfersMax = 1024
	// QueueLenMax bounds the submissions waiting for a batch. A full queue
	// answers ErrBusy at once rather than letting callers pile up.
	QueueLenMax = 65536
)

var (
	// ErrBusy means the queue is full: the caller should back off and retry.
	ErrBusy = errors.New("ledger: batcher queue full")
	// ErrClosed means the batcher is shutting down.
	ErrClosed = errors.New("ledger: batcher closed")
	// ErrTooLarge means a submission exceeds SubmissionTransfersMax.
	ErrTooLarge = errors.New("ledger: submission too large")
)

// Batcher gathers concurrent callers' submissions into one database
// transaction (group commit). It never waits to fill a batch: while one batch
// commits, the next gathers, so an idle system answers at once and a busy one
// commits thousands of transfers per fsync. A caller gets its results only
// after its batch is durable.
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
	Transfers       atomic.Int64
	CommitErrors    atomic.Int64
	CommitNanos     atomic.Int64
	LastBatchSize   atomic.Int64
	QueueRejections atomic.Int64
}

type submission struct {
	transfers []Transfer
	results   []TransferResult
	err       error
	done      chan struct{}
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
	s := &submission{transfers: transfers, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case b.queue <- s:
	default:
		b.mu.RUnlock()
		b.stats.QueueRejections.Add(1)
		return nil, ErrBusy
	}
	b.mu.RUnlock()
	select {
	case <-s.done:
		return s.results, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
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

func (b *Batcher) run() {
	defer close(b.done)
	var batch []*submission
	for first := range b.queue {
		batch = append(batch[:0], first)
		n := len(first.transfers)
	gather:
		for n < BatchTransfersMax {
			select {
			case s, ok := <-b.queue:
				if !ok {
					break gather
				}
				batch = append(batch, s)
				n += len(s.transfers)
				if n >= BatchTransfersMax {
					break gather
				}
			default:
				break gather
			}
		}
		b.commit(batch)
	}
}

func (b *Batcher) commit(batch []*submission) {
	// Submissions whose callers already gave up are still committed: the
	// caller was told the outcome is unknown and will look it up.
	subs := make([][]Transfer, len(batch))
	n := 0
	for i, s := range batch {
		subs[i] = s.transfers
		n += len(s.transfers)
	}
	start := time.Now()
	// The batch runs under its own context: one caller's cancellation must
	// not abort the others' commit.
	results, err := Commit(context.Background(), b.store, subs, b.now().UnixNano())
	b.stats.CommitNanos.Add(int64(time.Since(start)))
	b.stats.Batches.Add(1)
	b.stats.LastBatchSize.Store(int64(n))
	if err != nil {
		b.stats.CommitErrors.Add(1)
	} else {
		b.stats.Transfers.Add(int64(n))
	}
	for i, s := range batch {
		if err != nil {
			s.err = err
		} else {
			s.results = results[i]
		}
		close(s.done)
	}
}
