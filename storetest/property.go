package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// testProperty commits random sequences of transfers (plain, pending, posts
// and voids, linked groups, replays and conflicting replays) in random batch
// shapes, and after each sequence checks: every result equals what the pure
// rules give on a model kept in memory, the stored accounts equal the model's,
// and the audit finds debits equal to credits, balances equal to the sums of
// transfers and no flagged account below zero.
//
// Each run draws fresh seeds and logs them; ZHIFU_TEST_SEED replays one.
func testProperty(t *testing.T, fresh func(t *testing.T) ledger.Store) {
	rounds := 4
	if testing.Short() {
		rounds = 1
	}
	for _, seed := range testkit.Seeds(t, rounds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			st := fresh(t)
			rng := rand.New(rand.NewPCG(seed, 99))
			g := newGenerator(rng)
			mustCreate(t, st, g.accounts...)
			model := ledger.NewState()
			for i := range g.accounts {
				a := g.accounts[i]
				model.Accounts[a.ID] = &a
			}
			seen := make(map[ledger.TransferResult]int)
			for round := 0; round < 150; round++ {
				subs := make([][]ledger.Transfer, 1+rng.IntN(6))
				for i := range subs {
					subs[i] = g.submission()
				}
				got, err := ledger.Commit(ctx, st, subs, int64(round+1))
				if err != nil {
					t.Fatal(err)
				}
				for i, sub := range subs {
					want := model.Apply(sub, int64(round+1))
					for j := range want {
						seen[want[j]]++
						if got[i][j] != want[j] {
							t.Fatalf("round %d sub %d transfer %d (%+v): store %v, model %v", round, i, j, sub[j], got[i][j], want[j])
						}
					}
				}
			}
			// The generator must reach the interesting outcomes, or the
			// property says little.
			for _, r := range []ledger.TransferResult{ledger.TransferOK, ledger.TransferExists,
				ledger.TransferLinkedEventFailed, ledger.TransferExceedsCredits, ledger.TransferExistsWithDifferentAmount,
				ledger.TransferPendingTransferAlreadyPosted, ledger.TransferPendingTransferAlreadyVoided,
				ledger.TransferAccountsMustHaveTheSameLedger} {
				if seen[r] == 0 {
					t.Errorf("no transfer ended %v; outcomes: %v", r, seen)
				}
			}
			for id, want := range model.Accounts {
				got := account(t, st, id)
				got.Timestamp, want.Timestamp = 0, 0
				if got != *want {
					t.Fatalf("account %d: store %+v, model %+v", id, got, *want)
				}
			}
			mustCheck(t, st)
		})
	}
}

// generator makes random but plausible transfers over a small chart of
// accounts so that conflicts, overdrafts and replays are frequent.
type generator struct {
	rng      *rand.Rand
	accounts []ledger.Account
	ids      []ledger.Transfer // everything ever proposed, for replays
	pending  []string
	n        int
}

func newGenerator(rng *rand.Rand) *generator {
	g := &generator{rng: rng}
	for i := int64(1); i <= 6; i++ {
		g.accounts = append(g.accounts, wallet(i))
	}
	g.accounts = append(g.accounts, bank(7), bank(8),
		ledger.Account{ID: 9, Ledger: cny, Code: 10, Flags: ledger.CreditsMustNotExceedDebits},
		ledger.Account{ID: 10, Ledger: 840, Code: 1})
	return g
}

func (g *generator) submission() []ledger.Transfer {
	n := 1 + g.rng.IntN(5)
	out := make([]ledger.Transfer, 0, n)
	for i := 0; i < n; i++ {
		t := g.transfer()
		if i < n-1 && g.rng.IntN(4) == 0 {
			t.Flags |= ledger.Linked
		}
		out = append(out, t)
	}
	// Sometimes leave a chain open at the end.
	if g.rng.IntN(20) == 0 {
		out[len(out)-1].Flags |= ledger.Linked
	}
	return out
}

func (g *generator) transfer() ledger.Transfer {
	g.n++
	id := fmt.Sprint("t", g.n)
	switch k := g.rng.IntN(20); {
	case k < 2 && len(g.ids) > 0: // replay, maybe altered
		t := g.ids[g.rng.IntN(len(g.ids))]
		t.Flags &^= ledger.Linked
		if g.rng.IntN(2) == 0 {
			t.Amount++
		}
		return t
	case k < 5 && len(g.pending) > 0: // post (full or part) or void
		p := g.pending[g.rng.IntN(len(g.pending))]
		t := ledger.Transfer{ID: id, PendingID: p, Flags: ledger.PostPending}
		switch g.rng.IntN(3) {
		case 0:
			t.Flags = ledger.VoidPending
		case 1:
			t.Amount = g.rng.Int64N(200)
		}
		g.ids = append(g.ids, t)
		return t
	}
	dr := int64(1 + g.rng.IntN(len(g.accounts)))
	cr := int64(1 + g.rng.IntN(len(g.accounts)))
	if dr == cr && g.rng.IntN(4) != 0 {
		cr = dr%int64(len(g.accounts)) + 1
	}
	if g.rng.IntN(3) == 0 { // money in from a bank keeps wallets funded
		dr = 7 + g.rng.Int64N(2)
	}
	t := tr(id, dr, cr, g.rng.Int64N(500)-5)
	if g.rng.IntN(4) == 0 {
		t.Flags = ledger.Pending
		g.pending = append(g.pending, id)
	}
	g.ids = append(g.ids, t)
	return t
}
