package trade

import (
	"context"
	"sync"
)

// herd lets the first of several concurrent payments of one trade in this
// process go straight to the batcher, and makes the others wait for it.
// They then read the trade: once it is paid they are refused from that
// read, and the batcher never sees the herd. A lone payment, the usual
// case, skips the read altogether.
type herd struct {
	mu      sync.Mutex
	running map[string]chan struct{} // trade_no → closed when its leader is done
}

// join returns whether the caller leads the payments of tradeNo. A leader
// must call leave; a follower has waited for the leader (or for ctx).
func (h *herd) join(ctx context.Context, tradeNo string) (leader bool, err error) {
	h.mu.Lock()
	done, ok := h.running[tradeNo]
	if !ok {
		if h.running == nil {
			h.running = make(map[string]chan struct{})
		}
		h.running[tradeNo] = make(chan struct{})
		h.mu.Unlock()
		return true, nil
	}
	h.mu.Unlock()
	select {
	case <-done:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// leave ends the leader's turn and releases its followers.
func (h *herd) leave(tradeNo string) {
	h.mu.Lock()
	done := h.running[tradeNo]
	delete(h.running, tradeNo)
	h.mu.Unlock()
	close(done)
}
