package recon

import (
	"strconv"
	"time"

	"zhifu/bankapi"
	"zhifu/channel"
)

// The rules of reconciliation, as pure functions of a statement's lines for
// one request id and the platform's record of it. The run only loads,
// sorts and merges; these decide, and the unit tests walk them without a
// database or a bank.

// Class is what a statement line or a record of the platform comes to.
type Class string

// The classes, in the order a run's summary lists them.
const (
	// Matched: the bank and the platform agree (request id, kind, amount,
	// outcome).
	Matched Class = "matched"
	// BankOnly: the bank moved money the platform has no final record of.
	BankOnly Class = "bank_only"
	// OursOnly: the platform recorded money the bank did not move.
	OursOnly Class = "ours_only"
	// AmountMismatch: both moved money, not the same amount.
	AmountMismatch Class = "amount_mismatch"
	// Duplicate: the bank moved money twice for one request.
	Duplicate Class = "duplicate"
	// Late: agreed, but the line is dated another day, or the record's
	// outcome was learnt on another day than the bank's.
	Late Class = "late"
	// Overdue: a transaction still PROCESSING long past its deadline,
	// which neither the bank's answers nor its statement decide; only
	// review items have this class.
	Overdue Class = "overdue"
)

// Classes lists the classes of a run's summary.
var Classes = []Class{Matched, BankOnly, OursOnly, AmountMismatch, Duplicate, Late}

// Do is what a finding makes the run do.
type Do int

const (
	// DoNothing: counted only.
	DoNothing Do = iota
	// DoSettle decides a transaction the platform still has PROCESSING
	// as the line says (Settle), through the channels' own op.
	DoSettle
	// DoCredit credits the wallet with a top-up the platform had failed
	// and the bank took all the same.
	DoCredit
	// DoReturn sends money the bank took twice back to the card.
	DoReturn
	// DoReview moves the difference into (or out of) suspense and opens a
	// review item for an operator.
	DoReview
	// DoConfirm asks the bank about a record the statement does not show
	// before deciding it (AfterInquiry).
	DoConfirm
)

// Line is one statement line, as the run sorts it.
type Line struct {
	RequestID string
	BankTxnID string
	Kind      string // bankapi.KindDebit or bankapi.KindCredit
	Amount    int64
	Status    string // bankapi.StatusSuccess or bankapi.StatusFailed
	SettledAt int64  // unix nanoseconds
	No        int64  // position in the statement, from 1
}

func (l *Line) moved() bool { return l.Status == bankapi.StatusSuccess }

// Record is the part of one of the platform's bank transactions the rules
// look at.
type Record struct {
	TxnID      string
	Kind       channel.Kind
	Status     channel.Status
	Amount     int64
	BankTxnID  string
	ResolvedBy string
	CardToken  string // "" when its card is unknown (an online-banking top-up) or not loaded
	SettledAt  int64  // unix nanoseconds, 0 while not final
}

// recordOf is the rules' view of a transaction.
func recordOf(t *channel.BankTxn) *Record {
	if t == nil {
		return nil
	}
	return &Record{TxnID: t.TxnID, Kind: t.Kind, Status: t.Status, Amount: int64(t.Amount), BankTxnID: t.BankTxnID,
		ResolvedBy: t.ResolvedBy, CardToken: t.CardToken, SettledAt: nanos(t.SettledAt)}
}

// Finding is the rules' verdict on a line, a record, or both.
type Finding struct {
	Class Class
	Line  *Line   // nil for a record the statement does not show
	Rec   *Record // nil for a line of a request the platform does not know
	// Counted says the finding counts the record in the summary (a record
	// with two lines is counted once).
	Counted bool
	Do      Do
	// Succeed is DoSettle's outcome: the line says the money moved.
	Succeed bool
	// Suspense is what DoReview moves into suspense (negative: out of
	// it), in fen: the bank's effect on the settlement account less the
	// platform's.
	Suspense int64
	// Key names the review item (or repair) this finding makes, so a
	// second run finds it: "line:<bank_txn_id>" or "txn:<txn_id>".
	Key string
	// Detail says in words what was found, for the review item.
	Detail string
	// BankAmount and BankTxnID are what the bank answered about a record
	// its statement does not show (AfterInquiry).
	BankAmount int64
	BankTxnID  string
}

// effect is a transaction's effect on the platform's settlement account at
// the bank: a debit of a card brings money in, a credit to a card takes it
// out.
func effect(kind string, amount int64) int64 {
	if kind == bankapi.KindCredit {
		return -amount
	}
	return amount
}

// lineKind is the statement's kind of a transaction of the platform's.
func lineKind(k channel.Kind) string {
	if k.Payout() {
		return bankapi.KindCredit
	}
	return bankapi.KindDebit
}

func (r *Record) effect() int64 { return effect(lineKind(r.Kind), r.Amount) }

// LineKey names the item of a statement line: the bank's reference, or
// where a bank's file has none, the line's own fields.
func LineKey(l *Line) string {
	if l.BankTxnID != "" {
		return "line:" + l.BankTxnID
	}
	return "line:" + l.RequestID + ":" + l.Kind + ":" + itoa(l.Amount) + ":" + itoa(l.SettledAt)
}

// TxnKey names the item of one of the platform's transactions.
func TxnKey(txnID string) string { return "txn:" + txnID }

// OverdueKey names the item of a transaction handed over as overdue.
func OverdueKey(txnID string) string { return "overdue:" + txnID }

// Classify decides one request id of a day's reconciliation: its lines in
// the statement (sorted by bank reference; none when the statement does
// not show it) and the platform's record (nil when the platform has none).
func Classify(day string, lines []Line, rec *Record) []Finding {
	if rec == nil {
		out := make([]Finding, 0, len(lines))
		for i := range lines {
			l := &lines[i]
			f := Finding{Class: BankOnly, Line: l, Key: LineKey(l)}
			if l.moved() {
				f.Do, f.Suspense = DoReview, effect(l.Kind, l.Amount)
				f.Detail = "the bank moved money for a request the platform does not know"
			}
			out = append(out, f)
		}
		return out
	}
	if len(lines) == 0 {
		return []Finding{recordOnly(day, rec)}
	}
	p := primary(lines, rec)
	if p < 0 {
		// Every line the bank moved money by names another reference than
		// the one the platform settled by: the platform's own line is on
		// another day, and these are the bank's repeats of it.
		out := make([]Finding, 0, len(lines)+1)
		if recordDay(rec) == day {
			out = append(out, recordOnly(day, rec))
		}
		for i := range lines {
			out = append(out, secondary(&lines[i], rec, false))
		}
		return out
	}
	out := make([]Finding, 0, len(lines))
	out = append(out, withLine(day, &lines[p], rec))
	for i := range lines {
		if i != p {
			out = append(out, secondary(&lines[i], rec, true))
		}
	}
	return out
}

// primary picks the line that answers rec: the one moving money under the
// reference the platform settled by; else the first moving money; else the
// first. It is -1 when rec was settled under a reference that none of the
// lines moving money carries.
func primary(lines []Line, rec *Record) int {
	first := -1
	for i := range lines {
		l := &lines[i]
		if !l.moved() {
			continue
		}
		if rec.BankTxnID != "" && l.BankTxnID == rec.BankTxnID {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	switch {
	case first < 0:
		return 0
	case rec.Status == channel.StatusSuccess && rec.BankTxnID != "" && lines[first].BankTxnID != "":
		return -1
	}
	return first
}

// secondary decides a further line of a request: one that moved money is
// the bank taking (or paying) it twice; a failed one moved nothing. A
// second debit of a top-up's card beside the first in one statement goes
// back to the card (auto); a line whose twin is on another day's statement
// is left to an operator, since only the bank's references tell them apart.
func secondary(l *Line, rec *Record, auto bool) Finding {
	if !l.moved() {
		return Finding{Class: Matched, Line: l}
	}
	f := Finding{Class: Duplicate, Line: l, Rec: rec, Key: LineKey(l)}
	if auto && rec.Kind == channel.KindTopup && l.Kind == bankapi.KindDebit && rec.CardToken != "" {
		f.Do = DoReturn
		f.Detail = "the bank debited the card twice for one top-up; the second debit goes back to the card"
		return f
	}
	f.Do, f.Suspense = DoReview, effect(l.Kind, l.Amount)
	f.Detail = "the bank moved money twice for one request"
	return f
}

// withLine decides a record against the line that answers it.
func withLine(day string, l *Line, rec *Record) Finding {
	f := Finding{Line: l, Rec: rec, Counted: true, Key: LineKey(l)}
	same := l.Kind == lineKind(rec.Kind) && l.Amount == rec.Amount
	switch rec.Status {
	case channel.StatusProcessing, channel.StatusQueued:
		switch {
		case same && l.moved():
			f.Class, f.Do, f.Succeed = BankOnly, DoSettle, true
			f.Detail = "the bank moved the money; the platform had no outcome yet"
		case same:
			f.Class, f.Do = Matched, DoSettle
		case l.moved():
			f.Class, f.Do, f.Suspense = AmountMismatch, DoReview, effect(l.Kind, l.Amount)
			f.Detail = "the bank moved another amount than the platform asked for; the transaction waits for an operator"
		default:
			f.Class, f.Do = AmountMismatch, DoReview
			f.Detail = "the bank failed another amount than the platform asked for; the transaction waits for an operator"
		}
	case channel.StatusSuccess:
		switch {
		case same && l.moved() && rec.ResolvedBy == channel.ByRecon:
			// A run decided it from this line: the bank had it first. A
			// run again finds it as the first did.
			f.Class = BankOnly
		case same && l.moved():
			f.Class, f.Key = Matched, ""
			if lineDay(l) != day || recordDay(rec) != day {
				f.Class = Late
			}
		case !l.moved():
			f.Class, f.Do, f.Suspense, f.Key = OursOnly, DoReview, -rec.effect(), TxnKey(rec.TxnID)
			f.Detail = "the platform recorded money moved that the bank's statement says failed"
		default:
			f.Class, f.Do, f.Suspense = AmountMismatch, DoReview, effect(l.Kind, l.Amount)-rec.effect()
			f.Detail = "the bank and the platform moved different amounts"
		}
	default: // FAILED
		switch {
		case !l.moved():
			f.Class, f.Key = Matched, ""
		case same && rec.Kind == channel.KindTopup:
			f.Class, f.Do = BankOnly, DoCredit
			f.Detail = "the bank took a top-up the platform had failed; it is credited to the wallet"
		case same:
			f.Class, f.Do, f.Suspense = BankOnly, DoReview, effect(l.Kind, l.Amount)
			f.Detail = "the bank paid out a withdrawal the platform had failed and given back to the wallet"
		default:
			f.Class, f.Do, f.Suspense = AmountMismatch, DoReview, effect(l.Kind, l.Amount)
			f.Detail = "the bank moved another amount for a transaction the platform had failed"
		}
	}
	return f
}

// recordOnly decides a record of the day the statement does not show.
func recordOnly(day string, rec *Record) Finding {
	f := Finding{Rec: rec, Counted: true}
	switch {
	case rec.Status != channel.StatusSuccess:
		// Nothing moved, by the bank's statement or the platform's record.
		f.Class = Matched
	case rec.ResolvedBy == channel.ByRecon:
		// A run decided it from the line of the day the bank settled it.
		f.Class = Late
	default:
		f.Class, f.Do, f.Key = OursOnly, DoConfirm, TxnKey(rec.TxnID)
	}
	return f
}

// AfterInquiry decides a record the statement does not show from what the
// bank answers about it (err is the inquiry's error; a bank that does not
// answer leaves it undecided, and the caller fails the run).
func AfterInquiry(day string, rec *Record, txn bankapi.Transaction, notFound bool) Finding {
	f := Finding{Class: OursOnly, Rec: rec, Counted: true, Do: DoReview, Key: TxnKey(rec.TxnID)}
	if !notFound {
		f.BankAmount, f.BankTxnID = txn.Amount, txn.BankTxnID
	}
	switch {
	case notFound:
		f.Suspense = -rec.effect()
		f.Detail = "the platform recorded money moved; the bank never received the request"
	case txn.Status == bankapi.StatusFailed:
		f.Suspense = -rec.effect()
		f.Detail = "the platform recorded money moved; the bank says it failed"
	case txn.Status != bankapi.StatusSuccess:
		f.Detail = "the platform recorded money moved; the bank has not decided it yet"
	case txn.Kind == lineKind(rec.Kind) && txn.Amount == rec.Amount:
		f = Finding{Class: Late, Rec: rec, Counted: true}
	default:
		f.Class, f.Suspense = AmountMismatch, effect(txn.Kind, txn.Amount)-rec.effect()
		f.Detail = "the bank and the platform moved different amounts (by the bank's inquiry)"
	}
	return f
}

// Day is a date of the banks' business days (Beijing).
func Day(t time.Time) string { return t.In(bankapi.Beijing).Format(time.DateOnly) }

func lineDay(l *Line) string { return Day(time.Unix(0, l.SettledAt)) }

// recordDay is the day the platform learnt the record's outcome, "" when
// it has none.
func recordDay(r *Record) string {
	if r.SettledAt == 0 {
		return ""
	}
	return Day(time.Unix(0, r.SettledAt))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
