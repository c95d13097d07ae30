package trade

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHerd(t *testing.T) {
	var h herd
	ctx := context.Background()
	if lead, err := h.join(ctx, "A"); !lead || err != nil {
		t.Fatalf("first join: %v %v", lead, err)
	}
	// Another trade is not held up by A.
	if lead, _ := h.join(ctx, "B"); !lead {
		t.Fatal("B waited for A")
	}
	h.leave("B")

	var followers, early atomic.Int64
	var led atomic.Bool
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			lead, err := h.join(ctx, "A")
			if err != nil || lead {
				t.Errorf("follower: %v %v", lead, err)
			}
			if !led.Load() {
				early.Add(1)
			}
			followers.Add(1)
		})
	}
	time.Sleep(20 * time.Millisecond)
	if n := followers.Load(); n != 0 {
		t.Fatalf("%d followers went on before the leader left", n)
	}
	led.Store(true)
	h.leave("A")
	wg.Wait()
	if followers.Load() != 50 || early.Load() != 0 {
		t.Fatalf("followers %d, early %d", followers.Load(), early.Load())
	}
	// The next payment of A leads again.
	if lead, _ := h.join(ctx, "A"); !lead {
		t.Fatal("A has no leader after the first left")
	}
	// A follower whose request ends stops waiting.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if lead, err := h.join(cctx, "A"); lead || err == nil {
		t.Fatalf("cancelled follower: %v %v", lead, err)
	}
	h.leave("A")
}
