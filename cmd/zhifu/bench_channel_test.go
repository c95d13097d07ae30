package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/banksim"
	"zhifu/channel"
)

// BenchmarkChannelTopups measures quick-pay top-ups per second end to end
// through healthy simulated banks, on the real clock: 64 clients POST
// /v1/topups (each answered once the intent is durable), the channels send
// the debits, and the clock stops when the last one is credited to its
// wallet. It reports top-ups/s and the p50 and p99 of the POST.
//
//	go test -run '^$' -bench ChannelTopups -benchtime 20000x ./cmd/zhifu
func BenchmarkChannelTopups(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			e := newChannelBench(b, backend, chOptions{realClock: true})
			users := e.benchUsers(b, "bench", 64, allBanks)
			b.ResetTimer()
			start := time.Now()
			lat := e.topupLoad(b, users, b.N, 64)
			accepted := time.Since(start)
			e.waitResolved(b, b.N, 2*time.Minute)
			took := time.Since(start)
			b.StopTimer()
			p50, p99 := percentiles(lat)
			b.ReportMetric(float64(b.N)/took.Seconds(), "topups/s")
			b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted/s")
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkChannelLostCallback measures how long a top-up whose callback
// never comes takes to be resolved, on the real clock with the default
// inquiry policy (the first inquiry 5 s after the debit, then growing
// gaps): the bank decides 50 ms after the debit and loses every callback.
// It reports the mean and the slowest time from the POST to SUCCESS, and
// for comparison the same with callbacks delivered.
//
//	go test -run '^$' -bench ChannelLostCallback -benchtime 20x ./cmd/zhifu
func BenchmarkChannelLostCallback(b *testing.B) {
	for _, lost := range []bool{true, false} {
		name := "callback=lost"
		if !lost {
			name = "callback=delivered"
		}
		b.Run(name, func(b *testing.B) {
			sc := banksim.Scenario{SettleDelayMs: 50}
			if lost {
				sc.CallbackLossRate = 1
			}
			e := newChannelBench(b, "sqlite", chOptions{realClock: true,
				banks:    func(c *banksim.Config) { c.Scenarios = banksim.Scenarios{Default: sc} },
				channels: func(c *channel.Config) { c.Policy = channel.DefaultPolicy }})
			users := e.benchUsers(b, "lost", 1, []string{"CMB"})
			u := users[0]
			b.ResetTimer()
			var mu sync.Mutex
			var times []time.Duration
			var wg sync.WaitGroup
			for i := range b.N {
				wg.Go(func() {
					start := time.Now()
					s, _, out, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "800.00",
						"card_id": u.cards["CMB"]}, fmt.Sprintf("lost-%d", i))
					if err != nil || s != 201 {
						b.Errorf("top-up: %d %v %v", s, out, err)
						return
					}
					id := out["topup_id"].(string)
					for time.Since(start) < time.Minute {
						_, _, got, err := e.do(u.token, "GET", "/v1/topups/"+id, nil, "")
						if err == nil && got["status"] == "SUCCESS" {
							mu.Lock()
							times = append(times, time.Since(start))
							mu.Unlock()
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
					b.Errorf("top-up %s not resolved in a minute", id)
				})
				time.Sleep(20 * time.Millisecond)
			}
			wg.Wait()
			b.StopTimer()
			var sum, worst time.Duration
			for _, d := range times {
				sum += d
				worst = max(worst, d)
			}
			if len(times) > 0 {
				b.ReportMetric((sum / time.Duration(len(times))).Seconds(), "mean-s")
				b.ReportMetric(worst.Seconds(), "max-s")
			}
		})
	}
}

// newChannelBench starts a platform for a benchmark.
func newChannelBench(b *testing.B, backend string, o chOptions) *chEnv {
	b.Helper()
	return newChannelEnv(b, backend, o)
}

// benchUsers registers n users with a card at each bank, through e.do
// alone (the env helpers want a *testing.T).
func (e *chEnv) benchUsers(b *testing.B, prefix string, n int, banks []string) []*chUser {
	b.Helper()
	users := make([]*chUser, n)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			login := fmt.Sprintf("%s%03d", prefix, i)
			s, _, u, err := e.do(e.token, "POST", "/v1/users", map[string]string{"login": login,
				"password": idPassword(login), "name": login}, "")
			if err != nil || s != 201 {
				b.Errorf("user: %d %v %v", s, u, err)
				return
			}
			s, _, sess, err := e.do("", "POST", "/v1/sessions", map[string]string{"login": login,
				"password": idPassword(login)}, "")
			if err != nil || s != 200 {
				b.Errorf("login: %d %v %v", s, sess, err)
				return
			}
			cu := &chUser{idUser: idUser{id: u["user_id"].(string), login: login, token: sess["token"].(string)},
				cards: map[string]string{}}
			for _, bank := range banks {
				s, _, c, err := e.do(cu.token, "POST", "/v1/cards", map[string]string{"bank": bank,
					"card_no": cardNumber(int(cardSeq.Add(1))), "holder": login}, "")
				if err != nil || s != 201 {
					b.Errorf("card: %d %v %v", s, c, err)
					return
				}
				cu.cards[bank] = c["card_id"].(string)
				cu.order = append(cu.order, bank)
			}
			users[i] = cu
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return users
}

// topupLoad posts n top-ups from clients goroutines over the users' cards
// and returns each POST's latency.
func (e *chEnv) topupLoad(b *testing.B, users []*chUser, n, clients int) []time.Duration {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				u := users[(c+i)%len(users)]
				bank := allBanks[i%len(allBanks)]
				start := time.Now()
				s, _, out, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "1.00",
					"card_id": u.cards[bank]}, "")
				lat[i] = time.Since(start)
				if err != nil || s != 201 {
					b.Errorf("top-up: %d %v %v", s, out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return lat
}

// waitResolved waits until n top-ups are SUCCESS, at most d.
func (e *chEnv) waitResolved(b *testing.B, n int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var c int64
		e.m.store.Reader().QueryRow(b.Context(), `SELECT count(*) FROM bank_txns WHERE status = 'SUCCESS'`).Scan(&c)
		if c >= int64(n) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("top-ups not all credited within %s", d)
}
