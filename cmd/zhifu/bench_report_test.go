package main

import (
	"slices"
	"testing"
	"time"
)

// reportRate reports what a closed-loop benchmark measured: completions per
// second under unit (such as "trades/s"), and the p50 and p99 latency of
// one, from every client's samples. ns/op is zeroed: the latencies are the
// figures that mean something.
func reportRate(b *testing.B, unit string, lat [][]time.Duration, elapsed time.Duration) {
	b.Helper()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		b.Fatal("no samples")
	}
	slices.Sort(all)
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), unit)
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
