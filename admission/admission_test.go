package admission

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testClock is moved by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixedLimiter has a limit of n that does not move (one window never ends).
func fixedLimiter(clock *testClock, n int) *Limiter {
	return NewLimiter(Config{Clock: clock, Gradient: GradientConfig{Initial: n, Min: n, Max: n, Window: time.Hour}})
}

func mustAdmit(t *testing.T, l *Limiter, c Class) *Ticket {
	t.Helper()
	tk, w, reason := l.Acquire(c)
	if tk == nil {
		t.Fatalf("acquire %s: waiter %v, reason %q; want admitted at once", c, w != nil, reason)
	}
	return tk
}

func mustQueue(t *testing.T, l *Limiter, c Class) *Waiter {
	t.Helper()
	tk, w, reason := l.Acquire(c)
	if w == nil {
		t.Fatalf("acquire %s: ticket %v, reason %q; want queued", c, tk != nil, reason)
	}
	return w
}

func isReady(w *Waiter) bool {
	select {
	case <-w.Ready():
		return true
	default:
		return false
	}
}

// Each class may fill only its share of the limit: at 100, bulk 30, query
// 60, change 80, pay all 100.
func TestLimiterShares(t *testing.T) {
	clock := newTestClock()
	l := fixedLimiter(clock, 100)
	for c, want := range map[Class]int{Bulk: 30, Query: 60, Change: 80, Pay: 100} {
		t.Run(c.String(), func(t *testing.T) {
			var held []*Ticket
			for range want {
				held = append(held, mustAdmit(t, l, c))
			}
			w := mustQueue(t, l, c)
			held[0].Release(false)
			if !isReady(w) {
				t.Fatalf("a slot freed, the waiter is not let in")
			}
			tk, _ := w.Outcome()
			held = append(held[1:], tk)
			for _, tk := range held {
				tk.Release(false)
			}
			if s := l.Stats(); s.InFlight != [Classes]int{} {
				t.Fatalf("in flight after releasing all: %v", s.InFlight)
			}
		})
	}
}

// Under overload the lowest class waits while higher ones still get in, and
// a freed slot goes to the highest class waiting, oldest first.
func TestLimiterPriority(t *testing.T) {
	clock := newTestClock()
	l := fixedLimiter(clock, 10)
	var held []*Ticket
	for range 6 { // query's share of 10
		held = append(held, mustAdmit(t, l, Query))
	}
	wq := mustQueue(t, l, Query)
	// Payments still get the four slots queries may not take.
	for range 4 {
		held = append(held, mustAdmit(t, l, Pay))
	}
	wp1, wp2 := mustQueue(t, l, Pay), mustQueue(t, l, Pay)
	wc := mustQueue(t, l, Change)
	held[0].Release(false)
	if !isReady(wp1) || isReady(wp2) || isReady(wc) || isReady(wq) {
		t.Fatalf("after one release: pay1 %v pay2 %v change %v query %v; want only the first payment in",
			isReady(wp1), isReady(wp2), isReady(wc), isReady(wq))
	}
	held[1].Release(false)
	held[2].Release(false)
	if !isReady(wp2) || isReady(wc) {
		t.Fatalf("after three releases: pay2 %v change %v; want the payment in, change over its share of 8", isReady(wp2), isReady(wc))
	}
	held[3].Release(false)
	held[4].Release(false)
	if !isReady(wc) || isReady(wq) {
		t.Fatalf("after five releases: pay2 %v change %v query %v; want pay and change in, query waiting",
			isReady(wp2), isReady(wc), isReady(wq))
	}
	// A newcomer of a class that has waiters queues behind them.
	mustQueue(t, l, Query)
}

// A full queue refuses at once; a wait that runs out is refused; a client
// that goes away leaves the queue.
func TestLimiterQueueBounds(t *testing.T) {
	clock := newTestClock()
	l := NewLimiter(Config{Clock: clock, Gradient: GradientConfig{Initial: 1, Min: 1, Max: 1, Window: time.Hour},
		QueueLength:  [Classes]int{Pay: 2, Change: 1, Query: 1, Bulk: 1},
		QueueWaitMax: [Classes]time.Duration{Pay: 500 * time.Millisecond, Change: time.Second, Query: time.Second, Bulk: time.Second}})
	tk := mustAdmit(t, l, Pay)
	w1 := mustQueue(t, l, Pay)
	clock.Advance(200 * time.Millisecond)
	w2 := mustQueue(t, l, Pay)
	if _, w, reason := l.Acquire(Pay); w != nil || reason != QueueFull {
		t.Fatalf("third waiter: queued %v, reason %q; want %q", w != nil, reason, QueueFull)
	}
	clock.Advance(300 * time.Millisecond) // w1 has waited 500 ms, w2 300 ms
	l.Expire()
	if _, reason := w1.Outcome(); reason != QueueTimeout {
		t.Fatalf("first waiter after its wait: %q, want %q", reason, QueueTimeout)
	}
	if isReady(w2) {
		t.Fatalf("second waiter refused before its time")
	}
	// The queue is standing (its oldest has waited over half the 500 ms):
	// a payment that cannot get in is refused at once rather than made to
	// wait.
	if _, w, reason := l.Acquire(Pay); w != nil || reason != Overloaded {
		t.Fatalf("behind a waiter of 300 ms: queued %v, reason %q; want %q", w != nil, reason, Overloaded)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, _, reason := w2.Wait(ctx); got != nil || reason != Canceled {
		t.Fatalf("waiter whose client left: ticket %v, reason %q", got != nil, reason)
	}
	tk.Release(false)
	tk.Release(false) // a second release is nothing
	if s := l.Stats(); s.InFlight[Pay] != 0 || s.Queued[Pay] != 0 {
		t.Fatalf("stats after all left: %+v", s)
	}
	mustAdmit(t, l, Pay)
}

// Wait returns the ticket a release hands over, and how long it waited.
func TestWaiterGranted(t *testing.T) {
	clock := newTestClock()
	l := fixedLimiter(clock, 1)
	tk := mustAdmit(t, l, Change)
	w := mustQueue(t, l, Change)
	clock.Advance(40 * time.Millisecond)
	tk.Release(false)
	got, waited, reason := w.Wait(context.Background())
	if got == nil || reason != "" || waited != 40*time.Millisecond {
		t.Fatalf("wait: ticket %v, waited %v, reason %q; want a ticket after 40ms", got != nil, waited, reason)
	}
	got.Release(false)
}

// feed answers n requests of class c, each taking took, one window's worth.
func feed(g *Gradient, clock *testClock, c Class, took time.Duration, inFlight, n int) {
	for range n {
		clock.Advance(g.cfg.Window / time.Duration(n))
		g.Sample(clock.Now(), c, took, inFlight, false)
	}
}

// The limit grows while latency holds and the limit is in use, shrinks
// when latency grows past the tolerance, and stays within its bounds.
func TestGradientAdapts(t *testing.T) {
	clock := newTestClock()
	g := NewGradient(GradientConfig{Initial: 50, Min: 10, Max: 200})
	for range 20 {
		feed(g, clock, Pay, 5*time.Millisecond, 40, 20)
	}
	grown := g.Limit()
	if grown <= 50 {
		t.Fatalf("limit after calm, busy windows = %d, want above 50", grown)
	}
	for range 20 {
		feed(g, clock, Pay, 30*time.Millisecond, grown, 20) // 6× the best: congestion
	}
	if got := g.Limit(); got >= grown/2 {
		t.Fatalf("limit after congested windows = %d, want under half of %d", got, grown)
	}
	for range 30 {
		feed(g, clock, Pay, time.Second, 200, 20)
	}
	if got := g.Limit(); got != 10 {
		t.Fatalf("limit after heavy congestion = %d, want the minimum 10", got)
	}
	// Slowness that lasts is followed: the baseline rises to it, and the
	// limit leaves its minimum.
	for range 500 {
		feed(g, clock, Pay, time.Second, 200, 20)
	}
	if got := g.Limit(); got <= 10 {
		t.Fatalf("limit after a minute of the same slowness = %d, want above the minimum", got)
	}
	for range 500 {
		feed(g, clock, Pay, 5*time.Millisecond, 200, 20)
	}
	if got := g.Limit(); got != 200 {
		t.Fatalf("limit after long calm = %d, want the maximum 200", got)
	}
}

// A window in which little of the limit was used does not grow it.
func TestGradientAppLimited(t *testing.T) {
	clock := newTestClock()
	g := NewGradient(GradientConfig{Initial: 100})
	for range 50 {
		feed(g, clock, Query, time.Millisecond, 10, 20)
	}
	if got := g.Limit(); got != 100 {
		t.Fatalf("limit after idle windows = %d, want 100 unchanged", got)
	}
}

// The no-load latency is per class: a mix that turns from fast queries to
// slower payments is not congestion.
func TestGradientClassMix(t *testing.T) {
	clock := newTestClock()
	g := NewGradient(GradientConfig{Initial: 100})
	for range 10 {
		feed(g, clock, Query, 500*time.Microsecond, 80, 20)
		feed(g, clock, Pay, 8*time.Millisecond, 80, 20)
	}
	before := g.Limit()
	for range 10 {
		feed(g, clock, Pay, 8*time.Millisecond, 80, 40)
	}
	if got := g.Limit(); got < before {
		t.Fatalf("limit fell from %d to %d when only the mix changed", before, got)
	}
	// Sub-floor jitter of a fast class is no congestion either.
	for range 10 {
		feed(g, clock, Query, 1900*time.Microsecond, 80, 20)
	}
	if got := g.Limit(); got < before {
		t.Fatalf("limit fell from %d to %d for latency under the floor", before, got)
	}
}

// Queries steer beside the highest class: windows of fast payments and
// queries slowed to many times their best cut the limit, where slow
// changes (withdrawals waiting on their banks) beside fast payments do not.
// And a window grows the limit by √limit at most, however fast it was.
func TestGradientQueriesSteer(t *testing.T) {
	mixed := func(g *Gradient, clock *testClock, lower Class, lowerTook time.Duration) {
		for range 20 {
			clock.Advance(g.cfg.Window / 40)
			g.Sample(clock.Now(), Pay, 4*time.Millisecond, 90, false)
			clock.Advance(g.cfg.Window / 40)
			g.Sample(clock.Now(), lower, lowerTook, 90, false)
		}
	}
	for _, tc := range []struct {
		lower Class
		cut   bool
	}{{Query, true}, {Change, false}} {
		clock := newTestClock()
		g := NewGradient(GradientConfig{Initial: 100})
		for range 10 {
			mixed(g, clock, tc.lower, 10*time.Millisecond)
		}
		before := g.Limit()
		for range 10 {
			mixed(g, clock, tc.lower, 400*time.Millisecond)
		}
		if got := g.Limit(); (got < before) != tc.cut {
			t.Errorf("%s slowed 40× beside fast payments: limit %d → %d, want cut %v", tc.lower, before, got, tc.cut)
		}
	}

	clock := newTestClock()
	g := NewGradient(GradientConfig{Initial: 100})
	feed(g, clock, Pay, 10*time.Millisecond, 90, 20)
	feed(g, clock, Pay, 100*time.Microsecond, 90, 20) // far faster than the baseline
	if got := g.Limit(); got > 100+10 {
		t.Fatalf("limit after one fast window = %d, want at most 100 + √100", got)
	}
}

// A request dropped for lack of capacity cuts the limit.
func TestGradientDrop(t *testing.T) {
	clock := newTestClock()
	g := NewGradient(GradientConfig{Initial: 100})
	clock.Advance(time.Second)
	g.Sample(clock.Now(), Pay, time.Millisecond, 100, true)
	clock.Advance(time.Second)
	g.Sample(clock.Now(), Pay, time.Millisecond, 100, false)
	if got := g.Limit(); got >= 100 {
		t.Fatalf("limit after a drop = %d, want below 100", got)
	}
}

// The limiter recomputes its thresholds when the limit moves: with every
// slot in use and answers fast, the limit grows and more are let in.
func TestLimiterFollowsGradient(t *testing.T) {
	clock := newTestClock()
	l := NewLimiter(Config{Clock: clock, Gradient: GradientConfig{Initial: 10, Min: 10, Max: 100},
		QueueWaitMax: [Classes]time.Duration{Pay: time.Hour}})
	var held []*Ticket
	fill := func() {
		for {
			tk, w, _ := l.Acquire(Pay)
			if tk == nil {
				l.cancel(w, Canceled)
				return
			}
			held = append(held, tk)
		}
	}
	fill()
	if len(held) != 10 {
		t.Fatalf("admitted %d at a limit of 10", len(held))
	}
	for i := 0; i < 2000 && len(held) <= 20; i++ {
		clock.Advance(time.Millisecond)
		held[0].Release(false)
		held = held[1:]
		fill()
	}
	if lim := l.Stats().Limit; lim <= 20 || len(held) != lim {
		t.Fatalf("limit %d with %d in flight; want grown past 20 and all of it used", lim, len(held))
	}
}

func TestClosed(t *testing.T) {
	t0 := time.Date(2026, 11, 11, 2, 0, 0, 0, time.UTC)
	ws := []Window{{t0, t0.Add(time.Hour)}, {t0.Add(30 * time.Minute), t0.Add(2 * time.Hour)}}
	for _, tc := range []struct {
		at     time.Duration
		closed bool
		end    time.Duration
	}{{-time.Second, false, 0}, {0, true, time.Hour}, {45 * time.Minute, true, 2 * time.Hour},
		{2 * time.Hour, false, 0}} {
		end, closed := Closed(ws, t0.Add(tc.at))
		if closed != tc.closed || (closed && !end.Equal(t0.Add(tc.end))) {
			t.Errorf("at %v: closed %v until %v; want %v until %v", tc.at, closed, end, tc.closed, t0.Add(tc.end))
		}
	}
}

func TestCallers(t *testing.T) {
	clock := newTestClock()
	c := NewCallers(3)
	r := Rate{PerSecond: 10, Burst: 2}
	for i := range 2 {
		if ok, _ := c.Allow("user:a", r, clock.Now()); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, retry := c.Allow("user:a", r, clock.Now())
	if ok || retry != 100*time.Millisecond {
		t.Fatalf("past the burst: ok %v retry %v; want refused, retry 100ms", ok, retry)
	}
	if ok, _ := c.Allow("user:b", r, clock.Now()); !ok {
		t.Fatalf("another caller is refused for the first's flood")
	}
	clock.Advance(100 * time.Millisecond)
	if ok, _ := c.Allow("user:a", r, clock.Now()); !ok {
		t.Fatalf("refused after the bucket refilled")
	}
	if ok, _ := c.Allow("user:a", Rate{}, clock.Now()); !ok {
		t.Fatalf("a zero rate is no limit")
	}
	// The table stays within its bound, forgetting the least recently seen.
	for i := range 10 {
		c.Allow(fmt.Sprint("addr:", i), r, clock.Now())
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("table holds %d buckets, want its bound 3", n)
	}
}

func TestLogGate(t *testing.T) {
	clock := newTestClock()
	g := NewLogGate(time.Second)
	if ok, _ := g.Allow("pay/queue_full", clock.Now()); !ok {
		t.Fatal("first line held back")
	}
	for range 5 {
		if ok, _ := g.Allow("pay/queue_full", clock.Now()); ok {
			t.Fatal("second line within the second let through")
		}
	}
	if ok, _ := g.Allow("query/queue_full", clock.Now()); !ok {
		t.Fatal("another key held back")
	}
	clock.Advance(time.Second)
	if ok, held := g.Allow("pay/queue_full", clock.Now()); !ok || held != 5 {
		t.Fatalf("after a second: ok %v held %d; want through, 5 held back", ok, held)
	}
}

// The limiter's own cost per request, admitted and released at once.
func BenchmarkLimiter(b *testing.B) {
	l := NewLimiter(Config{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, w, _ := l.Acquire(Query)
			if tk == nil {
				if w != nil {
					l.cancel(w, Canceled)
				}
				continue
			}
			tk.Release(false)
		}
	})
}

// A caller's bucket, per request.
func BenchmarkCallers(b *testing.B) {
	c := NewCallers(0)
	r := Rate{PerSecond: 1e9, Burst: 1 << 30}
	now := time.Now()
	for i := range b.N {
		c.Allow(fmt.Sprint("user:", i%1000), r, now)
	}
}
