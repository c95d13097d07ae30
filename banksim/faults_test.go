package banksim_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

func TestDuplicateCallbacks(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("CMB", banksim.Scenario{CallbackDuplicateRate: 1})
	card := e.card("CMB", 1)
	d := e.debit("CMB", "dup-1", card, 10_00)
	a, b := e.sink.next(), e.sink.next()
	if a.RequestID != "dup-1" || b.RequestID != "dup-1" || a.BankTxnID != d.BankTxnID || b.BankTxnID != d.BankTxnID {
		t.Fatalf("callbacks = %+v and %+v, want two of dup-1", a, b)
	}
	if st := e.sim.Stats("CMB"); st.CallbacksDuplicated != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestLostCallback: the bank takes the money and never calls back; only an
// inquiry tells the platform, as the mother who topped up 800 yuan found.
func TestLostCallback(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("CCB", banksim.Scenario{CallbackLossRate: 1})
	card := e.card("CCB", 1)
	e.debit("CCB", "lost-1", card, 800_00)
	q, err := e.client("CCB").Inquire(context.Background(), "lost-1")
	if err != nil || q.Status != bankapi.StatusSuccess {
		t.Fatalf("inquiry = %+v, %v", q, err)
	}
	if st := e.sim.Stats("CCB"); st.CallbacksLost != 1 || st.CallbacksSent != 0 {
		t.Fatalf("stats = %+v", st)
	}
	// Close waits for the callback workers: anything scheduled would have
	// been attempted or dropped by now.
	e.close()
	e.sink.none()
}

func TestTimeoutAfterDebit(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("ABC", 1)
	c := e.client("ABC")
	t.Run("held until the client gives up", func(t *testing.T) {
		e.scenario("ABC", banksim.Scenario{TimeoutRate: 1, TimeoutHoldMs: 30_000})
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := c.Debit(ctx, bankapi.TxnRequest{RequestID: "to-1", CardToken: card.CardToken, Amount: 800_00,
			CallbackURL: e.sink.url("ABC")})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("the client waited %v", took)
		}
		e.scenario("ABC", banksim.Scenario{})
		q, err := c.Inquire(context.Background(), "to-1")
		if err != nil || q.Status != bankapi.StatusSuccess {
			t.Fatalf("inquiry = %+v, %v: the bank took the money", q, err)
		}
		if cb := e.sink.next(); cb.RequestID != "to-1" || cb.Status != bankapi.StatusSuccess {
			t.Fatalf("callback = %+v", cb)
		}
	})
	t.Run("connection closed at once", func(t *testing.T) {
		e.scenario("ABC", banksim.Scenario{TimeoutRate: 1})
		_, err := c.Debit(context.Background(), bankapi.TxnRequest{RequestID: "to-2", CardToken: card.CardToken,
			Amount: 1_00})
		var ae *bankapi.APIError
		if err == nil || errors.As(err, &ae) {
			t.Fatalf("err = %v, want a dropped connection", err)
		}
		if q, err := c.Inquire(context.Background(), "to-2"); err != nil || q.Status != bankapi.StatusSuccess {
			t.Fatalf("inquiry = %+v, %v", q, err)
		}
	})
	if b := e.balance("ABC", card); b != banksim.StartingBalanceDefault-801_00 {
		t.Fatalf("balance = %d", b)
	}
	if st := e.sim.Stats("ABC"); st.Timeouts != 2 {
		t.Fatalf("timeouts = %d, want 2", st.Timeouts)
	}
	e.checkBooks()
}

func TestOutage(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("CMB", 1)
	c := e.client("CMB")
	req := bankapi.TxnRequest{RequestID: "o-1", CardToken: card.CardToken, Amount: 1_00}

	e.scenario("CMB", banksim.Scenario{Outage: banksim.OutageReject})
	var ae *bankapi.APIError
	if _, err := c.Debit(context.Background(), req); !errors.As(err, &ae) || ae.Status != 503 || ae.Code != bankapi.CodeBankUnavailable {
		t.Fatalf("err = %v, want 503 BANK_UNAVAILABLE", err)
	}
	e.scenario("CMB", banksim.Scenario{Outage: banksim.OutageClose})
	if _, err := c.Debit(context.Background(), req); err == nil || errors.As(err, &ae) {
		t.Fatalf("err = %v, want a closed connection", err)
	}
	// Another bank is unaffected, and nothing was recorded at CMB.
	if got := e.debit("ICBC", "o-icbc", e.card("ICBC", 1), 1_00); got.Status != bankapi.StatusSuccess {
		t.Fatalf("ICBC debit = %+v", got)
	}
	e.scenario("CMB", banksim.Scenario{})
	if _, err := c.Inquire(context.Background(), "o-1"); !bankapi.IsNotFound(err) {
		t.Fatalf("inquiry = %v, want 404", err)
	}
	if st := e.sim.Stats("CMB"); st.Outages < 2 || st.Accepted != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestMaintenanceWindow: CEB stops for an hour at 22:00 to expand.
func TestMaintenanceWindow(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("CEB", 1)
	c := e.client("CEB")
	from := start.Add(12 * time.Hour) // 22:00
	to := from.Add(time.Hour)
	e.scenario("CEB", banksim.Scenario{Maintenance: []bankapi.Window{{Start: from, End: to}}})

	notice, err := c.Maintenance(context.Background())
	if err != nil || len(notice.Windows) != 1 || !notice.Windows[0].Start.Equal(from) {
		t.Fatalf("notice = %+v, %v", notice, err)
	}
	if got := e.debit("CEB", "m-1", card, 1_00); got.Status != bankapi.StatusSuccess {
		t.Fatalf("before the window: %+v", got)
	}
	e.clock.Advance(12*time.Hour + 30*time.Minute)
	var ae *bankapi.APIError
	_, err = c.Debit(context.Background(), bankapi.TxnRequest{RequestID: "m-2", CardToken: card.CardToken, Amount: 1_00})
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != bankapi.CodeMaintenance || !ae.Until.Equal(to) {
		t.Fatalf("in the window: %v, want 503 MAINTENANCE until %v", err, to)
	}
	e.clock.Advance(30 * time.Minute)
	if got := e.debit("CEB", "m-2", card, 1_00); got.Status != bankapi.StatusSuccess {
		t.Fatalf("after the window: %+v", got)
	}
	if st := e.sim.Stats("CEB"); st.Maintenance != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestCapacityReject: a burst above the bank's rate is refused fast, and the
// bucket refills with the clock.
func TestCapacityReject(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("CCB", banksim.Scenario{RPS: 5})
	c := e.client("CCB")
	burst := func() (admitted, busy int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				_, err := c.Inquire(context.Background(), fmt.Sprint("none-", i))
				var ae *bankapi.APIError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case bankapi.IsNotFound(err):
					admitted++
				case errors.As(err, &ae) && ae.Status == 503 && ae.Code == bankapi.CodeSystemBusy:
					busy++
				default:
					t.Errorf("err = %v", err)
				}
			})
		}
		wg.Wait()
		return admitted, busy
	}
	began := time.Now()
	if a, b := burst(); a != 5 || b != 15 {
		t.Fatalf("admitted %d, busy %d; want 5 and 15", a, b)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("refusals took %v: they should be fast", took)
	}
	e.clock.Advance(time.Second)
	if a, b := burst(); a != 5 || b != 15 {
		t.Fatalf("after a second: admitted %d, busy %d; want 5 and 15", a, b)
	}
	if st := e.sim.Stats("CCB"); st.Rejected != 30 {
		t.Fatalf("rejected = %d", st.Rejected)
	}
}

// TestCapacityQueue: a queueing bank gets slower as requests pile up, then
// fails them slowly: the collapse of online banking on Double 11.
func TestCapacityQueue(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("ABC", banksim.Scenario{RPS: 20, Burst: 1, Overload: banksim.OverloadQueue, QueueTimeoutMs: 120})
	c := e.client("ABC")
	var took []time.Duration
	for i := range 4 {
		began := time.Now()
		_, err := c.Inquire(context.Background(), fmt.Sprint("q-", i))
		took = append(took, time.Since(began))
		var ae *bankapi.APIError
		switch {
		case i < 3 && !bankapi.IsNotFound(err):
			t.Fatalf("request %d: %v, want admitted", i, err)
		case i == 3 && !(errors.As(err, &ae) && ae.Code == bankapi.CodeSystemBusy):
			t.Fatalf("request %d: %v, want SYSTEM_BUSY after queueing", i, err)
		}
	}
	// Waits: 0, 50 ms, 100 ms, then 150 ms needed > 120 ms allowed.
	mins := []time.Duration{0, 45 * time.Millisecond, 95 * time.Millisecond, 115 * time.Millisecond}
	for i := range mins {
		if took[i] < mins[i] {
			t.Fatalf("request %d took %v, want at least %v (all: %v)", i, took[i], mins[i], took)
		}
	}
}

// TestConcurrencyLimit: requests beyond the bank's slots are refused while
// two debits hang in the bank holding theirs.
func TestConcurrencyLimit(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("BOC", 1)
	e.scenario("BOC", banksim.Scenario{ConcurrencyMax: 2, TimeoutRate: 1, TimeoutHoldMs: 60_000})
	c := e.client("BOC")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			c.Debit(ctx, bankapi.TxnRequest{RequestID: fmt.Sprint("hang-", i), CardToken: card.CardToken, Amount: 1})
		})
	}
	e.waitStats("BOC", func(st banksim.Stats) bool { return st.Timeouts == 2 })
	for i := range 4 {
		_, err := c.Inquire(context.Background(), fmt.Sprint("c-", i))
		var ae *bankapi.APIError
		if !errors.As(err, &ae) || ae.Code != bankapi.CodeSystemBusy {
			t.Fatalf("request %d with both slots taken: %v, want SYSTEM_BUSY", i, err)
		}
	}
	cancel()
	wg.Wait()
	// The hung requests gave their slots back when their clients left.
	deadline := time.Now().Add(waitMax)
	for {
		_, err := c.Inquire(context.Background(), "after")
		if bankapi.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots never came back: %v", err)
		}
	}
}

func TestLatency(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("ICBC", banksim.Scenario{Latency: banksim.Latency{FixedMs: 40, JitterMs: 10}})
	began := time.Now()
	if _, err := e.client("ICBC").Inquire(context.Background(), "x"); !bankapi.IsNotFound(err) {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 40*time.Millisecond {
		t.Fatalf("took %v, want at least 40ms", took)
	}
}

func TestFailureAndErrorRates(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("CMB", 1)
	e.scenario("CMB", banksim.Scenario{FailureRate: 1})
	if got := e.debit("CMB", "f-1", card, 1_00); got.Status != bankapi.StatusFailed || got.Reason != bankapi.ReasonBankError {
		t.Fatalf("debit = %+v, want FAILED BANK_ERROR", got)
	}
	e.scenario("CMB", banksim.Scenario{ErrorRate: 1})
	_, err := e.client("CMB").Debit(context.Background(), bankapi.TxnRequest{RequestID: "f-2", CardToken: card.CardToken, Amount: 1_00})
	var ae *bankapi.APIError
	if !errors.As(err, &ae) || (ae.Status != 500 && ae.Status != 503) {
		t.Fatalf("err = %v, want 500 or 503", err)
	}
	e.scenario("CMB", banksim.Scenario{})
	if _, err := e.client("CMB").Inquire(context.Background(), "f-2"); !bankapi.IsNotFound(err) {
		t.Fatalf("an injected error recorded the debit: %v", err)
	}
	if b := e.balance("CMB", card); b != banksim.StartingBalanceDefault {
		t.Fatalf("balance = %d", b)
	}
}

// TestOutOfOrderCallbacks: with reordering, callbacks do not arrive in the
// order the debits were made.
func TestOutOfOrderCallbacks(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("CCB", banksim.Scenario{CallbackReorderRate: 1, CallbackReorderMs: 1000})
	card := e.card("CCB", 1)
	var sent, got []string
	for i := range 8 {
		id := fmt.Sprint("r-", i)
		e.debit("CCB", id, card, 1_00)
		sent = append(sent, id)
	}
	for range sent {
		got = append(got, e.sink.next().RequestID)
	}
	if slices.Equal(got, sent) {
		t.Fatalf("callbacks arrived in order %v", got)
	}
	slices.Sort(got)
	if !slices.Equal(got, sent) {
		t.Fatalf("callbacks %v, want each of %v once", got, sent)
	}
}

func TestLateCallback(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("ICBC", banksim.Scenario{CallbackDelayMs: 100})
	card := e.card("ICBC", 1)
	began := time.Now()
	e.debit("ICBC", "late-1", card, 1_00)
	e.sink.next()
	if took := time.Since(began); took < 100*time.Millisecond {
		t.Fatalf("callback after %v, want at least 100ms", took)
	}
}

func TestCallbackRetried(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("BOC", banksim.Scenario{CallbackRetryMs: 5, CallbackAttempts: 3})
	e.sink.failFirst.Store(2)
	card := e.card("BOC", 1)
	e.debit("BOC", "retry-1", card, 1_00)
	if cb := e.sink.next(); cb.RequestID != "retry-1" {
		t.Fatalf("callback = %+v", cb)
	}
	// The counter moves once the sink has answered, just after it saw the
	// callback.
	st := e.waitStats("BOC", func(st banksim.Stats) bool { return st.CallbacksDelivered == 1 })
	if st.CallbacksSent != 3 {
		t.Fatalf("stats = %+v, want 3 attempts", st)
	}
}
