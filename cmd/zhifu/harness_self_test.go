package main

import "testing"

// TestHarness checks the harness itself on both stores: the platform starts,
// the operator can read the audit, and the clock is the test's.
func TestHarness(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var check map[string]any
		if s := e.admin("GET", "/v1/admin/ledger/check", nil, &check); s != 200 || check["ok"] != true {
			t.Fatalf("check: %d %v", s, check)
		}
		before := e.m.Clock.Now()
		e.clock.Advance(48 * 3600e9)
		if got := e.m.Clock.Now().Sub(before).Hours(); got != 48 {
			t.Fatalf("clock moved %v hours", got)
		}
	})
}
