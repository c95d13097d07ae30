package channel

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"zhifu/bankapi"
)

func TestStateTable(t *testing.T) {
	cases := []struct {
		kind Kind
		from Status
		ev   Event
		want Status // "" when refused
	}{
		{KindTopup, StatusProcessing, Succeed, StatusSuccess},
		{KindTopup, StatusProcessing, Fail, StatusFailed},
		{KindTopup, StatusSuccess, Fail, ""},
		{KindTopup, StatusFailed, Succeed, ""},
		{KindTopup, StatusSuccess, Succeed, ""}, // a duplicate outcome changes nothing
		{KindTopup, StatusProcessing, Claim, ""},
		{KindTopup, StatusProcessing, Requeue, ""},
		{KindWithdrawal, StatusQueued, Claim, StatusProcessing},
		{KindWithdrawal, StatusProcessing, Requeue, StatusQueued},
		{KindWithdrawal, StatusProcessing, Succeed, StatusSuccess},
		{KindWithdrawal, StatusProcessing, Fail, StatusFailed},
		{KindWithdrawal, StatusQueued, Succeed, StatusSuccess},
		{KindWithdrawal, StatusSuccess, Fail, ""},
		{KindWithdrawal, StatusFailed, Requeue, ""},
		{KindWithdrawal, StatusProcessing, Claim, ""},
	}
	for _, c := range cases {
		got, ok := Next(c.kind, c.from, c.ev)
		if (c.want == "") == ok || got != c.want {
			t.Errorf("Next(%s, %s, %s) = %q, %v; want %q", c.kind, c.from, c.ev, got, ok, c.want)
		}
	}
	// No final state ever moves.
	for tr := range transitions {
		if tr.from.Final() {
			t.Errorf("the table moves final %s by %s", tr.from, tr.ev)
		}
	}
}

func TestClassify(t *testing.T) {
	api := func(status int, code string) error { return &bankapi.APIError{Status: status, Code: code} }
	cases := []struct {
		name    string
		t       bankapi.Transaction
		err     error
		want    AnswerKind
		healthy bool
	}{
		{"success", bankapi.Transaction{Status: bankapi.StatusSuccess}, nil, Decided, true},
		{"insufficient funds", bankapi.Transaction{Status: bankapi.StatusFailed, Reason: bankapi.ReasonInsufficientFunds}, nil, Decided, true},
		{"bank error", bankapi.Transaction{Status: bankapi.StatusFailed, Reason: bankapi.ReasonBankError}, nil, Decided, false},
		{"accepted", bankapi.Transaction{Status: bankapi.StatusAccepted}, nil, Accepted, true},
		{"not found", bankapi.Transaction{}, api(404, bankapi.CodeNotFound), NotFound, true},
		{"busy", bankapi.Transaction{}, api(503, bankapi.CodeSystemBusy), Refused, false},
		{"outage", bankapi.Transaction{}, api(503, bankapi.CodeBankUnavailable), Refused, false},
		{"maintenance", bankapi.Transaction{}, api(503, bankapi.CodeMaintenance), Refused, false},
		{"bad request", bankapi.Transaction{}, api(400, bankapi.CodeInvalidRequest), Rejected, true},
		{"500", bankapi.Transaction{}, api(500, bankapi.CodeSystemError), Unknown, false},
		{"409 conflict", bankapi.Transaction{}, api(409, bankapi.CodeRequestIDConflict), Unknown, false},
		{"timeout", bankapi.Transaction{}, fmt.Errorf("bankapi: POST: %w", errors.New("deadline exceeded")), Unknown, false},
	}
	for _, c := range cases {
		a := Classify(c.t, c.err)
		if a.Kind != c.want || a.Healthy() != c.healthy {
			t.Errorf("%s: kind %d healthy %v, want %d %v", c.name, a.Kind, a.Healthy(), c.want, c.healthy)
		}
	}
	if Classify(bankapi.Transaction{}, &bankapi.APIError{Status: http.StatusNotFound}).Kind != NotFound {
		t.Error("404 without a code is not NotFound")
	}
}

func TestPolicyDelayGrows(t *testing.T) {
	p := DefaultPolicy
	prev := time.Duration(0)
	for n := 1; n <= 12; n++ {
		d := p.delay(n)
		if d < prev || d > p.InquiryDelayMax {
			t.Fatalf("delay(%d) = %s after %s", n, d, prev)
		}
		prev = d
	}
	if p.delay(1) != p.InquiryDelay || p.delay(3) != 4*p.InquiryDelay || p.delay(20) != p.InquiryDelayMax {
		t.Errorf("delays %s %s %s", p.delay(1), p.delay(3), p.delay(20))
	}
}

func TestAfterCall(t *testing.T) {
	p := DefaultPolicy
	now := time.Date(2010, 11, 11, 10, 0, 0, 0, time.UTC)
	sent := now.Add(-time.Minute)
	quick := Txn{Kind: KindTopup, Method: MethodQuick, Status: StatusProcessing, Stage: StageSend,
		Deadline: sent.Add(p.Deadline)}
	success := Answer{Kind: Decided, Txn: bankapi.Transaction{Status: bankapi.StatusSuccess, BankTxnID: "B1"}}
	failed := Answer{Kind: Decided, Txn: bankapi.Transaction{Status: bankapi.StatusFailed, Reason: "INSUFFICIENT_FUNDS"}}

	if st := AfterCall(quick, success, now, p); st.Resolve != Succeed || st.BankTxnID != "B1" || st.Attempts != 1 {
		t.Errorf("success: %+v", st)
	}
	if st := AfterCall(quick, failed, now, p); st.Resolve != Fail || st.Reason != "INSUFFICIENT_FUNDS" {
		t.Errorf("failed: %+v", st)
	}
	// Sent, outcome later: wait for the callback, inquire after the first delay.
	st := AfterCall(quick, Answer{Kind: Accepted}, now, p)
	if st.Resolve != "" || st.Stage != StageWait || !st.NextAt.Equal(now.Add(p.InquiryDelay)) {
		t.Errorf("accepted: %+v", st)
	}
	// No answer: the bank may have it; inquire, never fail.
	st = AfterCall(quick, Answer{Kind: Unknown}, now, p)
	if st.Resolve != "" || st.Stage != StageWait {
		t.Errorf("timeout: %+v", st)
	}
	// Refused before doing anything: a top-up is sent again later; a
	// withdrawal goes back to its queue.
	st = AfterCall(quick, Answer{Kind: Refused}, now, p)
	if st.Resolve != "" || st.Stage != StageSend || !st.NextAt.After(now) {
		t.Errorf("refused top-up: %+v", st)
	}
	wd := quick
	wd.Kind, wd.Method = KindWithdrawal, MethodPayout
	if st := AfterCall(wd, Answer{Kind: Refused}, now, p); !st.Requeue {
		t.Errorf("refused payout: %+v", st)
	}
	// Refused as invalid: it never will be done.
	if st := AfterCall(quick, Answer{Kind: Rejected, Reason: "INVALID_REQUEST"}, now, p); st.Resolve != Fail {
		t.Errorf("rejected: %+v", st)
	}
	// An inquiry the bank answers "never received": send again, same id.
	waiting := quick
	waiting.Stage, waiting.Attempts = StageWait, 1
	if st := AfterCall(waiting, Answer{Kind: NotFound}, now, p); st.Stage != StageSend || !st.NextAt.Equal(now) {
		t.Errorf("not found while waiting: %+v", st)
	}
	// An online-banking top-up not yet confirmed is never sent by us.
	ebank := waiting
	ebank.Method, ebank.Stage = MethodEbank, StageEbank
	if st := AfterCall(ebank, Answer{Kind: NotFound}, now, p); st.Stage != StageEbank || st.Resolve != "" {
		t.Errorf("ebank not found: %+v", st)
	}
	// Inquiries are bounded: the last one hands over to the statement at
	// the deadline.
	many := waiting
	many.Attempts = p.InquiriesMax - 1
	if st := AfterCall(many, Answer{Kind: Accepted}, now, p); st.Stage != StageStatement || !st.NextAt.Equal(many.Deadline) {
		t.Errorf("inquiries exhausted: %+v", st)
	}
	late := waiting
	late.Deadline = now.Add(time.Second)
	if st := AfterCall(late, Answer{Kind: Unknown}, now, p); st.Stage != StageStatement {
		t.Errorf("near the deadline: %+v", st)
	}
}

func TestAfterStatementInquiry(t *testing.T) {
	p := DefaultPolicy
	now := time.Date(2010, 11, 11, 10, 0, 0, 0, time.UTC)
	past := Txn{Kind: KindTopup, Method: MethodQuick, Status: StatusProcessing, Stage: StageStatement,
		Deadline: now.Add(-time.Second)}
	if st := AfterCall(past, Answer{Kind: NotFound}, now, p); st.Resolve != Fail || st.Reason != ReasonNotReceived {
		t.Errorf("never received: %+v", st)
	}
	ebank := past
	ebank.Method = MethodEbank
	if st := AfterCall(ebank, Answer{Kind: NotFound}, now, p); st.Resolve != Fail || st.Reason != ReasonExpired {
		t.Errorf("link unused: %+v", st)
	}
	// The bank has it but has not decided: keep waiting, never fail.
	for _, a := range []Answer{{Kind: Accepted}, {Kind: Unknown}, {Kind: Refused}} {
		if st := AfterCall(past, a, now, p); st.Resolve != "" || st.Stage != StageStatement || !st.NextAt.After(now) {
			t.Errorf("answer %d past the deadline: %+v", a.Kind, st)
		}
	}
	early := past
	early.Deadline = now.Add(time.Minute)
	if st := AfterCall(early, Answer{Kind: NotFound}, now, p); st.Resolve != "" {
		t.Errorf("failed before the deadline: %+v", st)
	}
	if st := AfterCall(past, Answer{Kind: Decided, Txn: bankapi.Transaction{Status: bankapi.StatusSuccess}}, now, p); st.Resolve != Succeed {
		t.Errorf("decided: %+v", st)
	}
}

func TestFromStatement(t *testing.T) {
	if st, ok := FromStatement(bankapi.StatementLine{Status: bankapi.StatusSuccess, BankTxnID: "X"}); !ok || st.Resolve != Succeed || st.BankTxnID != "X" {
		t.Errorf("success line: %+v %v", st, ok)
	}
	if st, ok := FromStatement(bankapi.StatementLine{Status: bankapi.StatusFailed}); !ok || st.Resolve != Fail {
		t.Errorf("failed line: %+v %v", st, ok)
	}
	if _, ok := FromStatement(bankapi.StatementLine{Status: "ACCEPTED"}); ok {
		t.Error("an undecided line decided")
	}
}

func TestStatementDays(t *testing.T) {
	bj := time.FixedZone("CST", 8*3600)
	now := time.Date(2010, 11, 12, 1, 0, 0, 0, bj)
	got := statementDays(now.Add(-3*time.Hour), now)
	if len(got) != 2 || got[0] != "2010-11-11" || got[1] != "2010-11-12" {
		t.Errorf("days = %v", got)
	}
	if got := statementDays(now.AddDate(-1, 0, 0), now); len(got) != statementDaysMax || got[len(got)-1] != "2010-11-12" {
		t.Errorf("a year back gives %d days ending %s", len(got), got[len(got)-1])
	}
	// UTC midnight is 08:00 in Beijing: one Beijing day.
	utc := time.Date(2010, 11, 11, 0, 30, 0, 0, time.UTC)
	if got := statementDays(utc.Add(-time.Hour), utc); len(got) != 1 || got[0] != "2010-11-11" {
		t.Errorf("days = %v", got)
	}
}

func TestCompareHealth(t *testing.T) {
	healthy := BankHealth{State: StateHealthy, SuccessRate: 1, P50: 10 * time.Millisecond}
	slower := BankHealth{State: StateHealthy, SuccessRate: 1, P50: 50 * time.Millisecond}
	flaky := BankHealth{State: StateHealthy, SuccessRate: 0.95}
	congested := BankHealth{State: StateCongested, SuccessRate: 1}
	down := BankHealth{State: StateDown, SuccessRate: 1}
	order := []BankHealth{healthy, slower, flaky, congested, down}
	for i := range order {
		for j := range order {
			got := compareHealth(order[i], order[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("compare(%d, %d) = %d", i, j, got)
			}
		}
	}
	if rankOf(StateDown) >= 0 || rankOf(StateMaintenance) >= 0 {
		t.Error("down or maintenance banks are routable")
	}
}

func TestBreakerCancel(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBreaker(DefaultBreakerConfig, &Window{})
	b.trip(now)
	now = now.Add(DefaultBreakerConfig.CoolDown)
	for range DefaultBreakerConfig.ProbesMax {
		if ok, probe := b.Allow(now); !ok || !probe {
			t.Fatal("no probe")
		}
	}
	if ok, _ := b.Allow(now); ok {
		t.Fatal("too many probes")
	}
	b.Cancel(true)
	if ok, probe := b.Allow(now); !ok || !probe {
		t.Fatal("a cancelled probe's slot was not given back")
	}
	b.Cancel(false) // not a probe: nothing to give back
	if ok, _ := b.Allow(now); ok {
		t.Fatal("cancelling a non-probe freed a slot")
	}
}

func TestBucketReserve(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBucket(10, 10)
	n := 0
	for b.TakeAbove(now, 4) {
		n++
	}
	if n != 6 || b.Tokens(now) != 4 {
		t.Fatalf("background took %d, left %.1f; want 6 and 4 kept", n, b.Tokens(now))
	}
	for range 4 {
		if !b.Take(now) {
			t.Fatal("the reserve was not there for a payment")
		}
	}
	if b.Take(now) {
		t.Fatal("bucket overdrawn")
	}
}

func TestBreakerOpensOnARunOfFailures(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBreaker(DefaultBreakerConfig, &Window{})
	// A busy, healthy bank: the window is full of successes.
	for range 500 {
		b.Done(now, false, Success, 10*time.Millisecond)
	}
	// It collapses: ten failures in a row open the breaker though the
	// window's rate is still 98% good.
	for i := range DefaultBreakerConfig.ConsecutiveFailuresMax {
		if s := b.State(now); s != Closed {
			t.Fatalf("opened after %d failures", i)
		}
		b.Done(now, false, Failure, time.Second)
	}
	if s := b.State(now); s != Open {
		t.Fatalf("state %s after a run of failures", s)
	}
	// Failures scattered among successes do not.
	b2 := NewBreaker(DefaultBreakerConfig, &Window{})
	for i := range 200 {
		o := Success
		if i%3 == 0 {
			o = Failure
		}
		b2.Done(now, false, o, time.Millisecond)
	}
	if s := b2.State(now); s != Closed {
		t.Fatalf("scattered failures opened the breaker")
	}
}

// A card repayment is a payout: it moves exactly as a withdrawal does, and
// a bank that refuses it untouched puts it back in the queue.
func TestCardRepaymentIsAPayout(t *testing.T) {
	if !KindCardRepayment.Payout() || !KindWithdrawal.Payout() || KindTopup.Payout() {
		t.Fatal("Payout() misclassifies a kind")
	}
	for _, from := range []Status{StatusQueued, StatusProcessing, StatusSuccess, StatusFailed} {
		for _, ev := range []Event{Claim, Requeue, Succeed, Fail} {
			w, wok := Next(KindWithdrawal, from, ev)
			r, rok := Next(KindCardRepayment, from, ev)
			if w != r || wok != rok {
				t.Errorf("%s on %s: withdrawal %q %v, card repayment %q %v", ev, from, w, wok, r, rok)
			}
		}
	}
	now := time.Unix(1_700_000_000, 0)
	txn := Txn{Kind: KindCardRepayment, Method: MethodPayout, Status: StatusProcessing, Stage: StageSend,
		Amount: 100, Deadline: now.Add(time.Hour)}
	if st := AfterCall(txn, Answer{Kind: Refused, Reason: bankapi.CodeSystemBusy}, now, DefaultPolicy); !st.Requeue {
		t.Errorf("refused repayment: %+v, want requeued", st)
	}
	if k := payoutKindOf(KindCardRepayment); k.code == payoutKindOf(KindWithdrawal).code || k.prefix == "WD" {
		t.Errorf("card repayment shares the withdrawal's code or ids: %+v", k)
	}
	bt := &BankTxn{TxnID: "CR1", Kind: KindCardRepayment, Bank: "ICBC", Amount: 100}
	if !sameTxn(bt, bankapi.Transaction{RequestID: "CR1", Bank: "ICBC", Kind: bankapi.KindCredit, Amount: 100}) ||
		!lineMatches(bt, bankapi.StatementLine{Kind: bankapi.KindCredit, Amount: 100}) {
		t.Error("a card repayment is not matched to the bank's credit")
	}
}
