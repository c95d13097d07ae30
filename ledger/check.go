package ledger

import (
	"context"
	"fmt"
	"sort"
)

// violationsMax bounds the violations one audit reports; the count is exact.
const violationsMax = 100

// Report is the result of a full audit of the ledger.
type Report struct {
	OK             bool
	TotalDebits    map[uint32]int64 // posted, per ledger
	TotalCredits   map[uint32]int64
	Accounts       int
	Transfers      int64
	Violations     []string
	ViolationCount int
}

// Check audits the whole ledger in one consistent read: debits equal credits
// in every ledger, every account's balances equal the sums of its transfers,
// and no flagged account has crossed zero.
func Check(ctx context.Context, st Store) (Report, error) {
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("ledger check: %w", err)
	}
	return CheckSnapshot(snap), nil
}

// CheckSnapshot is the pure part of Check.
func CheckSnapshot(snap Snapshot) Report {
	r := Report{
		TotalDebits:  make(map[uint32]int64),
		TotalCredits: make(map[uint32]int64),
		Accounts:     len(snap.Accounts),
		Transfers:    snap.TransferCount,
	}
	violate := func(format string, args ...any) {
		r.ViolationCount++
		if len(r.Violations) < violationsMax {
			r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
		}
	}
	pendingDebits := make(map[uint32]int64)
	pendingCredits := make(map[uint32]int64)
	seen := make(map[int64]bool, len(snap.Accounts))
	for _, a := range snap.Accounts {
		seen[a.ID] = true
		r.TotalDebits[a.Ledger] += a.DebitsPosted
		r.TotalCredits[a.Ledger] += a.CreditsPosted
		pendingDebits[a.Ledger] += a.DebitsPending
		pendingCredits[a.Ledger] += a.CreditsPending
		got := Sums{a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted}
		if want := snap.Sums[a.ID]; got != want {
			violate("account %d: balances %+v differ from the sums of its transfers %+v", a.ID, got, want)
		}
		if a.DebitsPending < 0 || a.DebitsPosted < 0 || a.CreditsPending < 0 || a.CreditsPosted < 0 {
			violate("account %d: negative balance component %+v", a.ID, got)
		}
		if a.Flags&DebitsMustNotExceedCredits != 0 && a.DebitsPending+a.DebitsPosted > a.CreditsPosted {
			violate("account %d: debits %d exceed credits %d", a.ID, a.DebitsPending+a.DebitsPosted, a.CreditsPosted)
		}
		if a.Flags&CreditsMustNotExceedDebits != 0 && a.CreditsPending+a.CreditsPosted > a.DebitsPosted {
			violate("account %d: credits %d exceed debits %d", a.ID, a.CreditsPending+a.CreditsPosted, a.DebitsPosted)
		}
	}
	var orphans []int64
	for id := range snap.Sums {
		if !seen[id] {
			orphans = append(orphans, id)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i] < orphans[j] })
	for _, id := range orphans {
		violate("transfers name account %d, which does not exist", id)
	}
	for l, d := range r.TotalDebits {
		if c := r.TotalCredits[l]; d != c {
			violate("ledger %d: posted debits %d differ from posted credits %d", l, d, c)
		}
		if pd, pc := pendingDebits[l], pendingCredits[l]; pd != pc {
			violate("ledger %d: pending debits %d differ from pending credits %d", l, pd, pc)
		}
	}
	r.OK = r.ViolationCount == 0
	return r
}
