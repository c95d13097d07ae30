package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
	"zhifu/channel"
)

// The failure modes of the articles, one test each: at least 1,000 top-ups
// and 1,000 withdrawals through the simulated banks over real HTTP while
// the banks misbehave, then the clock is moved on until every transaction
// is resolved (callbacks, inquiries with backoff, statements), and verify
// shows that no debit is unresolved, none is credited twice, the wallets,
// the ledger and the banks' books agree, and the ledger check is clean.
// With -short the counts drop to 200 each, for the race detector.

var allBanks = []string{"ICBC", "CMB", "CCB", "ABC", "BOC", "CEB"}

// faultRun describes one run.
type faultRun struct {
	scenario banksim.Scenario // every bank's, for the whole run
	// phases run one after another as the load passes 1/(n+1), 2/(n+1)…
	// of its requests: a bank failing mid-run and recovering.
	phases []func(t *testing.T, e *chEnv)
	// settleStep and settleLimit move the clock after the load.
	settleStep, settleLimit time.Duration
	channels                func(*channel.Config)
}

func faultCounts() (topups, withdrawals int) {
	if testing.Short() {
		return 200, 200
	}
	return 1000, 1000
}

// runFaults runs the load and checks the outcome, on both stores.
func runFaults(t *testing.T, r faultRun) {
	forEachChannelStore(t, chOptions{channels: r.channels}, func(t *testing.T, e *chEnv) {
		const usersN, funds = 16, int64(10_000_000_00)
		users := e.newUsers(t, "f", usersN, allBanks, yuan(funds))
		deposits := map[string]int64{}
		for _, u := range users {
			deposits[u.id] = funds
		}
		if err := e.banks.SetScenarios(banksim.Scenarios{Default: r.scenario}); err != nil {
			t.Fatal(err)
		}
		topups, withdrawals := faultCounts()
		made := e.load(t, users, topups, withdrawals, r.phases)
		t.Logf("load: %d top-ups and %d withdrawals accepted, %d top-ups refused (bank down or in maintenance)",
			made.topups, made.withdrawals, made.refused)
		if made.topups < int64(topups) || made.withdrawals < int64(withdrawals) {
			t.Fatalf("only %d top-ups and %d withdrawals accepted", made.topups, made.withdrawals)
		}
		e.settle(t, r.settleStep, r.settleLimit)
		e.verify(t, users, deposits, nil)
	})
}

type loadCounts struct {
	topups, withdrawals, refused int64
}

// load sends top-ups and withdrawals from many clients at once until the
// counts are reached. A top-up refused because its bank is down, congested
// or in maintenance goes to the user's next card, as the cashier advises.
func (e *chEnv) load(t *testing.T, users []*chUser, topups, withdrawals int, phases []func(*testing.T, *chEnv)) loadCounts {
	t.Helper()
	const clients = 32
	type task struct {
		topup bool
		user  *chUser
		fen   int64
		n     int
	}
	tasks := make(chan task)
	var counts loadCounts
	var done atomic.Int64
	total := int64(topups + withdrawals)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for tk := range tasks {
				if err := e.one(tk.topup, tk.user, tk.fen, fmt.Sprintf("k%d-%d", c, tk.n), tk.n, &counts); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
				done.Add(1)
			}
		})
	}
	r := rand.New(rand.NewPCG(7, 11))
	next := 0
	for i := range int(total) {
		if next < len(phases) && done.Load() >= total*int64(next+1)/int64(len(phases)+1) {
			phases[next](t, e)
			next++
		}
		tasks <- task{topup: i%2 == 0 && i/2 < topups || i/2 >= withdrawals, user: users[r.IntN(len(users))],
			fen: amountOf(r), n: i}
	}
	close(tasks)
	wg.Wait()
	for ; next < len(phases); next++ {
		phases[next](t, e)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return counts
}

// one sends one top-up (trying the user's cards in turn) or withdrawal.
func (e *chEnv) one(topup bool, u *chUser, fen int64, key string, n int, counts *loadCounts) error {
	start := n % len(u.order)
	if !topup {
		bank := u.order[start]
		s, _, out, err := e.do(u.token, "POST", "/v1/withdrawals",
			map[string]string{"amount": yuan(fen), "card_id": u.cards[bank]}, key)
		if err != nil || s != 202 || out["status"] != "QUEUED" {
			return fmt.Errorf("withdrawal: %d %v %v", s, out, err)
		}
		atomic.AddInt64(&counts.withdrawals, 1)
		return nil
	}
	// The clock stands still during the load, so a bank whose breaker
	// opened stays refused until it moves: when every card was refused,
	// the clock is moved on a second (towards the breaker's half-open
	// probe), and a short real wait lets a congested bank's callers drain.
	// On a loaded machine the timeouts this scenario injects can open
	// every bank's breaker at once.
	for attempt := range topupAttemptsMax {
		for i := range u.order {
			bank := u.order[(start+i)%len(u.order)]
			s, _, out, err := e.do(u.token, "POST", "/v1/topups",
				map[string]string{"amount": yuan(fen), "card_id": u.cards[bank]}, fmt.Sprintf("%s-%d-%s", key, attempt, bank))
			switch {
			case err != nil:
				return err
			case s == 201 && out["status"] != nil:
				atomic.AddInt64(&counts.topups, 1)
				return nil
			case s == 503 && (errorCode(out) == "CHANNEL_UNAVAILABLE" || errorCode(out) == "MAINTENANCE"):
				atomic.AddInt64(&counts.refused, 1)
			default:
				return fmt.Errorf("top-up: %d %v", s, out)
			}
		}
		e.clock.Advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("top-up: every card refused %d times", topupAttemptsMax)
}

// topupAttemptsMax bounds the rounds over a user's cards for one top-up.
const topupAttemptsMax = 100

func TestChannelFaultLatency(t *testing.T) {
	runFaults(t, faultRun{scenario: banksim.Scenario{Latency: banksim.Latency{MedianMs: 20, P99Ms: 300}},
		settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultFailureRate(t *testing.T) {
	// A fifth of debits and credits fail at the bank, and one request in
	// twenty is answered 500 or 503 before the bank does anything.
	runFaults(t, faultRun{scenario: banksim.Scenario{FailureRate: 0.2, ErrorRate: 0.05},
		settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultTimeoutAfterDebit(t *testing.T) {
	// The mother's 800 yuan: the bank takes the money and never answers.
	runFaults(t, faultRun{scenario: banksim.Scenario{TimeoutRate: 0.15, TimeoutHoldMs: 2000},
		channels:   func(c *channel.Config) { c.CallTimeout = 300 * time.Millisecond },
		settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultLostCallbacks(t *testing.T) {
	// Outcomes come later, by callback; half the callbacks never come.
	runFaults(t, faultRun{scenario: banksim.Scenario{SettleDelayMs: 30, CallbackLossRate: 0.5},
		settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultDuplicateCallbacks(t *testing.T) {
	runFaults(t, faultRun{scenario: banksim.Scenario{SettleDelayMs: 20, CallbackDuplicateRate: 0.6},
		settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultLateCallbacks(t *testing.T) {
	// Callbacks come late and out of order; some after an inquiry has
	// already settled the transaction.
	runFaults(t, faultRun{scenario: banksim.Scenario{SettleDelayMs: 20, CallbackDelayMs: 300,
		CallbackReorderRate: 0.5, CallbackReorderMs: 1500},
		settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultOutage(t *testing.T) {
	// A third of the way in, ICBC refuses everything and CMB's front end
	// drops every connection; two thirds in, both come back.
	set := func(outage string, banks ...string) func(*testing.T, *chEnv) {
		return func(t *testing.T, e *chEnv) {
			for _, b := range banks {
				if err := e.banks.SetScenario(b, banksim.Scenario{Outage: outage}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	runFaults(t, faultRun{phases: []func(*testing.T, *chEnv){
		func(t *testing.T, e *chEnv) {
			set(banksim.OutageReject, "ICBC")(t, e)
			set(banksim.OutageClose, "CMB")(t, e)
		},
		set("", "ICBC", "CMB"),
	}, settleStep: 30 * time.Second, settleLimit: time.Hour})
}

func TestChannelFaultMaintenance(t *testing.T) {
	// ICBC and CEB stop for 20 minutes from the start (CEB expanded its
	// systems for an hour on 11 November 2010); the platform reads their
	// notices, routes top-ups around them and holds their payouts until
	// they are back.
	start := func(t *testing.T, e *chEnv) {
		now := e.clock.Now()
		for _, b := range []string{"ICBC", "CEB"} {
			if err := e.banks.SetScenario(b, banksim.Scenario{Maintenance: []bankapi.Window{{Start: now, End: now.Add(20 * time.Minute)}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.ch.RefreshMaintenance(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	runFaults(t, faultRun{phases: []func(*testing.T, *chEnv){start}, settleStep: time.Minute, settleLimit: 2 * time.Hour})
}
