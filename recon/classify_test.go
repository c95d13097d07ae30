package recon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/channel"
)

const testDay = "2010-11-11"

// at is an instant of the test day (or, with a day offset, another).
func at(days int, hour int) int64 {
	d, _ := time.ParseInLocation(time.DateOnly, testDay, bankapi.Beijing)
	return d.AddDate(0, 0, days).Add(time.Duration(hour) * time.Hour).UnixNano()
}

func debit(id, ref string, amount int64, status string) Line {
	return Line{RequestID: id, BankTxnID: ref, Kind: bankapi.KindDebit, Amount: amount, Status: status, SettledAt: at(0, 10)}
}

func credit(id, ref string, amount int64, status string) Line {
	l := debit(id, ref, amount, status)
	l.Kind = bankapi.KindCredit
	return l
}

func topup(status channel.Status, amount int64, ref string) *Record {
	r := &Record{TxnID: "TU1", Kind: channel.KindTopup, Status: status, Amount: amount, BankTxnID: ref, CardToken: "tok"}
	if status.Final() {
		r.SettledAt = at(0, 11)
	}
	return r
}

func payout(status channel.Status, amount int64, ref string) *Record {
	r := topup(status, amount, ref)
	r.TxnID, r.Kind = "WD1", channel.KindWithdrawal
	return r
}

// verdict is a finding in short: class, what happens, suspense.
func verdict(f Finding) string {
	do := [...]string{"nothing", "settle", "credit", "return", "review", "confirm"}[f.Do]
	if f.Do == DoSettle {
		do += fmt.Sprintf("(%v)", f.Succeed)
	}
	if f.Suspense != 0 {
		do += fmt.Sprintf(" %+d", f.Suspense)
	}
	return string(f.Class) + " " + do
}

func verdicts(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, verdict(f))
	}
	return strings.Join(out, "; ")
}

// TestClassify walks the classes of the reconciliation table: every way a
// day's line and the platform's record can stand, and what the run does.
func TestClassify(t *testing.T) {
	const ok, failed = bankapi.StatusSuccess, bankapi.StatusFailed
	s, f, p := channel.StatusSuccess, channel.StatusFailed, channel.StatusProcessing
	late := debit("TU1", "B1", 500, ok)
	late.SettledAt = at(-1, 23)
	recLate := topup(s, 500, "B1")
	recLate.SettledAt = at(1, 0)
	noCard := topup(s, 500, "B1")
	noCard.CardToken = ""
	byRecon := topup(s, 500, "B1")
	byRecon.ResolvedBy = channel.ByRecon
	tests := []struct {
		name  string
		lines []Line
		rec   *Record
		want  string
	}{
		{"matched top-up", []Line{debit("TU1", "B1", 500, ok)}, topup(s, 500, "B1"), "matched nothing"},
		{"matched payout", []Line{credit("WD1", "B1", 500, ok)}, payout(s, 500, "B1"), "matched nothing"},
		{"matched failure", []Line{debit("TU1", "B1", 500, failed)}, topup(f, 500, ""), "matched nothing"},
		{"a failure the platform learns from the statement", []Line{debit("TU1", "B1", 500, failed)}, topup(p, 500, ""),
			"matched settle(false)"},
		{"the 800 yuan of 2010: taken while PROCESSING", []Line{debit("TU1", "B1", 80000, ok)}, topup(p, 80000, ""),
			"bank_only settle(true)"},
		{"a payout paid while PROCESSING", []Line{credit("WD1", "B1", 500, ok)}, payout(p, 500, ""), "bank_only settle(true)"},
		{"taken though the platform failed it", []Line{debit("TU1", "B1", 500, ok)}, topup(f, 500, ""), "bank_only credit"},
		{"paid though the platform gave it back", []Line{credit("WD1", "B1", 500, ok)}, payout(f, 500, ""), "bank_only review -500"},
		{"a request the platform does not know", []Line{debit("XX1", "B1", 700, ok)}, nil, "bank_only review +700"},
		{"a payout the platform does not know", []Line{credit("XX1", "B1", 700, ok)}, nil, "bank_only review -700"},
		{"a failure the platform does not know", []Line{debit("XX1", "B1", 700, failed)}, nil, "bank_only nothing"},
		{"credited, the bank failed it", []Line{debit("TU1", "B1", 500, failed)}, topup(s, 500, "B1"), "ours_only review -500"},
		{"paid, the bank failed it", []Line{credit("WD1", "B1", 500, failed)}, payout(s, 500, "B1"), "ours_only review +500"},
		{"credited, not in the statement", nil, topup(s, 500, "B1"), "ours_only confirm"},
		{"decided by a run from another day's line", nil, byRecon, "late nothing"},
		{"failed, not in the statement", nil, topup(f, 500, ""), "matched nothing"},
		{"the bank took more", []Line{debit("TU1", "B1", 520, ok)}, topup(s, 500, "B1"), "amount_mismatch review +20"},
		{"the bank took less", []Line{debit("TU1", "B1", 480, ok)}, topup(s, 500, "B1"), "amount_mismatch review -20"},
		{"the bank paid more", []Line{credit("WD1", "B1", 520, ok)}, payout(s, 500, "B1"), "amount_mismatch review -20"},
		{"another amount while PROCESSING", []Line{debit("TU1", "B1", 450, ok)}, topup(p, 500, ""), "amount_mismatch review +450"},
		{"another amount failed while PROCESSING", []Line{debit("TU1", "B1", 450, failed)}, topup(p, 500, ""),
			"amount_mismatch review"},
		{"the double charge of 2024", []Line{debit("TU1", "B1", 500, ok), debit("TU1", "B2", 500, ok)}, topup(s, 500, "B1"),
			"matched nothing; duplicate return"},
		{"the double charge, the platform's reference second",
			[]Line{debit("TU1", "B0", 500, ok), debit("TU1", "B1", 500, ok)}, topup(s, 500, "B1"),
			"matched nothing; duplicate return"},
		{"charged twice while PROCESSING", []Line{debit("TU1", "B1", 500, ok), debit("TU1", "B2", 500, ok)}, topup(p, 500, ""),
			"bank_only settle(true); duplicate return"},
		{"charged twice, card unknown", []Line{debit("TU1", "B1", 500, ok), debit("TU1", "B2", 500, ok)}, noCard,
			"matched nothing; duplicate review +500"},
		{"paid twice", []Line{credit("WD1", "B1", 500, ok), credit("WD1", "B2", 500, ok)}, payout(s, 500, "B1"),
			"matched nothing; duplicate review -500"},
		{"a repeat whose twin is on another day", []Line{debit("TU1", "B2", 500, ok)}, topup(s, 500, "B1"),
			"ours_only confirm; duplicate review +500"},
		{"a failed attempt beside the success", []Line{debit("TU1", "B1", 500, ok), debit("TU1", "B2", 500, failed)},
			topup(s, 500, "B1"), "matched nothing; matched nothing"},
		{"a line dated the day before", []Line{late}, topup(s, 500, "B1"), "late nothing"},
		{"learnt the day after", []Line{debit("TU1", "B1", 500, ok)}, recLate, "late nothing"},
		{"decided by an earlier run", []Line{debit("TU1", "B1", 500, ok)}, byRecon, "bank_only nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdicts(Classify(testDay, tt.lines, tt.rec)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAfterInquiry: a record the statement does not show is decided by
// what the bank says about it.
func TestAfterInquiry(t *testing.T) {
	rec := topup(channel.StatusSuccess, 500, "B1")
	tests := []struct {
		name     string
		txn      bankapi.Transaction
		notFound bool
		want     string
	}{
		{"never received", bankapi.Transaction{}, true, "ours_only review -500"},
		{"failed", bankapi.Transaction{Status: bankapi.StatusFailed, Kind: bankapi.KindDebit, Amount: 500}, false, "ours_only review -500"},
		{"on another day's statement", bankapi.Transaction{Status: bankapi.StatusSuccess, Kind: bankapi.KindDebit, Amount: 500}, false, "late nothing"},
		{"another amount", bankapi.Transaction{Status: bankapi.StatusSuccess, Kind: bankapi.KindDebit, Amount: 530}, false, "amount_mismatch review +30"},
		{"not decided", bankapi.Transaction{Status: bankapi.StatusAccepted, Kind: bankapi.KindDebit, Amount: 500}, false, "ours_only review"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdict(AfterInquiry(testDay, rec, tt.txn, tt.notFound)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	w := payout(channel.StatusSuccess, 500, "B1")
	if got := verdict(AfterInquiry(testDay, w, bankapi.Transaction{}, true)); got != "ours_only review +500" {
		t.Errorf("a payout the bank never received: %q", got)
	}
}

// TestAllowed: which actions resolve which items.
func TestAllowed(t *testing.T) {
	proc := &channel.BankTxn{TxnID: "TU1", Kind: channel.KindTopup, Status: channel.StatusProcessing, CardToken: "tok"}
	procEbank := &channel.BankTxn{TxnID: "TU2", Kind: channel.KindTopup, Status: channel.StatusProcessing}
	procWd := &channel.BankTxn{TxnID: "WD1", Kind: channel.KindWithdrawal, Status: channel.StatusProcessing, CardToken: "tok"}
	done := &channel.BankTxn{TxnID: "TU3", Kind: channel.KindTopup, Status: channel.StatusSuccess, CardToken: "tok"}
	tests := []struct {
		name string
		it   Item
		t    *channel.BankTxn
		want string
	}{
		{"overdue top-up", Item{Status: Open, Class: Overdue}, proc, "[credit_user return_to_card write_off]"},
		{"overdue online-banking top-up", Item{Status: Open, Class: Overdue}, procEbank, "[credit_user write_off]"},
		{"overdue withdrawal", Item{Status: Open, Class: Overdue}, procWd, "[credit_user return_to_card]"},
		{"money in suspense, card known", Item{Status: Open, Suspense: 20}, done, "[credit_user return_to_card write_off]"},
		{"money in suspense, nobody's", Item{Status: Open, Suspense: 700}, nil, "[credit_user write_off]"},
		{"another amount while processing", Item{Status: Open, Suspense: 450}, proc, "[credit_user return_to_card write_off]"},
		{"money missing", Item{Status: Open, Suspense: -500}, done, "[write_off]"},
		{"resolved", Item{Status: Resolved, Suspense: 20}, done, "[]"},
		{"repaired", Item{Status: Repaired}, done, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(Allowed(&tt.it, tt.t)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestAgreeIsClassify: the matcher's shortcut for a plain match says so
// only where the rules find exactly one matched finding.
func TestAgreeIsClassify(t *testing.T) {
	from, to := dayBounds(testDay)
	m := &matcher{from: from.UnixNano(), to: to.UnixNano()}
	refs := []string{"", "B1", "B2"}
	n := 0
	for _, status := range []string{bankapi.StatusSuccess, bankapi.StatusFailed} {
		for _, kind := range []string{bankapi.KindDebit, bankapi.KindCredit} {
			for _, ref := range refs {
				for _, lineDay := range []int{-1, 0} {
					for _, rs := range []channel.Status{channel.StatusSuccess, channel.StatusFailed, channel.StatusProcessing} {
						for _, rref := range refs {
							for _, by := range []string{channel.ByCallback, channel.ByRecon} {
								for _, amount := range []int64{500, 501} {
									for _, recDay := range []int{0, 1} {
										l := debit("TU1", ref, 500, status)
										l.Kind, l.SettledAt = kind, at(lineDay, 10)
										rec := topup(rs, amount, rref)
										rec.ResolvedBy = by
										if rs.Final() {
											rec.SettledAt = at(recDay, 11)
										}
										fs := Classify(testDay, []Line{l}, rec)
										plain := len(fs) == 1 && fs[0].Class == Matched && fs[0].Do == DoNothing
										if m.agree(&l, rec) && !plain {
											t.Errorf("agree(%+v, %+v) but the rules find %s", l, rec, verdicts(fs))
										}
										if m.agree(&l, rec) {
											n++
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no plain match among the cases")
	}
}
