package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// transferClients is how many users send transfers at once.
const transferClients = 32

// BenchmarkUserTransfers measures user-to-user transfers per second over
// HTTP: 32 logged-in users each loop on POST /v1/transfers to the next
// one, one transfer per request, answered once durable; "keyed" sends an
// Idempotency-Key with each. It reports transfers/s and the p50 and p99
// latency of one request.
//
//	go test -run '^$' -bench UserTransfers -benchtime 20000x ./cmd/zhifu
func BenchmarkUserTransfers(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, keyed := range []bool{false, true} {
			name := backend + "/plain"
			if keyed {
				name = backend + "/keyed"
			}
			b.Run(name, func(b *testing.B) { benchTransfers(b, backend, keyed) })
		}
	}
}

func benchTransfers(b *testing.B, backend string, keyed bool) {
	tb := newTradeBench(b, backend) // its buyers are funded users
	users := make([]string, transferClients)
	for i := range users {
		// The ids of the trade bench's funded buyers, by their sessions.
		var w struct {
			UserID string `json:"user_id"`
		}
		tb.must(b, "GET", "/v1/wallet", "Bearer "+tb.buyers[i], "", &w)
		users[i] = w.UserID
	}
	var next atomic.Int64
	lat := make([][]time.Duration, transferClients)
	errs := make([]error, transferClients)
	n := int64(b.N)
	var wg sync.WaitGroup
	reportWritten := tb.meterWrites(b)
	cpu0 := processCPU(b)
	b.ResetTimer()
	start := time.Now()
	for c := range transferClients {
		wg.Go(func() {
			to := users[(c+1)%transferClients]
			for {
				seq := next.Add(1)
				if seq > n {
					return
				}
				key := ""
				if keyed {
					key = fmt.Sprint("tr-", seq)
				}
				t0 := time.Now()
				body := fmt.Sprintf(`{"to_user_id":%q,"amount":"0.01"}`, to)
				if err := tb.callKeyed("POST", "/v1/transfers", "Bearer "+tb.buyers[c], key, body, nil); err != nil {
					errs[c] = err
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportWritten("bytes/transfer", n)
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(n), "cpu-us/transfer")
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "transfers/s", lat, elapsed)
}
