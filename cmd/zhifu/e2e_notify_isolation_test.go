package main

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// One slow URL of a merchant does not hold up the merchant's other URLs:
// with a dead destination holding every slot it may, the merchant's
// healthy destination is notified about as fast as a merchant with no
// dead destination at all.

// nfIsolationPairs is how many notifications of each merchant are measured.
const nfIsolationPairs = 60

// nfIsolationRatioMax is how much slower the healthy destination's p95
// may be beside a hanging one. Both merchants' notifications are made in
// turn and picked up by the same polls of the worker, so the ratio is
// about 1; 2 leaves room for a shared machine.
const nfIsolationRatioMax = 2.0

func TestNotifyIsolationHangingDestination(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		healthy := newNotifyReceiver(t)
		hanging := newNotifyReceiver(t)
		hanging.holdAll()
		// alone has only the healthy destination; beside has the healthy
		// one as its notify_url and some trades notified at the hanging one.
		alone := newTrWorld(t, e)
		alone.mk = alone.newMerchant(alone.seller, healthy.URL())
		beside := newTrWorld(t, e)
		beside.mk = beside.newMerchant(beside.seller, healthy.URL())

		// Trades notified at a URL that never answers: they take every slot
		// that destination may have, and more wait.
		const hangingTrades = 12
		for range hangingTrades {
			no := beside.mustCreate(map[string]any{"notify_url": hanging.URL()})
			if s, out := beside.move(no, "close", nil); s != http.StatusOK {
				t.Fatalf("close: %d %v", s, out)
			}
		}
		hanging.waitNotes("the hanging destination's slots to fill", func(n []nrNote) bool { return len(n) >= 4 })

		// Each merchant's trades are closed in turn, so both merchants'
		// notifications meet the same polls and the same load; latency is
		// from a close's answer to its notification's arrival.
		type sample struct {
			world *trWorld
			no    string
		}
		var plan []sample
		for range nfIsolationPairs {
			plan = append(plan, sample{alone, alone.mustCreate(nil)}, sample{beside, beside.mustCreate(nil)})
		}
		closed := make(map[string]time.Time)
		merchantOf := make(map[string]*trWorld)
		for _, p := range plan {
			if s, out := p.world.move(p.no, "close", nil); s != http.StatusOK {
				t.Fatalf("close: %d %v", s, out)
			}
			closed[p.no], merchantOf[p.no] = time.Now(), p.world
		}
		notes := healthy.waitNotes("every measured notification", func(n []nrNote) bool {
			got := 0
			for _, x := range n {
				if _, ok := closed[x.TradeNo]; ok && x.Reception == 1 {
					got++
				}
			}
			return got == len(plan)
		})
		held := hanging.active()
		var latAlone, latBeside []time.Duration
		for _, n := range notes {
			at, ok := closed[n.TradeNo]
			if !ok || n.Reception != 1 {
				continue
			}
			d := max(n.Arrived.Sub(at), 0)
			if merchantOf[n.TradeNo] == alone {
				latAlone = append(latAlone, d)
			} else {
				latBeside = append(latBeside, d)
			}
		}
		pAlone, pBeside := p95(latAlone), p95(latBeside)
		ratio := float64(pBeside) / float64(max(pAlone, time.Millisecond))
		t.Logf("healthy destination p95: %v for a merchant with no hanging destination, %v beside a hanging one holding %d requests (ratio %.2f; medians %v, %v)",
			pAlone, pBeside, held, ratio, median(latAlone), median(latBeside))
		if held == 0 {
			t.Fatal("the hanging destination held no requests while measuring: the test measured nothing")
		}
		if ratio > nfIsolationRatioMax {
			t.Errorf("healthy p95 %v beside a hanging destination, %v without: ratio %.2f, want at most %.1f",
				pBeside, pAlone, ratio, nfIsolationRatioMax)
		}
	})
}

func p95(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[(len(s)*95+99)/100-1]
}

func median(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[len(s)/2]
}
