package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// An account's history read run by run agrees with the same history read
// naively, for transfers spread over many runs (seqs set directly, as a
// long ledger would have them): every account, bound and limit, both
// orders.
func TestHistoryAcrossRuns(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	r := rand.New(rand.NewPCG(uint64(testkit.Seed(t)), 1))
	const accounts = 4
	var seqs []int64
	for seq := int64(1); len(seqs) < 400; seq += 1 + r.Int64N(40_000) {
		seqs = append(seqs, seq)
	}
	// The edges of runs, and a run of its own far from the rest.
	for _, s := range []int64{1<<historyRunShift - 1, 1 << historyRunShift, 1<<historyRunShift + 1, 90 << historyRunShift} {
		if !slices.Contains(seqs, s) {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	side := make(map[int64][2]int64) // seq → debit, credit
	if err := db.Update(ctx, func(tx ledger.Tx) error {
		for _, seq := range seqs {
			d := 1 + r.Int64N(accounts)
			c := 1 + (d+r.Int64N(accounts-1))%accounts
			side[seq] = [2]int64{d, c}
			if _, err := tx.Exec(ctx, `INSERT INTO transfers (seq, `+transferColumns+`)
				VALUES (?, ?, ?, ?, ?, NULL, 156, 1, 0, '', ?, 0, 0)`, seq, fmt.Sprint("t", seq), d, c, seq, seq); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	naive := func(account, after, before int64) []int64 {
		var out []int64
		for _, s := range seqs {
			if sd := side[s]; (sd[0] == account || sd[1] == account) && s > after && (before <= 0 || s < before) {
				out = append(out, s)
			}
		}
		return out
	}
	got := func(es []ledger.Entry) []int64 {
		out := make([]int64, len(es))
		for i, e := range es {
			out[i] = e.Seq
			if e.Transfer.ID != fmt.Sprint("t", e.Seq) {
				t.Fatalf("entry %d holds transfer %s", e.Seq, e.Transfer.ID)
			}
		}
		return out
	}
	last := seqs[len(seqs)-1]
	bounds := []int64{0, 1, 2, 1<<historyRunShift - 1, 1 << historyRunShift, 1<<historyRunShift + 2, last, last + 1}
	for range 30 {
		bounds = append(bounds, 1+r.Int64N(last+1))
	}
	for account := int64(1); account <= accounts+1; account++ { // one more: an account with no history
		for _, before := range bounds {
			for _, limit := range []int{-1, 0, 1, 3, 50} {
				es, err := db.Entries(ctx, account, before, limit)
				if err != nil {
					t.Fatal(err)
				}
				want := naive(account, 0, before)
				slices.Reverse(want)
				if limit >= 0 && len(want) > limit {
					want = want[:limit]
				}
				if g := got(es); !slices.Equal(g, want) {
					t.Fatalf("Entries(%d, before %d, limit %d) = %v, want %v", account, before, limit, g, want)
				}
				after := before / 2
				es, err = db.EntriesAfter(ctx, account, after, before, limit)
				if err != nil {
					t.Fatal(err)
				}
				want = naive(account, after, before)
				if limit >= 0 && len(want) > limit {
					want = want[:limit]
				}
				if g := got(es); !slices.Equal(g, want) {
					t.Fatalf("EntriesAfter(%d, after %d, before %d, limit %d) = %v, want %v", account, after, before, limit, g, want)
				}
			}
		}
	}
}

// The history reads seek by the indexes of migration 0025: historyRunShift
// and the indexes' expression agree, and neither side scans the table.
func TestHistoryPlan(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for _, query := range []string{historyNewestSQL, historyOldestSQL} {
		rows, err := db.reader.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, "[3,2]", 7, 0, 1<<40, 10)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "\n")
		for _, want := range []string{"SEARCH transfers USING INDEX transfers_debit (<expr>=? AND debit_account_id=?",
			"SEARCH transfers USING INDEX transfers_credit (<expr>=? AND credit_account_id=?"} {
			if !strings.Contains(all, want) {
				t.Fatalf("plan does not seek by run and account:\n%s", all)
			}
		}
		if strings.Contains(all, "SCAN transfers") {
			t.Fatalf("plan scans the transfers:\n%s", all)
		}
	}
}
