package channel

import (
	"sync"
	"time"
)

// BreakerState is a circuit breaker's state.
type BreakerState string

const (
	// Closed: calls flow; failures are counted.
	Closed BreakerState = "closed"
	// Open: calls are refused at once until the cool-down passes.
	Open BreakerState = "open"
	// HalfOpen: a few probe calls are let through; their outcome closes or
	// reopens the breaker.
	HalfOpen BreakerState = "half_open"
)

// BreakerConfig tunes a breaker.
type BreakerConfig struct {
	// CallsMin is how many calls the window must hold before the failure
	// rate can open the breaker, so one early failure does not.
	CallsMin int
	// FailureRateMax opens the breaker when exceeded.
	FailureRateMax float64
	// CoolDown is how long the breaker stays open before probing.
	CoolDown time.Duration
	// ProbesMax is how many probes may be in flight when half-open, and
	// ProbeSuccessesMin how many must succeed to close again.
	ProbesMax         int
	ProbeSuccessesMin int
	// ConsecutiveFailuresMax, when positive, opens the breaker after that
	// many failures in a row whatever the window's rate: a bank that
	// collapses fails every call, and a busy window full of earlier
	// successes would otherwise take most of its length to turn.
	ConsecutiveFailuresMax int
}

// ConsecutiveFailuresMaxDefault is the run of failed calls that opens a
// breaker by default: five calls in a row that a bank refuses or leaves
// unanswered are an outage, not bad luck, and every call more is a
// customer told "processing" by a bank that is down.
const ConsecutiveFailuresMaxDefault = 5

// DefaultBreakerConfig opens after 20 calls with more than half failing,
// or ConsecutiveFailuresMaxDefault failures in a row, and probes after 5 s.
var DefaultBreakerConfig = BreakerConfig{CallsMin: 20, FailureRateMax: 0.5, CoolDown: 5 * time.Second,
	ProbesMax: 3, ProbeSuccessesMin: 3, ConsecutiveFailuresMax: ConsecutiveFailuresMaxDefault}

// Breaker is a circuit breaker over a Window. Its clock is whatever times
// the caller passes in, so tests move it by hand. When probes close it, it
// empties the window.
type Breaker struct {
	cfg    BreakerConfig
	window *Window

	mu             sync.Mutex
	state          BreakerState
	openedAt       time.Time
	probesInFlight int
	probeOK        int
	failuresInRow  int
}

// NewBreaker returns a closed breaker judging by w.
func NewBreaker(cfg BreakerConfig, w *Window) *Breaker {
	return &Breaker{cfg: cfg, window: w, state: Closed}
}

// State returns the state at now (an open breaker whose cool-down passed
// reports half-open).
func (b *Breaker) State(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	return b.state
}

func (b *Breaker) advance(now time.Time) {
	if b.state == Open && now.Sub(b.openedAt) >= b.cfg.CoolDown {
		b.state, b.probesInFlight, b.probeOK = HalfOpen, 0, 0
	}
}

// Allow asks to make a call at now. It reports whether the call may go and
// whether it is a probe; a probe's outcome must be reported with Done.
func (b *Breaker) Allow(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	switch b.state {
	case Closed:
		return true, false
	case HalfOpen:
		if b.probesInFlight < b.cfg.ProbesMax {
			b.probesInFlight++
			return true, true
		}
	}
	return false, false
}

// Done reports a call's outcome: it goes into the window, and may open or
// close the breaker.
func (b *Breaker) Done(now time.Time, probe bool, o Outcome, latency time.Duration) {
	b.window.Record(now, o, latency)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	if probe && b.state == HalfOpen {
		b.probesInFlight--
		if o == Failure {
			b.trip(now)
			return
		}
		if b.probeOK++; b.probeOK >= b.cfg.ProbeSuccessesMin {
			// The probes showed the bank answering again: the failures of
			// the outage say nothing more about it, and left in the window
			// they would reopen the breaker at the first failure and keep
			// the bank looking congested for the window's length.
			b.state, b.failuresInRow = Closed, 0
			b.window.Reset()
		}
		return
	}
	if o == Success {
		b.failuresInRow = 0
	}
	if b.state == Closed && o == Failure {
		b.failuresInRow++
		if max := b.cfg.ConsecutiveFailuresMax; max > 0 && b.failuresInRow >= max {
			b.trip(now)
			return
		}
		s := b.window.Snapshot(now)
		if s.Calls >= b.cfg.CallsMin && 1-s.SuccessRate > b.cfg.FailureRateMax {
			b.trip(now)
		}
	}
}

// Cancel gives back a probe slot that Allow granted for a call that was
// then never made (the caller's own commit failed): nothing is recorded.
func (b *Breaker) Cancel(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == HalfOpen && b.probesInFlight > 0 {
		b.probesInFlight--
	}
}

func (b *Breaker) trip(now time.Time) {
	b.state, b.openedAt, b.probesInFlight, b.probeOK, b.failuresInRow = Open, now, 0, 0, 0
}

// Bucket is a token bucket: Rate tokens a second up to Burst. Like the
// breaker it takes the time from the caller.
type Bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket.
func NewBucket(ratePerSecond float64, burst int) *Bucket {
	return &Bucket{rate: ratePerSecond, burst: float64(burst), tokens: float64(burst)}
}

// SetRate changes the rate and burst, keeping the tokens already earned.
func (b *Bucket) SetRate(ratePerSecond float64, burst int) {
	b.mu.Lock()
	b.rate, b.burst = ratePerSecond, float64(burst)
	b.tokens = min(b.tokens, b.burst)
	b.mu.Unlock()
}

// Take takes one token at now if there is one.
func (b *Bucket) Take(now time.Time) bool { return b.TakeAbove(now, 0) }

// TakeAbove takes one token at now only if at least reserve tokens remain
// after it: background work uses it so that a reserve is always left for
// the payments that take with Take.
func (b *Bucket) TakeAbove(now time.Time, reserve float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens-1 < reserve || b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Tokens reports the tokens available at now, without taking any.
func (b *Bucket) Tokens(now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens
}

// Rate returns the bucket's rate in tokens a second.
func (b *Bucket) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}

func (b *Bucket) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}
