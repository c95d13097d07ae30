package channel

import (
	"testing"
	"time"
)

func TestBreakerOpensAndRecovers(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBreaker(DefaultBreakerConfig, &Window{})
	// Healthy traffic keeps it closed, even with a few failures.
	for i := 0; i < 40; i++ {
		ok, _ := b.Allow(now)
		if !ok {
			t.Fatal("closed breaker refused a call")
		}
		o := Success
		if i%10 == 0 {
			o = Failure
		}
		b.Done(now, false, o, 20*time.Millisecond)
		now = now.Add(50 * time.Millisecond)
	}
	if s := b.State(now); s != Closed {
		t.Fatalf("state %s after 10%% failures", s)
	}
	// The bank collapses: the breaker opens within the window.
	opened := time.Time{}
	for i := 0; i < 100 && opened.IsZero(); i++ {
		if ok, _ := b.Allow(now); ok {
			b.Done(now, false, Failure, time.Second)
		}
		if b.State(now) == Open {
			opened = now
		}
		now = now.Add(50 * time.Millisecond)
	}
	if opened.IsZero() {
		t.Fatal("breaker never opened")
	}
	if ok, _ := b.Allow(now); ok {
		t.Fatal("open breaker let a call through")
	}
	// After the cool-down it probes; a failed probe reopens it.
	now = opened.Add(DefaultBreakerConfig.CoolDown)
	ok, probe := b.Allow(now)
	if !ok || !probe {
		t.Fatalf("no probe after cool-down: %v %v", ok, probe)
	}
	b.Done(now, true, Failure, time.Second)
	if s := b.State(now); s != Open {
		t.Fatalf("failed probe left state %s", s)
	}
	// The bank recovers: successful probes close it.
	now = now.Add(DefaultBreakerConfig.CoolDown)
	for i := 0; i < DefaultBreakerConfig.ProbeSuccessesMin; i++ {
		ok, probe := b.Allow(now)
		if !ok || !probe {
			t.Fatalf("probe %d refused", i)
		}
		b.Done(now, true, Success, 10*time.Millisecond)
	}
	if s := b.State(now); s != Closed {
		t.Fatalf("state %s after good probes", s)
	}
}

func TestHalfOpenBoundsProbes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBreaker(DefaultBreakerConfig, &Window{})
	b.trip(now)
	now = now.Add(DefaultBreakerConfig.CoolDown)
	n := 0
	for i := 0; i < 10; i++ {
		if ok, _ := b.Allow(now); ok {
			n++
		}
	}
	if n != DefaultBreakerConfig.ProbesMax {
		t.Fatalf("%d probes in flight, want %d", n, DefaultBreakerConfig.ProbesMax)
	}
}

func TestWindowForgets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var w Window
	for i := 0; i < 10; i++ {
		w.Record(now, Failure, time.Second)
	}
	if s := w.Snapshot(now); s.Calls != 10 || s.SuccessRate != 0 || s.P50 != time.Second {
		t.Fatalf("snapshot %+v", s)
	}
	later := now.Add(windowBuckets * bucketWidth)
	if s := w.Snapshot(later); s.Calls != 0 || s.SuccessRate != 1 {
		t.Fatalf("old calls still counted: %+v", s)
	}
}

func TestBucket(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBucket(10, 5)
	n := 0
	for i := 0; i < 20; i++ {
		if b.Take(now) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("burst let %d through, want 5", n)
	}
	now = now.Add(time.Second)
	n = 0
	for i := 0; i < 20; i++ {
		if b.Take(now) {
			n++
		}
	}
	if n != 5 { // refilled 10, capped at the burst of 5
		t.Fatalf("after 1s %d through, want 5", n)
	}
}

// TestBreakerOpensWithinFiveFailures: by default a bank that fails five
// calls in a row is out, however healthy it was, with no time passing.
func TestBreakerOpensWithinFiveFailures(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBreaker(DefaultBreakerConfig, &Window{})
	for range 1000 {
		b.Done(now, false, Success, 10*time.Millisecond)
	}
	for i := range 5 {
		if s := b.State(now); s != Closed {
			t.Fatalf("opened after %d failures", i)
		}
		b.Done(now, false, Failure, time.Millisecond)
	}
	if s := b.State(now); s != Open {
		t.Fatalf("state %s after five failures in a row", s)
	}
}

// TestBreakerClosingForgetsTheOutage: once the probes close the breaker,
// the outage's failures no longer count: the bank looks healthy, and one
// failure does not reopen it.
func TestBreakerClosingForgetsTheOutage(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	w := &Window{}
	b := NewBreaker(DefaultBreakerConfig, w)
	for range 30 {
		b.Done(now, false, Failure, time.Second)
	}
	if b.State(now) != Open {
		t.Fatal("not open")
	}
	now = now.Add(DefaultBreakerConfig.CoolDown)
	for range DefaultBreakerConfig.ProbeSuccessesMin {
		ok, probe := b.Allow(now)
		if !ok || !probe {
			t.Fatal("no probe")
		}
		b.Done(now, true, Success, time.Millisecond)
	}
	if s := b.State(now); s != Closed {
		t.Fatalf("state %s after good probes", s)
	}
	if snap := w.Snapshot(now); snap.Calls != 0 || snap.SuccessRate != 1 {
		t.Fatalf("window after closing: %+v", snap)
	}
	b.Done(now, false, Failure, time.Second)
	if s := b.State(now); s != Closed {
		t.Fatalf("one failure after closing: %s", s)
	}
}
