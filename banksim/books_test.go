package banksim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"zhifu/bankapi"
	"zhifu/banksim"
)

const (
	randomOps      = 1000
	randomWorkers  = 16
	randomCards    = 8
	randomStarting = 2000_00
)

// TestBooksBalanceUnderFaults runs 1,000 random debits and credits (some
// retried) from concurrent callers against banks that fail, error, time out
// and mangle callbacks. Afterwards every bank's books balance, and the
// journal as the inquiry API shows it agrees with them.
func TestBooksBalanceUnderFaults(t *testing.T) {
	banks := []string{"ICBC", "CMB", "CCB"}
	e := newEnv(t, func(c *banksim.Config) {
		c.StartingBalance = randomStarting
		c.SettlementFloat = 5000_00
	})
	cards := map[string][]bankapi.Card{}
	for _, b := range banks {
		for i := range randomCards {
			cards[b] = append(cards[b], e.card(b, i))
		}
	}
	faulty := banksim.Scenario{FailureRate: 0.1, ErrorRate: 0.05, TimeoutRate: 0.05,
		CallbackLossRate: 0.1, CallbackDuplicateRate: 0.1, CallbackReorderRate: 0.2, CallbackReorderMs: 5}
	for _, b := range banks {
		e.scenario(b, faulty)
	}
	sent := runRandomOps(e, banks, cards)
	e.checkBooks()
	for _, b := range banks {
		e.scenario(b, banksim.Scenario{})
		checkJournal(t, e, b, sent[b])
	}
	if e.sink.bad.Load() != 0 {
		t.Fatalf("%d callbacks failed their signature check", e.sink.bad.Load())
	}
}

// runRandomOps sends the random workload and returns, per bank, every
// request_id sent.
func runRandomOps(e *env, banks []string, cards map[string][]bankapi.Card) map[string][]string {
	sent := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range randomWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range randomOps / randomWorkers {
				bank := banks[rng.IntN(len(banks))]
				c := e.client(bank)
				req := bankapi.TxnRequest{RequestID: fmt.Sprintf("w%d-%d", w, i),
					CardToken: cards[bank][rng.IntN(randomCards)].CardToken, Amount: 1 + rng.Int64N(1500_00),
					CallbackURL: e.sink.url(bank)}
				mu.Lock()
				sent[bank] = append(sent[bank], req.RequestID)
				mu.Unlock()
				call := c.Debit
				if rng.IntN(2) == 0 {
					call = c.Credit
				}
				// Errors are part of the test: the platform would retry or
				// inquire, and half the time this caller retries once with
				// the same request.
				if _, err := call(context.Background(), req); err != nil && rng.IntN(2) == 0 {
					call(context.Background(), req)
				}
			}
		})
	}
	wg.Wait()
	return sent
}

// checkJournal inquires every id sent to bank and compares the sums with
// the bank's books.
func checkJournal(t *testing.T, e *env, bank string, ids []string) {
	t.Helper()
	books, err := e.sim.Books(bank)
	if err != nil {
		t.Fatal(err)
	}
	var debited, credited, found int64
	c := e.client(bank)
	for _, id := range ids {
		q, err := c.Inquire(context.Background(), id)
		if bankapi.IsNotFound(err) {
			continue // refused before the bank recorded it
		}
		if err != nil {
			t.Fatal(err)
		}
		found++
		switch {
		case q.Status != bankapi.StatusSuccess:
		case q.Kind == bankapi.KindDebit:
			debited += q.Amount
		default:
			credited += q.Amount
		}
	}
	if debited != books.Debited || credited != books.Credited || found != books.Transactions {
		t.Fatalf("%s: inquiries show %d txns, debited %d, credited %d; books %+v", bank, found, debited, credited, books)
	}
	if want := books.SettlementFloat + randomCards*randomStarting; books.Funding != want {
		t.Fatalf("%s: funding %d, want %d", bank, books.Funding, want)
	}
	if books.Transactions < int64(len(ids))/2 {
		t.Fatalf("%s: only %d of %d requests recorded: the faults drowned the test", bank, books.Transactions, len(ids))
	}
}
