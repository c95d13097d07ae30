package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkOverload measures payments under offered load of 1×, 2×, 4× and
// 8× what the platform served closed loop (the overload test's mix: one
// payment in seven, the rest statement reads, open loop from hundreds of
// clients), with admission control and without it (--admission off). It
// reports served payments a second and their p50 and p99, the share of
// requests refused, and the slowest answer. The anchor sub-benchmark
// measures the disk's fsync rate in the same run, so figures from
// different runs can be compared.
//
//	go test -run '^$' -bench Overload -benchtime 1x ./cmd/zhifu
//
// ZHIFU_BENCH_OVERLOAD_SECONDS sets each load's length (default 3).
func BenchmarkOverload(b *testing.B) {
	d := 3 * time.Second
	if v, err := strconv.Atoi(testGetenv("ZHIFU_BENCH_OVERLOAD_SECONDS")); err == nil && v > 0 {
		d = time.Duration(v) * time.Second
	}
	b.Run("anchor", func(b *testing.B) { b.ReportMetric(fsyncRate(b), "fsync/s"); b.ReportMetric(0, "ns/op") })
	var capacity float64
	for _, mode := range []string{"on", "off"} {
		b.Run("admission="+mode, func(b *testing.B) {
			o := newOverloadEnv(b, false, "--admission", mode)
			o.makeTrades(b, 3000)
			st := o.closedLoop("warm-up", olCapacityClients, olPayEvery, time.Second)
			if capacity == 0 {
				// Measured once, with admission on, and used for both.
				st = o.closedLoop("capacity", olCapacityClients, olPayEvery, d)
				capacity = st.served()
			}
			one := olMix{olPay: capacity / olPayEvery, olQuery: capacity * (olPayEvery - 1) / olPayEvery}
			o.makeTrades(b, int(one[olPay]*15*d.Seconds()*1.2))
			for _, f := range []float64{1, 2, 4, 8} {
				b.Run(fmt.Sprintf("load=%gx", f), func(b *testing.B) {
					st := o.openLoop(fmt.Sprintf("%gx", f), one.times(f), d)
					b.Log(st)
					b.ReportMetric(st.offered(), "offered/s")
					b.ReportMetric(st.sent(), "sent/s")
					b.ReportMetric(st.rate(olPay), "payments/s")
					b.ReportMetric(float64(st.p(olPay, 0.5))/1e6, "pay-p50-ms")
					b.ReportMetric(float64(st.p(olPay, 0.99))/1e6, "pay-p99-ms")
					b.ReportMetric(100*st.shedShare(olPay), "pay-refused-%")
					b.ReportMetric(100*st.shedShare(olQuery), "query-refused-%")
					slowest := time.Duration(0)
					for _, k := range st.kinds {
						slowest = max(slowest, k.answerMax)
					}
					b.ReportMetric(float64(slowest)/1e6, "slowest-ms")
					b.ReportMetric(0, "ns/op")
				})
			}
			o.checkPaid(b)
		})
	}
}

// fsyncRate is how many write+fsync rounds of 4 KiB a temporary file takes
// in a second here: the disk's pace, the anchor of the figures beside it.
func fsyncRate(b *testing.B) float64 {
	f, err := os.Create(filepath.Join(b.TempDir(), "anchor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	n, start := 0, time.Now()
	for time.Since(start) < time.Second {
		if _, err := f.WriteAt(page, int64(n%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}
