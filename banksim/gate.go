package banksim

import (
	"context"
	"math"
	"sync"
	"time"
)

// gate is one channel's capacity: a token bucket for the rate and a set of
// slots for requests in flight. A gate belongs to one version of a scenario;
// changing the scenario makes a new gate, and requests holding a slot of the
// old one give it back there.
type gate struct {
	rps          float64
	burst        float64
	queue        bool
	queueTimeout time.Duration
	slots        chan struct{} // nil: no concurrency limit

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newGate(s Scenario, now time.Time) *gate {
	g := &gate{rps: s.RPS, queue: s.Overload == OverloadQueue, queueTimeout: s.queueTimeout(), last: now}
	g.burst = float64(s.Burst)
	if g.burst == 0 {
		g.burst = max(1, math.Ceil(s.RPS))
	}
	g.tokens = g.burst
	if s.ConcurrencyMax > 0 {
		g.slots = make(chan struct{}, s.ConcurrencyMax)
	}
	return g
}

// reserve takes a token at now. It returns how long the caller must wait for
// it (queueing banks only), or false when there is none to be had: at once
// for a rejecting bank, within the queue timeout for a queueing one.
func (g *gate) reserve(now time.Time) (time.Duration, bool) {
	if g.rps == 0 {
		return 0, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// A clock that steps back (a test's, or NTP) must not drain the bucket.
	if elapsed := now.Sub(g.last); elapsed > 0 {
		g.tokens = min(g.burst, g.tokens+elapsed.Seconds()*g.rps)
		g.last = now
	}
	if g.tokens >= 1 {
		g.tokens--
		return 0, true
	}
	if !g.queue {
		return 0, false
	}
	// Queued requests borrow future tokens: the bucket goes negative, and
	// each later request waits behind those already queued.
	wait := time.Duration((1 - g.tokens) / g.rps * float64(time.Second))
	if wait > g.queueTimeout {
		return 0, false
	}
	g.tokens--
	return wait, true
}

// acquire admits one request: a token, then a slot. It returns the function
// that gives the slot back, or false when the request is refused; a queueing
// bank refuses only after making the caller wait, as a collapsing bank does.
func (s *Sim) acquire(ctx context.Context, g *gate) (func(), bool) {
	wait, ok := g.reserve(s.cfg.Clock.Now())
	if !ok {
		if g.queue {
			s.sleep(ctx, g.queueTimeout)
		}
		return nil, false
	}
	if wait > 0 && !s.sleep(ctx, wait) {
		return nil, false
	}
	if g.slots == nil {
		return func() {}, true
	}
	release := func() { <-g.slots }
	select {
	case g.slots <- struct{}{}:
		return release, true
	default:
	}
	if !g.queue {
		return nil, false
	}
	t := time.NewTimer(g.queueTimeout)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return release, true
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return nil, false
}

// sleep waits d, or less if the request or the simulator ends first; it
// reports whether it waited all of d.
func (s *Sim) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return false
}
