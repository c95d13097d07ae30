package admission

import (
	"container/list"
	"context"
	"math"
	"sync"
	"time"

	"zhifu"
)

// Defaults of the limiter: how much of the limit each class may fill, and how
// many of each may wait, for how long. A payment may use every slot; a
// change 80%, a query 60%, a bulk read 30%, so the lowest are the first
// refused. Payments and changes wait up to half a second (a burst of them
// is absorbed, and the answer still comes within a second); reads wait a
// tenth, since a read refused is cheaply tried again.
var (
	shareDefault        = [Classes]float64{Pay: 1, Change: 0.8, Query: 0.6, Bulk: 0.3}
	queueLengthDefault  = [Classes]int{Pay: 1024, Change: 512, Query: 256, Bulk: 32}
	queueWaitMaxDefault = [Classes]time.Duration{Pay: 500 * time.Millisecond, Change: 500 * time.Millisecond,
		Query: 100 * time.Millisecond, Bulk: 100 * time.Millisecond}
)

// Config tunes a Limiter; zero fields take the defaults.
type Config struct {
	// Clock measures latency and queue waits: the real clock, never a
	// test's business clock, since what it measures is real time.
	Clock    zhifu.Clock
	Gradient GradientConfig
	// Share is the fraction of the limit a class may fill; Pay's is 1.
	Share [Classes]float64
	// QueueLength bounds each class's queue; QueueWaitMax bounds a wait.
	QueueLength  [Classes]int
	QueueWaitMax [Classes]time.Duration
}

// Limiter admits requests under an adaptive limit, by class. It is safe for
// concurrent use.
type Limiter struct {
	clock     zhifu.Clock
	share     [Classes]float64
	queueLen  [Classes]int
	waitMax   [Classes]time.Duration
	mu        sync.Mutex
	grad      *Gradient
	inFlight  int
	perClass  [Classes]int
	queues    [Classes]*list.List // of *Waiter, oldest first
	cutCached [Classes]int        // thresholds for the current limit
}

// standingShare: a newcomer is refused at once when the oldest waiter of its
// class has already waited this share of the class's wait. Such a queue is
// standing, not a burst being absorbed, and the newcomer would most likely
// wait its whole time to be refused anyway (CoDel's insight: judge a queue
// by how long its requests wait, not by how long it is).
const standingShare = 0.5

// NewLimiter returns a limiter at the configured initial limit.
func NewLimiter(cfg Config) *Limiter {
	l := &Limiter{clock: cfg.Clock, grad: NewGradient(cfg.Gradient)}
	if l.clock == nil {
		l.clock = zhifu.SystemClock{}
	}
	for c := range Classes {
		l.share[c] = cfg.Share[c]
		if l.share[c] <= 0 || l.share[c] > 1 {
			l.share[c] = shareDefault[c]
		}
		l.queueLen[c] = cfg.QueueLength[c]
		if l.queueLen[c] <= 0 {
			l.queueLen[c] = queueLengthDefault[c]
		}
		l.waitMax[c] = cfg.QueueWaitMax[c]
		if l.waitMax[c] <= 0 {
			l.waitMax[c] = queueWaitMaxDefault[c]
		}
		l.queues[c] = list.New()
	}
	l.share[Pay] = 1
	l.recut()
	return l
}

// Ticket is a request admitted: it holds a slot until Release.
type Ticket struct {
	l     *Limiter
	class Class
	start time.Time
	once  sync.Once
}

// Waiter is a request waiting in its class's queue.
type Waiter struct {
	l        *Limiter
	class    Class
	enqueued time.Time
	deadline time.Time
	ready    chan struct{} // closed when granted or refused
	elem     *list.Element // nil once out of the queue
	ticket   *Ticket       // set when granted
	reason   Reason        // set when refused
}

// Acquire admits a request of class c at once (a Ticket), queues it (a
// Waiter, to Wait on), or refuses it (a Reason): when the class's queue is
// full, or standing (its oldest waiter has waited half the class's wait).
func (l *Limiter) Acquire(c Class) (*Ticket, *Waiter, Reason) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if l.inFlight < l.cutCached[c] && !l.waitingAtOrAbove(c) {
		return l.admit(c, now), nil, ""
	}
	q := l.queues[c]
	if q.Len() >= l.queueLen[c] {
		return nil, nil, QueueFull
	}
	if e := q.Front(); e != nil && now.Sub(e.Value.(*Waiter).enqueued) >= time.Duration(standingShare*float64(l.waitMax[c])) {
		return nil, nil, Overloaded
	}
	w := &Waiter{l: l, class: c, enqueued: now, deadline: now.Add(l.waitMax[c]), ready: make(chan struct{})}
	w.elem = q.PushBack(w)
	return nil, w, ""
}

// waitingAtOrAbove reports whether a request of class c or higher waits, so
// that a newcomer does not pass it.
func (l *Limiter) waitingAtOrAbove(c Class) bool {
	for k := Pay; k <= c; k++ {
		if l.queues[k].Len() > 0 {
			return true
		}
	}
	return false
}

func (l *Limiter) admit(c Class, now time.Time) *Ticket {
	l.inFlight++
	l.perClass[c]++
	return &Ticket{l: l, class: c, start: now}
}

// Release frees the ticket's slot, measures how long it was held, and lets
// waiters in. dropped says the request failed for lack of capacity.
// Releasing twice does nothing.
func (t *Ticket) Release(dropped bool) {
	t.once.Do(func() {
		l := t.l
		now := l.clock.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		inFlight := l.inFlight
		l.inFlight--
		l.perClass[t.class]--
		if l.grad.Sample(now, t.class, now.Sub(t.start), inFlight, dropped) {
			l.recut()
		}
		l.expire(now)
		l.dispatch(now)
	})
}

// Wait blocks until the waiter is let in (its Ticket), refused, or ctx ends;
// it also returns how long it waited.
func (w *Waiter) Wait(ctx context.Context) (*Ticket, time.Duration, Reason) {
	timer := time.NewTimer(w.deadline.Sub(w.l.clock.Now()))
	defer timer.Stop()
	select {
	case <-w.ready:
	case <-timer.C:
		w.l.cancel(w, QueueTimeout)
	case <-ctx.Done():
		w.l.cancel(w, Canceled)
	}
	<-w.ready // closed by now: whichever came first decided under the lock
	return w.ticket, w.waited(), w.reason
}

// Ready is closed once the waiter has been let in or refused; Outcome then
// says which. For callers that cannot block, and for tests.
func (w *Waiter) Ready() <-chan struct{} { return w.ready }

// Outcome returns the ticket or the refusal, once Ready is closed.
func (w *Waiter) Outcome() (*Ticket, Reason) {
	<-w.ready
	return w.ticket, w.reason
}

func (w *Waiter) waited() time.Duration {
	if w.ticket != nil {
		return w.ticket.start.Sub(w.enqueued)
	}
	return w.l.clock.Now().Sub(w.enqueued)
}

// Expire refuses every waiter whose wait has run out.
func (l *Limiter) Expire() {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
}

// cancel takes w out of its queue with reason, unless it was decided.
func (l *Limiter) cancel(w *Waiter, reason Reason) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.elem != nil {
		l.refuse(w, reason)
	}
}

// expire refuses, oldest first, the waiters past their deadline: each queue
// is in order of arrival and one class waits one time, so only heads need
// looking at.
func (l *Limiter) expire(now time.Time) {
	for c := range Classes {
		q := l.queues[c]
		for e := q.Front(); e != nil; e = q.Front() {
			w := e.Value.(*Waiter)
			if now.Before(w.deadline) {
				break
			}
			l.refuse(w, QueueTimeout)
		}
	}
}

func (l *Limiter) refuse(w *Waiter, reason Reason) {
	l.queues[w.class].Remove(w.elem)
	w.elem, w.reason = nil, reason
	close(w.ready)
}

// dispatch lets waiters in, highest class first and oldest first within a
// class, while their class's share of the limit has room.
func (l *Limiter) dispatch(now time.Time) {
	for c := range Classes {
		q := l.queues[c]
		for e := q.Front(); e != nil && l.inFlight < l.cutCached[c]; e = q.Front() {
			w := e.Value.(*Waiter)
			q.Remove(e)
			w.elem, w.ticket = nil, l.admit(Class(c), now)
			close(w.ready)
		}
	}
}

// recut recomputes each class's threshold for the current limit.
func (l *Limiter) recut() {
	limit := float64(l.grad.Limit())
	for c := range Classes {
		l.cutCached[c] = max(1, int(math.Ceil(limit*l.share[c])))
	}
}

// Stats is a snapshot of a limiter.
type Stats struct {
	Limit    int
	InFlight [Classes]int
	Queued   [Classes]int
}

// Stats returns the current limit, and the requests in progress and waiting
// by class.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Limit: l.grad.Limit(), InFlight: l.perClass}
	for c := range Classes {
		s.Queued[c] = l.queues[c].Len()
	}
	return s
}
