package banksim

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"zhifu/bankapi"
)

// Limits of callback delivery.
const (
	// callbackQueueMax bounds the jobs waiting (callbacks and settlements);
	// beyond it a callback is dropped and counted lost, as an overloaded
	// bank drops them.
	callbackQueueMax = 100_000
	// callbackWorkers bounds the callbacks in flight.
	callbackWorkers = 16
	// callbackAnswerBytesMax is how much of the platform's answer is read.
	callbackAnswerBytesMax = 4 << 10
)

// job is work due at a time: a callback attempt or a settlement.
type job struct {
	due time.Time
	seq uint64 // keeps jobs due at the same instant in the order added
	run func(context.Context)
}

type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// scheduler holds jobs until they are due, in a bounded heap. Delays are
// real time: they stand for time on the wire.
type scheduler struct {
	mu   sync.Mutex
	jobs jobHeap
	seq  uint64
	max  int
	wake chan struct{}
}

func newScheduler(max int) *scheduler {
	return &scheduler{max: max, wake: make(chan struct{}, 1)}
}

// add queues run at due; false when the queue is full.
func (q *scheduler) add(due time.Time, run func(context.Context)) bool {
	q.mu.Lock()
	if len(q.jobs) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.seq++
	heap.Push(&q.jobs, &job{due: due, seq: q.seq, run: run})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// next pops the first job if due at now; otherwise it returns how long until
// the first is due, or -1 when there is none.
func (q *scheduler) next(now time.Time) (*job, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.jobs) == 0 {
		return nil, -1
	}
	if d := q.jobs[0].due.Sub(now); d > 0 {
		return nil, d
	}
	return heap.Pop(&q.jobs).(*job), 0
}

// run hands due jobs to work until ctx ends.
func (q *scheduler) run(ctx context.Context, work chan<- *job) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		j, wait := q.next(time.Now())
		if j != nil {
			select {
			case work <- j:
				continue
			case <-ctx.Done():
				return
			}
		}
		timer.Stop()
		var due <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-q.wake:
		case <-due:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Sim) startWorkers() {
	work := make(chan *job)
	s.workers.Add(1 + callbackWorkers)
	go func() {
		defer s.workers.Done()
		s.sched.run(s.ctx, work)
	}()
	for range callbackWorkers {
		go func() {
			defer s.workers.Done()
			for {
				select {
				case j := <-work:
					j.run(s.ctx)
				case <-s.ctx.Done():
					return
				}
			}
		}()
	}
}

// delivery is one callback being delivered, with its retries.
type delivery struct {
	bank      *bankState
	requestID string
	url       string
	body      []byte
	retry     time.Duration // first gap; doubles
	attempts  int           // at most
	attempt   int           // made so far
}

// sendCallback schedules the callback of a decided transaction, applying
// the scenario's loss, duplication, delay and reordering.
func (s *Sim) sendCallback(b *bankState, sc Scenario, r row) {
	if r.CallbackURL == "" {
		return
	}
	if s.chance(sc.CallbackLossRate) {
		b.stats.callbacksLost.Add(1)
		s.log.Debug("callback lost (injected)", "bank", b.name, "request_id", r.RequestID)
		return
	}
	body, err := json.Marshal(r.transaction())
	if err != nil {
		panic("banksim: transaction does not marshal: " + err.Error())
	}
	copies := 1
	if s.chance(sc.CallbackDuplicateRate) {
		copies = 2
		b.stats.callbacksDuplicated.Add(1)
	}
	for i := range copies {
		delay := time.Duration(sc.CallbackDelayMs)*time.Millisecond + time.Duration(i)*duplicateGapMs*time.Millisecond
		if sc.CallbackReorderMs > 0 && s.chance(sc.CallbackReorderRate) {
			delay += time.Duration(s.uniform() * float64(time.Duration(sc.CallbackReorderMs)*time.Millisecond))
		}
		d := &delivery{bank: b, requestID: r.RequestID, url: r.CallbackURL, body: body,
			retry: sc.callbackRetry(), attempts: sc.callbackAttempts()}
		if !s.sched.add(time.Now().Add(delay), func(ctx context.Context) { s.deliver(ctx, d) }) {
			b.stats.callbacksLost.Add(1)
			s.log.Warn("callback queue full; callback dropped", "bank", b.name, "request_id", r.RequestID)
		}
	}
}

// deliver makes one attempt and schedules the next if it failed.
func (s *Sim) deliver(ctx context.Context, d *delivery) {
	d.attempt++
	d.bank.stats.callbacksSent.Add(1)
	if s.post(ctx, d) {
		d.bank.stats.callbacksDelivered.Add(1)
		return
	}
	if ctx.Err() != nil {
		return
	}
	if d.attempt >= d.attempts {
		d.bank.stats.callbacksGaveUp.Add(1)
		s.log.Warn("callback given up", "bank", d.bank.name, "request_id", d.requestID, "attempts", d.attempt)
		return
	}
	gap := d.retry << (d.attempt - 1)
	if !s.sched.add(time.Now().Add(gap), func(ctx context.Context) { s.deliver(ctx, d) }) {
		d.bank.stats.callbacksGaveUp.Add(1)
	}
}

// post sends the callback once, signed now; true on a 2xx answer.
func (s *Sim) post(ctx context.Context, d *delivery) bool {
	ctx, cancel := context.WithTimeout(ctx, callbackTimeoutDefault)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		s.log.Warn("callback url unusable", "bank", d.bank.name, "request_id", d.requestID, "err", err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(bankapi.SignatureHeader, bankapi.Sign(d.bank.secret, s.now(), d.body))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		s.log.Debug("callback attempt failed", "bank", d.bank.name, "request_id", d.requestID, "err", err)
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, callbackAnswerBytesMax))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}
