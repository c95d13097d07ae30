package recon

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"zhifu/bankapi"
	"zhifu/channel"
	"zhifu/internal/testkit"
)

// TestSorterSpills sorts more entries than a chunk holds, in several runs
// on disk and one in memory, and reads back every entry once, in order,
// with every field; the files are gone afterwards.
func TestSorterSpills(t *testing.T) {
	seed := testkit.Seed(t)
	r := rand.New(rand.NewPCG(seed, 0))
	for _, n := range []int{0, 1, 99, 100, 101, 1037} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			s := newSorter(lineCodec, dir)
			s.max = 100
			var want []Line
			for i := range n {
				l := Line{RequestID: fmt.Sprintf("TU%04d", r.IntN(n/3+1)), BankTxnID: fmt.Sprintf("B%d", r.IntN(5)),
					Kind:   []string{bankapi.KindDebit, bankapi.KindCredit}[r.IntN(2)],
					Status: []string{bankapi.StatusSuccess, bankapi.StatusFailed}[r.IntN(2)],
					Amount: r.Int64N(1e9) + 1, SettledAt: r.Int64(), No: int64(i + 1)}
				want = append(want, l)
				if err := s.add(l); err != nil {
					t.Fatal(err)
				}
			}
			if runs, wantRuns := len(s.runs), n/100; runs != wantRuns {
				t.Errorf("%d runs on disk, want %d", runs, wantRuns)
			}
			m, err := s.merged()
			if err != nil {
				t.Fatal(err)
			}
			var got []Line
			for {
				l, ok, err := m.next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				got = append(got, l)
			}
			m.close()
			s.close()
			slices.SortFunc(want, func(a, b Line) int { return lineOrder(&a, &b) })
			if !slices.Equal(got, want) {
				t.Fatalf("merged %d entries, want %d in order; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("%d files left behind", len(left))
			}
		})
	}
}

func firstDiff(a, b []Line) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRecordCodec: a record read back from a run is the record written.
func TestRecordCodec(t *testing.T) {
	s := newSorter(recordCodec, t.TempDir())
	s.max = 2
	want := []Record{
		{TxnID: "WD2", Kind: channel.KindWithdrawal, Status: channel.StatusFailed, Amount: 7, SettledAt: 9},
		{TxnID: "TU1", Kind: channel.KindTopup, Status: channel.StatusSuccess, Amount: 1 << 40, BankTxnID: "B1",
			ResolvedBy: channel.ByRecon, SettledAt: -1},
		{TxnID: "TU3", Kind: channel.KindTopup, Status: channel.StatusProcessing, Amount: 1},
	}
	for _, r := range want {
		if err := s.add(r); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.merged()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	defer m.close()
	slices.SortFunc(want, func(a, b Record) int { return recordOrder(&a, &b) })
	for i := range want {
		got, ok, err := m.next()
		if err != nil || !ok || got != want[i] {
			t.Fatalf("entry %d: %+v %v %v, want %+v", i, got, ok, err, want[i])
		}
	}
	if _, ok, err := m.next(); ok || err != nil {
		t.Fatalf("more after the end: %v %v", ok, err)
	}
}
