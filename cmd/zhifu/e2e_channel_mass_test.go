package main

import (
	"context"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu"
	"zhifu/banksim"
	"zhifu/channel"
	"zhifu/identity"
)

// The 2010 mass-withdrawal campaign ("今天你提了吗"): a burst of withdrawals
// submitted at once while buyers keep paying. Withdrawals are accepted at
// once (frozen in the ledger) and paid at each bank's pace; payments keep
// their latency; nothing is overdrawn; no bank is pushed past its
// capacity.
//
// This is a load test: it runs on SQLite only (the embedded store, where
// one writer makes the contention sharpest) and on the real clock, because
// what it measures is real latency and real pace. The burst is
// ZHIFU_MASS_WITHDRAWALS withdrawals (default 20,000, 2,000 with -short;
// BENCHMARKS.md records a 100,000 run:
//
//	ZHIFU_MASS_WITHDRAWALS=100000 go test ./cmd/zhifu -run ChannelMassWithdrawal -v
const (
	massBankRPS     = 100 // each bank's capacity, and what the platform allows itself there
	massPayers      = 8
	massPayInterval = 25 * time.Millisecond // each payer: 40 payments a second
)

func massCount() int {
	if v := testGetenv("ZHIFU_MASS_WITHDRAWALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil && n > 0 {
			return n
		}
	}
	if testing.Short() {
		return 2_000
	}
	return 20_000
}

func TestChannelMassWithdrawal(t *testing.T) {
	n := massCount()
	massUsers := 100
	if testing.Short() {
		massUsers = 20 // registering users hashes passwords, slowly under -race
	}
	e := newChannelEnv(t, "sqlite", chOptions{realClock: true,
		channels: func(c *channel.Config) {
			c.CapacityDefault = massBankRPS
			if v, err := strconv.Atoi(testGetenv("ZHIFU_MASS_ACCEPT")); err == nil {
				c.AcceptInFlightMax = v
			}
			c.CallTimeout = 5 * time.Second
		},
		banks: func(c *banksim.Config) {
			c.Scenarios = banksim.Scenarios{Default: banksim.Scenario{RPS: massBankRPS,
				Latency: banksim.Latency{FixedMs: 5, JitterMs: 10}}}
		}})
	ctx := context.Background()
	per := int64(n/massUsers + 1)
	users := e.newUsers(t, "mass", massUsers, allBanks, yuan(per*100))
	w := newTrWorld(t, e.env)
	payers := make([]trUser, massPayers)
	for i := range payers {
		payers[i] = w.user("payer")
		w.fund(payers[i], "1000000.00")
	}
	idUsers := make([]*identity.User, len(users))
	for i, u := range users {
		var err error
		if idUsers[i], err = e.m.Identity.UserByID(ctx, u.id); err != nil {
			t.Fatal(err)
		}
	}

	pay := func(stop <-chan struct{}) []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for _, p := range payers {
			wg.Go(func() {
				tick := time.NewTicker(massPayInterval)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					no := w.mustCreate(nil)
					start := time.Now()
					s, _, out, err := e.do(p.token, "POST", "/v1/trades/"+no+"/pay", map[string]string{"method": "balance"}, "")
					took := time.Since(start)
					if err != nil || s != 200 || out["status"] != "TRADE_SUCCESS" {
						t.Errorf("payment: %d %v %v", s, out, err)
						return
					}
					mu.Lock()
					lat = append(lat, took)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return lat
	}
	runFor := func(d time.Duration) []time.Duration {
		stop := make(chan struct{})
		time.AfterFunc(d, func() { close(stop) })
		return pay(stop)
	}

	// Payments alone, before the burst (and again after it, below).
	runFor(time.Second) // warm up
	base := runFor(4 * time.Second)

	// The burst, while the same payments go on.
	stop := make(chan struct{})
	var during []time.Duration
	var payWG sync.WaitGroup
	payWG.Go(func() { during = pay(stop) })
	if path := testGetenv("ZHIFU_MASS_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 256 {
		wg.Go(func() {
			for i := range jobs {
				u, iu := users[i%massUsers], idUsers[i%massUsers]
				bank := allBanks[(i/massUsers)%len(allBanks)]
				_, _, err := e.ch.Withdraw(ctx, iu, channel.WithdrawParams{Amount: 100, CardID: u.cards[bank]})
				switch {
				case err == nil:
					accepted.Add(1)
				case zhifu.ErrorCode(err) == zhifu.SystemBusy:
					refused.Add(1)
				default:
					t.Errorf("withdrawal %d: %v", i, err)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	submitted := time.Since(start)
	close(stop)
	payWG.Wait()
	if refused.Load() != 0 || accepted.Load() != int64(n) {
		t.Fatalf("%d withdrawals accepted, %d refused, of %d", accepted.Load(), refused.Load(), n)
	}
	// Without the burst again, the payouts now going on: the two windows
	// together make the p99 of a quiet platform less hostage to one
	// stall of a shared machine's disk.
	base = append(base, runFor(4*time.Second)...)
	p50b, p99b := percentiles(base)
	p50d, p99d := percentiles(during)
	t.Logf("%d withdrawals accepted in %s (%.0f/s)", n, submitted.Round(time.Millisecond), float64(n)/submitted.Seconds())
	t.Logf("payments without the burst: %d, p50 %s p99 %s; during it: %d, p50 %s p99 %s",
		len(base), p50b, p99b, len(during), p50d, p99d)
	// The figures are judged only in the measured run (the command above,
	// on a machine doing nothing else); in the everyday suite a shared
	// machine's noise would make them flaky, so they are logged.
	timings := !raceEnabled && testGetenv("ZHIFU_MASS_WITHDRAWALS") != ""
	if p99d > 2*p99b && timings {
		t.Errorf("payment p99 %s during the burst, more than twice %s without", p99d, p99b)
	}

	// The payouts go at the banks' pace: measure a few seconds, once the
	// buckets' initial burst is spent.
	paidOut := func() int64 {
		var c int64
		if err := e.m.store.Reader().QueryRow(ctx, `SELECT count(*) FROM bank_txns WHERE kind = 'withdrawal'
			AND status = 'SUCCESS'`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Measured only while the queues are not empty: a short run may be
	// all paid already.
	queued := func() int64 {
		var c int64
		e.m.store.Reader().QueryRow(ctx, `SELECT count(*) FROM bank_txns WHERE status = 'QUEUED'`).Scan(&c)
		return c
	}
	time.Sleep(time.Second)
	c0, t0 := paidOut(), time.Now()
	c1, t1 := c0, t0
	for time.Since(t0) < 5*time.Second {
		time.Sleep(500 * time.Millisecond)
		if queued() == 0 {
			break
		}
		c1, t1 = paidOut(), time.Now()
	}
	pace := float64(len(allBanks)) * massBankRPS * channel.BackgroundShareDefault
	if span := t1.Sub(t0); span >= time.Second {
		rate := float64(c1-c0) / span.Seconds()
		t.Logf("payouts: %.0f/s against a pace of %.0f/s, over %s (%d of %d paid by then)", rate, pace,
			span.Round(time.Millisecond), c1, n)
		if (rate > pace*1.15 || rate < pace*0.5) && timings {
			t.Errorf("payouts at %.0f/s, want the banks' pace %.0f/s", rate, pace)
		}
	} else {
		t.Logf("payouts: the queues emptied before the pace could be measured (%d paid)", paidOut())
	}
	for _, bank := range allBanks {
		if st := e.banks.Stats(bank); st.Rejected != 0 {
			t.Errorf("%s refused %d requests over its capacity", bank, st.Rejected)
		}
	}

	// Nothing overdrawn: every withdrawer's money is where it should be,
	// and the ledger check (custody against the banks' books included) is
	// clean while payouts are still going.
	// The wallet and the bank transactions are two reads: a payout that
	// settles between them would count as frozen and as paid out. A
	// payout's settlement and its status commit together, so a balance
	// read between two equal sums of what was paid is one state.
	for _, u := range users[:10] {
		paidOut := func() int64 {
			var paid int64
			if err := e.m.store.Reader().QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM bank_txns
				WHERE user_id = ? AND status = 'SUCCESS'`, u.id).Scan(&paid); err != nil {
				t.Fatal(err)
			}
			return paid
		}
		var avail, frozen string
		var paid int64
		for try := 0; ; try++ {
			before := paidOut()
			avail, frozen = idBalance(t, e.env, u.idUser)
			if paid = paidOut(); paid == before {
				break
			}
			if try == 100 {
				t.Fatalf("%s: payouts kept settling during 100 reads of the wallet", u.login)
			}
		}
		a, _ := zhifu.ParseAmount(avail, "")
		f, _ := zhifu.ParseAmount(frozen, "")
		if int64(a+f)+paid != per*100 || a < 0 || f < 0 {
			t.Errorf("%s: available %s + frozen %s + paid out %s != deposited %s", u.login, avail, frozen,
				zhifu.Amount(paid), zhifu.Amount(per*100))
		}
	}
	idCheckLedger(t, e.env)
}

// percentiles returns the 50th and 99th percentile.
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100]
}
