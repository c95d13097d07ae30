// Package channel is the platform's side of its banks: bound cards, top-ups
// and withdrawals through each bank, the card part of trades' payments (a
// top-up that names its trade by number, handed over by package checkout,
// whose TradeSettler pays the trade when the money arrives), the durable
// record of every bank call and how its outcome is learnt (answer,
// callback, inquiry, statement), and the health of every bank (a sliding
// window of success rate and latency, a circuit breaker, a token bucket at
// the bank's capacity) that decides where a payment is routed, what the
// cashier advises, and when the transactions a sick bank kept waiting are
// taken up again. It speaks to each bank through the Bank interface: the
// calls of package bankapi's protocol, which bankapi.Client makes over
// HTTP and an adapter of another bank could make its own way. Every call
// made to a bank is also recorded, a second later and in batches, for the
// banks' monthly report (CallLog).
package channel

import (
	"slices"
	"sync"
	"time"
)

// Health windows.
const (
	// windowBuckets × bucketWidth is how far back health looks.
	windowBuckets = 30
	bucketWidth   = time.Second
	// latencySamplesMax bounds the samples kept per bucket for percentiles.
	latencySamplesMax = 256
)

// Outcome is what one bank call came to, as health sees it.
type Outcome int

const (
	// Success: the bank answered and did what was asked (or refused for a
	// reason of the customer's, like insufficient funds: the bank is fine).
	Success Outcome = iota
	// Failure: the bank errored, timed out or refused for its own reasons.
	Failure
)

type bucket struct {
	start     time.Time
	ok, fail  int
	latencies []time.Duration
}

// Window is a sliding window of one bank's recent calls. It is safe for
// concurrent use.
type Window struct {
	mu      sync.Mutex
	buckets [windowBuckets]bucket
}

// Record adds one call that ended at now.
func (w *Window) Record(now time.Time, o Outcome, latency time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.bucketAt(now)
	if o == Success {
		b.ok++
	} else {
		b.fail++
	}
	if len(b.latencies) < latencySamplesMax {
		b.latencies = append(b.latencies, latency)
	}
}

// Reset forgets every call recorded.
func (w *Window) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.buckets {
		w.buckets[i] = bucket{latencies: w.buckets[i].latencies[:0]}
	}
}

func (w *Window) bucketAt(now time.Time) *bucket {
	start := now.Truncate(bucketWidth)
	b := &w.buckets[start.Unix()%windowBuckets]
	if !b.start.Equal(start) {
		*b = bucket{start: start, latencies: b.latencies[:0]}
	}
	return b
}

// Snapshot is the window's view at one instant.
type Snapshot struct {
	Calls       int
	Failures    int
	SuccessRate float64 // 1 when there were no calls
	P50, P99    time.Duration
}

// Snapshot summarises the calls of the last windowBuckets seconds.
func (w *Window) Snapshot(now time.Time) Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s Snapshot
	var lat []time.Duration
	oldest := now.Truncate(bucketWidth).Add(-(windowBuckets - 1) * bucketWidth)
	for i := range w.buckets {
		b := &w.buckets[i]
		if b.start.Before(oldest) || b.start.After(now) {
			continue
		}
		s.Calls += b.ok + b.fail
		s.Failures += b.fail
		lat = append(lat, b.latencies...)
	}
	s.SuccessRate = 1
	if s.Calls > 0 {
		s.SuccessRate = float64(s.Calls-s.Failures) / float64(s.Calls)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.P50 = lat[len(lat)/2]
		s.P99 = lat[len(lat)*99/100]
	}
	return s
}
