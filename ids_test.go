package zhifu

import (
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 34, 56, 789e6, time.UTC)
	a, b := NewID("D", now), NewID("D", now)
	if a == b || len(a) != 1+8+clockIDDigits+randomIDDigits || !strings.HasPrefix(a, "D2026010145296789") {
		t.Fatalf("NewID = %q, %q: want D, 20260101, 45296789 and 12 digits, two different", a, b)
	}
	// Later ids sort later, within a day and across its end.
	prev := ""
	for _, at := range []time.Time{now, now.Add(time.Millisecond), now.Add(11*time.Hour + 25*time.Minute),
		now.Add(11*time.Hour + 26*time.Minute), now.Add(400 * 24 * time.Hour)} {
		id := NewID("D", at)
		if id <= prev {
			t.Errorf("NewID at %v = %q, not after %q", at, id, prev)
		}
		prev = id
	}
}
