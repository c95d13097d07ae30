package testkit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu"
)

var _ zhifu.Clock = (*Clock)(nil)

// recorder is a testing.TB that keeps what it is told to log and whether
// it was told to fail.
type recorder struct {
	testing.TB
	logs   []string
	failed bool
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return "TestX/seed" }
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.Logf(format, args...)
}

func withEnv(t *testing.T, v string) {
	old := getenv
	getenv = func(k string) string {
		if k == SeedEnv {
			return v
		}
		return ""
	}
	t.Cleanup(func() { getenv = old })
}

func TestSeedFromEnvironment(t *testing.T) {
	withEnv(t, "12345")
	r := &recorder{}
	if got := Seed(r); got != 12345 {
		t.Errorf("Seed = %d, want 12345", got)
	}
	if got := Seeds(r, 4); len(got) != 1 || got[0] != 12345 {
		t.Errorf("Seeds = %v, want [12345] alone", got)
	}
	if len(r.logs) != 2 || !strings.Contains(r.logs[0], "ZHIFU_TEST_SEED=12345") || !strings.Contains(r.logs[0], "TestX/seed") {
		t.Errorf("logs %q, want the seed and how to replay it", r.logs)
	}
}

func TestSeedFresh(t *testing.T) {
	withEnv(t, "")
	r := &recorder{}
	a, b := Seed(r), Seed(r)
	if a == b {
		t.Errorf("two fresh seeds are both %d", a)
	}
	if !strings.Contains(r.logs[0], fmt.Sprint("seed ", a, " ")) {
		t.Errorf("log %q does not give the seed %d", r.logs[0], a)
	}
	if seeds := Seeds(r, 3); len(seeds) != 3 || !strings.Contains(r.logs[2], fmt.Sprint(seeds)) {
		t.Errorf("Seeds(3) = %v, logged %q", seeds, r.logs[2])
	}
}

func TestSeedBadEnvironment(t *testing.T) {
	withEnv(t, "-1")
	r := &recorder{}
	Seed(r)
	if !r.failed {
		t.Error("ZHIFU_TEST_SEED=-1 accepted")
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Advance(48 * time.Hour)
	if got := c.Now().Sub(start); got != 48*time.Hour {
		t.Errorf("moved %v, want 48h", got)
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Errorf("Set: %v", c.Now())
	}
}

func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Errorf("%d bytes, want 800", got)
	}
}
