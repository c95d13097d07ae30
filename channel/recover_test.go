package channel

import (
	"testing"
	"time"
)

// TestSpell walks a bank through a spell of bad health: it ends, once,
// when the bank is judged healthy again, and reports when it began.
func TestSpell(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var sp spell
	state := StateHealthy
	judge := func() string { return state }
	steps := []struct {
		at      time.Duration
		breaker BreakerState
		state   string
		ended   bool
	}{
		{0, Closed, StateHealthy, false},
		{100 * time.Millisecond, Closed, StateCongested, false}, // too soon to judge again: unseen
		{time.Second, Closed, StateCongested, false},            // the spell begins (at 1 s)
		{time.Second, Open, StateDown, false},                   // the breaker moved: judged at once
		{6 * time.Second, HalfOpen, StateCongested, false},
		{6 * time.Second, Closed, StateHealthy, true}, // closed by its probes: over at once
		{6 * time.Second, Closed, StateHealthy, false},
		{8 * time.Second, Closed, StateMaintenance, false},
		{9 * time.Second, Closed, StateMaintenance, false},
		{10 * time.Second, Closed, StateHealthy, true},
	}
	begins := []time.Duration{time.Second, 8 * time.Second}
	ended := 0
	for i, st := range steps {
		state = st.state
		since, ok := sp.observe(t0.Add(st.at), st.breaker, judge)
		if ok != st.ended {
			t.Fatalf("step %d (%+v): ended %v", i, st, ok)
		}
		if ok {
			if want := t0.Add(begins[ended]); !since.Equal(want) {
				t.Fatalf("step %d: spell began %v, want %v", i, since, want)
			}
			ended++
		}
	}
	// A clock that steps back is judged again rather than trusted.
	state = StateDown
	if _, ok := sp.observe(t0, Closed, judge); ok || sp.since.IsZero() {
		t.Fatalf("clock stepped back: not judged: %+v", sp)
	}
}

func TestCardCacheFollowsTheClock(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var cc cardCache
	cc.put(&Card{CardID: "BC1", Bank: "CMB"}, t0)
	for _, tt := range []struct {
		at time.Duration
		ok bool
	}{{0, true}, {cardCacheTTL, true}, {cardCacheTTL + time.Nanosecond, false}, {-time.Second, false}} {
		if _, ok := cc.get("BC1", t0.Add(tt.at)); ok != tt.ok {
			t.Errorf("get %s after put: %v, want %v", tt.at, ok, tt.ok)
		}
	}
	cc.drop("BC1")
	if _, ok := cc.get("BC1", t0); ok {
		t.Error("dropped card still cached")
	}
}
