package main

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBenchNodes measures paid trades per second end to end with 1, 2 and
// 3 "zhifu serve" nodes on one PostgreSQL database behind HAProxy: 32
// clients loop on a signed merchant create and the buyer's balance
// payment, both with an Idempotency-Key, through the load balancer. It is
// a measurement rather than a check, and runs only when asked (it builds
// several platforms):
//
//	ZHIFU_BENCH_NODES=4000 go test -run TestBenchNodes -v ./cmd/zhifu
//
// where the number is the trades paid per measurement.
func TestBenchNodes(t *testing.T) {
	v := testGetenv("ZHIFU_BENCH_NODES")
	if v == "" {
		t.Skip("set ZHIFU_BENCH_NODES=<trades per measurement> to measure paid trades/s with 1, 2 and 3 nodes")
	}
	pairs, err := strconv.Atoi(v)
	if err != nil || pairs <= 0 {
		t.Fatalf("ZHIFU_BENCH_NODES=%q: want a number of trades", v)
	}
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			db := testDatabase(t, t.TempDir(), "postgres")
			rig := newNodesRig(t, db, n, "500")
			l := newNodesLoad(t, rig, newReceiver(t), 32)
			defer l.rt.cl.CloseIdleConnections()
			// A warm-up, so that every node has its connections and
			// caches.
			benchPairs(t, l, "warm", 200)
			rate, p50, p99 := benchPairs(t, l, "run", pairs)
			t.Logf("nodes=%d: %.0f trades/s, pair p50 %.1f ms, p99 %.1f ms", n, rate, p50, p99)
			rig.stopAll()
		})
	}
}

// benchPairs pays n trades with every buyer as a client and returns the
// trades per second and the p50 and p99 of one create+pay pair in ms.
func benchPairs(t *testing.T, l *nodesLoad, prefix string, n int) (float64, float64, float64) {
	var next atomic.Int64
	lat := make([][]time.Duration, len(l.buyers))
	var wg sync.WaitGroup
	start := time.Now()
	for c, u := range l.buyers {
		wg.Go(func() {
			for {
				seq := next.Add(1)
				if seq > int64(n) {
					return
				}
				t0 := time.Now()
				if !l.trade(u, fmt.Sprintf("%s-%d", prefix, seq), "instant", "") {
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(l.errs) > 0 {
		t.Fatal(l.errs)
	}
	var all []time.Duration
	for _, x := range lat {
		all = append(all, x...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
	return float64(len(all)) / elapsed.Seconds(), ms(0.5), ms(0.99)
}
