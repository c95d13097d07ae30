// Package storetest is the one test suite every ledger store must pass. The
// sqlite and postgres packages call Run from their own tests, so the same
// cases (idempotency, two-phase transfers, linked groups, history, racing
// writers, random sequences checked against every invariant) run on both.
// The randomised cases log their seeds; ZHIFU_TEST_SEED replays one (see
// package testkit).
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// Backend makes fresh databases and opens handles on them. Open may be
// called several times for one database, as several processes would.
type Backend struct {
	// NewDatabase returns the locator (file path or URL) of an empty database.
	NewDatabase func(t *testing.T) string
	// Open opens a handle on a database and registers its Close with t.
	Open func(t *testing.T, locator string) ledger.Store
}

// Run runs the suite against a backend.
func Run(t *testing.T, b Backend) {
	fresh := func(t *testing.T) ledger.Store { return b.Open(t, b.NewDatabase(t)) }
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, fresh(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, fresh(t)) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, fresh(t)) })
	t.Run("TwoPhase", func(t *testing.T) { testTwoPhase(t, fresh(t)) })
	t.Run("Entries", func(t *testing.T) { testEntries(t, fresh(t)) })
	t.Run("Hammer", func(t *testing.T) { testHammer(t, fresh(t), nil) })
	t.Run("HammerTwoHandles", func(t *testing.T) {
		loc := b.NewDatabase(t)
		testHammer(t, b.Open(t, loc), b.Open(t, loc))
	})
	t.Run("Property", func(t *testing.T) { testProperty(t, fresh) })
	t.Run("BulkLane", func(t *testing.T) { testBulkLane(t, fresh(t)) })
	t.Run("Writes", func(t *testing.T) { testWrites(t, fresh(t)) })
	t.Run("Meter", func(t *testing.T) { testMeter(t, fresh(t)) })
	t.Run("OpsPayOnce", func(t *testing.T) {
		loc := b.NewDatabase(t)
		testOps(t, b.Open(t, loc), b.Open(t, loc))
	})
}

const cny = 156

var ctx = context.Background()

func mustCreate(t *testing.T, st ledger.Store, accounts ...ledger.Account) {
	t.Helper()
	res, err := ledger.CreateAccounts(ctx, st, accounts)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Succeeded() {
			t.Fatalf("create account %d: %v", accounts[i].ID, r)
		}
	}
}

func wallet(id int64) ledger.Account {
	return ledger.Account{ID: id, Ledger: cny, Code: 1, Flags: ledger.DebitsMustNotExceedCredits}
}

func bank(id int64) ledger.Account { return ledger.Account{ID: id, Ledger: cny, Code: 10} }

func tr(id string, dr, cr, amount int64) ledger.Transfer {
	return ledger.Transfer{ID: id, DebitAccountID: dr, CreditAccountID: cr, Amount: amount, Ledger: cny, Code: 1}
}

func commit(t *testing.T, st ledger.Store, ts ...ledger.Transfer) []ledger.TransferResult {
	t.Helper()
	res, err := ledger.Commit(ctx, st, [][]ledger.Transfer{ts}, time.Now().UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func account(t *testing.T, st ledger.Store, id int64) ledger.Account {
	t.Helper()
	as, err := st.LookupAccounts(ctx, []int64{id})
	if err != nil || len(as) != 1 {
		t.Fatalf("lookup account %d: %v %v", id, as, err)
	}
	return as[0]
}

// mustCheck runs the audit and fails the test on any violation.
func mustCheck(t *testing.T, st ledger.Store) ledger.Report {
	t.Helper()
	r, err := ledger.Check(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("ledger check: %d violations: %v", r.ViolationCount, r.Violations)
	}
	return r
}

func testAccounts(t *testing.T, st ledger.Store) {
	res, err := ledger.CreateAccounts(ctx, st, []ledger.Account{wallet(1), bank(2), wallet(1), {ID: 2, Ledger: cny, Code: 11}, {}})
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.AccountResult{ledger.AccountOK, ledger.AccountOK, ledger.AccountExists,
		ledger.AccountExistsWithDifferentCode, ledger.AccountIDMustNotBeZero}
	for i := range want {
		if res[i] != want[i] {
			t.Fatalf("results %v, want %v", res, want)
		}
	}
	got := account(t, st, 1)
	if got.Flags != ledger.DebitsMustNotExceedCredits || got.Ledger != cny || got.Code != 1 {
		t.Fatalf("account 1 = %+v", got)
	}
	if as, _ := st.LookupAccounts(ctx, []int64{404}); len(as) != 0 {
		t.Fatalf("unknown account found: %v", as)
	}
}

func testRoundTrip(t *testing.T, st ledger.Store) {
	mustCreate(t, st, wallet(1), wallet(2), bank(3))
	x := tr("fund-1", 3, 1, 12345)
	x.UserData = "deposit ref 778"
	if r := commit(t, st, x, tr("pay-1", 1, 2, 345)); r[0] != ledger.TransferOK || r[1] != ledger.TransferOK {
		t.Fatalf("results %v", r)
	}
	got, err := st.LookupTransfers(ctx, []string{"fund-1"})
	if err != nil || len(got) != 1 {
		t.Fatalf("lookup: %v %v", got, err)
	}
	g := got[0]
	if g.DebitAccountID != 3 || g.CreditAccountID != 1 || g.Amount != 12345 || g.UserData != "deposit ref 778" ||
		g.Ledger != cny || g.Code != 1 || g.Timestamp == 0 || g.CreditBalance != 12345 || g.DebitBalance != -12345 {
		t.Fatalf("stored transfer = %+v", g)
	}
	if a := account(t, st, 1); a.Balance() != 12000 || a.CreditsPosted != 12345 || a.DebitsPosted != 345 {
		t.Fatalf("account 1 = %+v", a)
	}
	mustCheck(t, st)
}

func testIdempotency(t *testing.T, st ledger.Store) {
	mustCreate(t, st, wallet(1), wallet(2), bank(3))
	commit(t, st, tr("fund", 3, 1, 100))
	r := commit(t, st, tr("fund", 3, 1, 100), tr("fund", 3, 1, 101), tr("fund", 3, 2, 100))
	want := []ledger.TransferResult{ledger.TransferExists, ledger.TransferExistsWithDifferentAmount,
		ledger.TransferExistsWithDifferentCreditAccountID}
	for i := range want {
		if r[i] != want[i] {
			t.Fatalf("results %v, want %v", r, want)
		}
	}
	if a := account(t, st, 1); a.CreditsPosted != 100 {
		t.Fatalf("a replay changed the balance: %+v", a)
	}
	// Duplicates inside one batch: the first wins, the second is Exists.
	res, err := ledger.Commit(ctx, st, [][]ledger.Transfer{{tr("dup", 3, 2, 7)}, {tr("dup", 3, 2, 7)}}, 1)
	if err != nil || res[0][0] != ledger.TransferOK || res[1][0] != ledger.TransferExists {
		t.Fatalf("in-batch duplicate: %v %v", res, err)
	}
	mustCheck(t, st)
}

func testTwoPhase(t *testing.T, st ledger.Store) {
	mustCreate(t, st, wallet(1), wallet(2), bank(3))
	hold := tr("hold", 1, 2, 80)
	hold.Flags = ledger.Pending
	commit(t, st, tr("fund", 3, 1, 100))
	if r := commit(t, st, hold); r[0] != ledger.TransferOK {
		t.Fatalf("hold: %v", r)
	}
	if r := commit(t, st, tr("spend", 1, 2, 21)); r[0] != ledger.TransferExceedsCredits {
		t.Fatalf("spend past a hold: %v", r)
	}
	mustCheck(t, st)
	post := ledger.Transfer{ID: "post", PendingID: "hold", Amount: 50, Flags: ledger.PostPending}
	if r := commit(t, st, post); r[0] != ledger.TransferOK {
		t.Fatalf("post: %v", r)
	}
	void := ledger.Transfer{ID: "void", PendingID: "hold", Flags: ledger.VoidPending}
	if r := commit(t, st, void, post); r[0] != ledger.TransferPendingTransferAlreadyPosted || r[1] != ledger.TransferExists {
		t.Fatalf("void after post: %v", r)
	}
	a := account(t, st, 1)
	if a.DebitsPending != 0 || a.DebitsPosted != 50 || a.Available() != 50 {
		t.Fatalf("account 1 = %+v", a)
	}
	mustCheck(t, st)
}

func testEntries(t *testing.T, st ledger.Store) {
	mustCreate(t, st, wallet(1), wallet(2), bank(3))
	for i := 0; i < 25; i++ {
		commit(t, st, tr(fmt.Sprint("in-", i), 3, 1, 10), tr(fmt.Sprint("out-", i), 1, 2, 3))
	}
	var all []ledger.Entry
	before := int64(0)
	for {
		page, err := st.Entries(ctx, 1, before, 7)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 7 {
			break
		}
		before = page[len(page)-1].Seq
	}
	if len(all) != 50 {
		t.Fatalf("got %d entries, want 50", len(all))
	}
	// Newest first; each balance is the previous (older) balance plus the amount.
	balance := account(t, st, 1).Balance()
	for _, e := range all {
		if e.Balance != balance {
			t.Fatalf("entry %d (%s): balance %d, want %d", e.Seq, e.Transfer.ID, e.Balance, balance)
		}
		balance -= e.Amount
	}
	if balance != 0 {
		t.Fatalf("oldest entry does not start from zero: %d", balance)
	}

	// Oldest first, a page at a time after the last seq seen: the same
	// entries in the opposite order; bounded above by beforeSeq.
	var forward []ledger.Entry
	after := int64(0)
	for {
		page, err := st.EntriesAfter(ctx, 1, after, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		forward = append(forward, page...)
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(forward) != len(all) {
		t.Fatalf("oldest first: %d entries, newest first: %d", len(forward), len(all))
	}
	for i, e := range forward {
		if w := all[len(all)-1-i]; e.Seq != w.Seq || e.Transfer.ID != w.Transfer.ID || e.Balance != w.Balance {
			t.Fatalf("oldest first, entry %d: %+v, want %+v", i, e, w)
		}
	}
	mid := forward[10].Seq
	between, err := st.EntriesAfter(ctx, 1, forward[3].Seq, mid, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(between) != 6 || between[0].Seq != forward[4].Seq || between[5].Seq != forward[9].Seq {
		t.Fatalf("entries strictly between two seqs: %d, from %+v", len(between), between)
	}
}

// testHammer runs 64 goroutines moving money among a few wallets through the
// batcher (two batchers on two handles when other is given, as two processes
// would). Every wallet starts funded; final balances must equal what the
// successful results say, with no overdraft. The seed (logged;
// ZHIFU_TEST_SEED replays it) draws each worker's transfers; how they
// interleave is the scheduler's.
func testHammer(t *testing.T, st, other ledger.Store) {
	const wallets, workers, perWorker, funding = 4, 64, 60, 1000
	accounts := []ledger.Account{bank(100)}
	for i := int64(1); i <= wallets; i++ {
		accounts = append(accounts, wallet(i))
	}
	mustCreate(t, st, accounts...)
	for i := int64(1); i <= wallets; i++ {
		commit(t, st, tr(fmt.Sprint("fund-", i), 100, i, funding))
	}
	batchers := []*ledger.Batcher{ledger.NewBatcher(st, time.Now)}
	if other != nil {
		batchers = append(batchers, ledger.NewBatcher(other, time.Now))
	}
	var mu sync.Mutex
	net := make(map[int64]int64)
	var wg sync.WaitGroup
	seed := testkit.Seed(t)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			b := batchers[w%len(batchers)]
			for i := 0; i < perWorker; i++ {
				from := rng.Int64N(wallets) + 1
				to := from%wallets + 1
				amount := rng.Int64N(300) + 1
				res, err := b.Submit(ctx, []ledger.Transfer{tr(fmt.Sprintf("h-%d-%d", w, i), from, to, amount)})
				if err != nil {
					t.Errorf("submit: %v", err)
					return
				}
				if res[0] == ledger.TransferOK {
					mu.Lock()
					net[from] -= amount
					net[to] += amount
					mu.Unlock()
				} else if res[0] != ledger.TransferExceedsCredits {
					t.Errorf("unexpected result %v", res[0])
				}
			}
		}(w)
	}
	wg.Wait()
	for _, b := range batchers {
		b.Close()
	}
	total := int64(0)
	for i := int64(1); i <= wallets; i++ {
		a := account(t, st, i)
		if a.Balance() != funding+net[i] || a.Balance() < 0 {
			t.Errorf("wallet %d: balance %d, want %d", i, a.Balance(), funding+net[i])
		}
		total += a.Balance()
	}
	if total != wallets*funding {
		t.Errorf("money created or lost: total %d, want %d", total, wallets*funding)
	}
	mustCheck(t, st)
}
