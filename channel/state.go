package channel

import (
	"errors"
	"net/http"
	"time"

	"zhifu/bankapi"
)

// The life of a bank transaction, as pure functions of the row and what
// the bank said. The ops and workers only load rows, call these, and save
// what they return; the unit tests walk them without a database or a bank.

// Kind is what a bank transaction does for the user.
type Kind string

const (
	// KindTopup debits the user's card into the platform's settlement
	// account and credits the wallet.
	KindTopup Kind = "topup"
	// KindWithdrawal pays the user's frozen money out to a card.
	KindWithdrawal Kind = "withdrawal"
	// KindCardRepayment pays the user's frozen money to the bank that
	// issued a credit card, as the card's repayment: a payout like a
	// withdrawal, whose ledger transfers say it was a repayment.
	KindCardRepayment Kind = "card_repayment"
)

// Payout reports whether k pays money out to a card (a credit at the
// bank): a withdrawal or a card repayment. Both go through the same queue,
// pace and rules.
func (k Kind) Payout() bool { return k == KindWithdrawal || k == KindCardRepayment }

// PayoutKinds are the kinds that pay out, in a fixed order.
var PayoutKinds = []Kind{KindWithdrawal, KindCardRepayment}

// Methods of a bank transaction.
const (
	MethodQuick  = "quick"  // quick pay from a bound card: the platform debits
	MethodEbank  = "ebank"  // online-banking redirect: the person confirms at the bank
	MethodPayout = "payout" // a withdrawal the user asked for
	MethodRefund = "refund" // money a card payment brought after the trade no longer wanted it
)

// Status is a bank transaction's status as the API shows it.
type Status string

const (
	StatusQueued     Status = "QUEUED"     // a withdrawal waiting for its bank's pace
	StatusProcessing Status = "PROCESSING" // at the bank, or about to be
	StatusSuccess    Status = "SUCCESS"
	StatusFailed     Status = "FAILED"
)

// Final reports whether no event can move the status again.
func (s Status) Final() bool { return s == StatusSuccess || s == StatusFailed }

// Event moves a bank transaction.
type Event string

const (
	Claim   Event = "claim"   // the payout worker takes a queued withdrawal
	Requeue Event = "requeue" // the bank refused it untouched: back to the queue
	Succeed Event = "succeed" // the bank says the money moved
	Fail    Event = "fail"    // the bank says it did not, or proved it never received it
)

type transition struct {
	kind Kind
	from Status
	ev   Event
}

// transitions is the whole state table. Anything missing is refused. A
// queued withdrawal may be decided directly: a payout requeued after a
// refusal may already have reached the bank through an earlier attempt,
// and the bank's word is final.
// Every payout kind follows the same rows as a withdrawal.
var transitions = func() map[transition]Status {
	t := map[transition]Status{
		{KindTopup, StatusProcessing, Succeed}: StatusSuccess,
		{KindTopup, StatusProcessing, Fail}:    StatusFailed,
	}
	for _, k := range PayoutKinds {
		t[transition{k, StatusQueued, Claim}] = StatusProcessing
		t[transition{k, StatusProcessing, Requeue}] = StatusQueued
		t[transition{k, StatusProcessing, Succeed}] = StatusSuccess
		t[transition{k, StatusProcessing, Fail}] = StatusFailed
		t[transition{k, StatusQueued, Succeed}] = StatusSuccess
		t[transition{k, StatusQueued, Fail}] = StatusFailed
	}
	return t
}()

// Next returns the status after ev, or false when the table forbids it.
func Next(kind Kind, from Status, ev Event) (Status, bool) {
	s, ok := transitions[transition{kind, from, ev}]
	return s, ok
}

// Stage is what the workers do next with a transaction that is not final.
type Stage string

const (
	StageQueued    Stage = "queued"    // a withdrawal in its bank's queue
	StageSend      Stage = "send"      // send the debit or credit (again: the bank deduplicates)
	StageWait      Stage = "wait"      // sent; wait for the callback, inquire at next_at
	StageEbank     Stage = "ebank"     // waiting for the person at the bank's page; inquire at next_at
	StageStatement Stage = "statement" // past the deadline: the statement decides
	StageDone      Stage = "done"
)

// Ways an outcome reached the platform (resolved_by).
const (
	ByAnswer    = "answer"
	ByCallback  = "callback"
	ByInquiry   = "inquiry"
	ByStatement = "statement"
)

// Reasons the platform gives for a failure of its own finding.
const (
	// ReasonNotReceived: past the deadline the bank's statement and its
	// inquiry both show it never received the request, so no money moved.
	ReasonNotReceived = "NOT_RECEIVED"
	// ReasonExpired: the online-banking link expired unused.
	ReasonExpired = "EXPIRED"
	// ReasonRejected: the bank refused the request as invalid.
	ReasonRejected = "REJECTED"
)

// Policy is the timing of resolution, in the platform clock's time.
type Policy struct {
	// InquiryDelay is the first wait for a callback before inquiring; each
	// later wait doubles, up to InquiryDelayMax.
	InquiryDelay    time.Duration
	InquiryDelayMax time.Duration
	// InquiriesMax bounds the inquiries before the deadline.
	InquiriesMax int
	// Deadline is how long after sending a transaction may stay unknown
	// before the statement decides it.
	Deadline time.Duration
	// EbankDeadline is the same for an online-banking top-up: the link's
	// life and a margin.
	EbankDeadline time.Duration
	// StatementRetry spaces attempts to decide past the deadline while the
	// bank cannot answer.
	StatementRetry time.Duration
}

// DefaultPolicy inquires after 5 s, then 10, 20… up to 5 min between
// inquiries, at most 8 times, and hands a transaction still unknown after
// 15 minutes to the statement.
var DefaultPolicy = Policy{InquiryDelay: 5 * time.Second, InquiryDelayMax: 5 * time.Minute, InquiriesMax: 8,
	Deadline: 15 * time.Minute, EbankDeadline: 35 * time.Minute, StatementRetry: time.Minute}

// delay is the wait after the given number of attempts (1-based).
func (p Policy) delay(attempts int) time.Duration {
	d := p.InquiryDelay
	for i := 1; i < attempts && d < p.InquiryDelayMax; i++ {
		d *= 2
	}
	return min(d, p.InquiryDelayMax)
}

// AnswerKind classifies what one call to the bank came to.
type AnswerKind int

const (
	// Decided: the bank reports SUCCESS or FAILED.
	Decided AnswerKind = iota
	// Accepted: the bank has the request, outcome later.
	Accepted
	// NotFound: an inquiry the bank answered with "never received".
	NotFound
	// Refused: the bank answered without doing anything (over capacity,
	// down, in maintenance) and the request may be sent again.
	Refused
	// Rejected: the bank refused the request itself as invalid; it did
	// nothing and never will.
	Rejected
	// Unknown: no answer, or an answer that does not say (a timeout, a
	// dropped connection, a 500): the bank may or may not have it.
	Unknown
)

// Answer is one call's outcome.
type Answer struct {
	Kind   AnswerKind
	Txn    bankapi.Transaction // for Decided and Accepted
	Reason string              // an error code for the other kinds
}

// Classify turns a Bank call's result into an Answer.
func Classify(t bankapi.Transaction, err error) Answer {
	if err == nil {
		switch t.Status {
		case bankapi.StatusSuccess, bankapi.StatusFailed:
			return Answer{Kind: Decided, Txn: t}
		case bankapi.StatusAccepted:
			return Answer{Kind: Accepted, Txn: t}
		}
		return Answer{Kind: Unknown, Reason: "status " + t.Status}
	}
	var e *bankapi.APIError
	if !errors.As(err, &e) {
		return Answer{Kind: Unknown, Reason: "no answer"}
	}
	switch {
	case e.Status == http.StatusNotFound:
		return Answer{Kind: NotFound, Reason: e.Code}
	case e.Status == http.StatusServiceUnavailable &&
		(e.Code == bankapi.CodeSystemBusy || e.Code == bankapi.CodeBankUnavailable || e.Code == bankapi.CodeMaintenance):
		// The bank refuses these before it does any work.
		return Answer{Kind: Refused, Reason: e.Code}
	case e.Status == http.StatusBadRequest:
		return Answer{Kind: Rejected, Reason: e.Code}
	}
	return Answer{Kind: Unknown, Reason: e.Code}
}

// Healthy reports how the answer counts for the bank's health: the bank
// answering, even "insufficient funds" or "not found", is healthy; no
// answer, an error, a refusal or a failure of the bank's own is not.
func (a Answer) Healthy() bool {
	switch a.Kind {
	case Decided:
		return a.Txn.Status == bankapi.StatusSuccess || a.Txn.Reason != bankapi.ReasonBankError
	case Accepted, NotFound, Rejected:
		return true
	}
	return false
}

// Txn is the part of a bank transaction the rules look at.
type Txn struct {
	Kind     Kind
	Method   string
	Status   Status
	Stage    Stage
	Attempts int
	Amount   int64
	NextAt   time.Time
	Deadline time.Time
}

// Step is what to do with a transaction after a call: either resolve it
// (Resolve set) or save the new schedule.
type Step struct {
	// Resolve is Succeed or Fail when the call decided the transaction;
	// Reason and BankTxnID go with it.
	Resolve   Event
	Reason    string
	BankTxnID string
	// Requeue puts a refused withdrawal back in its queue.
	Requeue bool
	// Otherwise the transaction waits: Stage from NextAt.
	Stage    Stage
	NextAt   time.Time
	Attempts int
}

// AfterCall decides what a call's answer means for t at now. t.Stage says
// which call it was: StageSend sent the debit or credit; StageWait and
// StageEbank inquired; StageStatement inquired past the deadline, the
// statement having shown nothing.
func AfterCall(t Txn, a Answer, now time.Time, p Policy) Step {
	attempts := t.Attempts + 1
	if a.Kind == Decided {
		ev := Succeed
		if a.Txn.Status == bankapi.StatusFailed {
			ev = Fail
		}
		return Step{Resolve: ev, Reason: a.Txn.Reason, BankTxnID: a.Txn.BankTxnID, Attempts: attempts}
	}
	if t.Stage == StageStatement {
		return afterStatementInquiry(t, a, now, p, attempts)
	}
	if a.Kind == Rejected && t.Stage == StageSend {
		return Step{Resolve: Fail, Reason: ReasonRejected + ":" + a.Reason, Attempts: attempts}
	}
	if a.Kind == Refused && t.Stage == StageSend && t.Kind.Payout() {
		// Untouched by the bank: back in line, so the queue, not this
		// row, waits for the bank to recover.
		return Step{Requeue: true, Attempts: attempts}
	}
	stage, next := t.Stage, now.Add(p.delay(attempts))
	switch {
	case a.Kind == Accepted || a.Kind == Unknown:
		if stage == StageSend {
			stage = StageWait
		}
	case a.Kind == NotFound && stage == StageWait:
		// The bank never got it (or not yet): sending again is safe, the
		// request_id is the same.
		stage, next = StageSend, now
	}
	if t.Method != MethodEbank && attempts >= p.InquiriesMax || !next.Before(t.Deadline) {
		stage, next = StageStatement, maxTime(t.Deadline, now)
	}
	return Step{Stage: stage, NextAt: next, Attempts: attempts}
}

// afterStatementInquiry decides past the deadline, the statement having
// no line for t: only the bank saying it never received it settles it.
func afterStatementInquiry(t Txn, a Answer, now time.Time, p Policy, attempts int) Step {
	if a.Kind == NotFound && !now.Before(t.Deadline) {
		reason := ReasonNotReceived
		if t.Method == MethodEbank {
			reason = ReasonExpired
		}
		return Step{Resolve: Fail, Reason: reason, Attempts: attempts}
	}
	return Step{Stage: StageStatement, NextAt: now.Add(p.StatementRetry), Attempts: attempts}
}

// FromStatement decides t from its line in the bank's statement, if the
// line settles it.
func FromStatement(line bankapi.StatementLine) (Step, bool) {
	switch line.Status {
	case bankapi.StatusSuccess:
		return Step{Resolve: Succeed, BankTxnID: line.BankTxnID}, true
	case bankapi.StatusFailed:
		return Step{Resolve: Fail, BankTxnID: line.BankTxnID, Reason: "STATEMENT_FAILED"}, true
	}
	return Step{}, false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
