package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The timers run off the manual clock: moving it past a due time and
// running the timers once is all a test needs, no sleeping. The background
// ticker runs too and may move a trade first; the tests check where trades
// end up, not who moved them.

func TestTradeAutoClose(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "100.00")
		idle := w.mustCreate(map[string]any{"timeout_express": "90s"})
		late := w.mustCreate(map[string]any{"timeout_express": "90s"})
		w.clock.Advance(89 * time.Second)
		w.runDue()
		checkFields(t, "before the timeout", w.get(idle), map[string]any{"status": "WAIT_BUYER_PAY"})

		w.clock.Advance(time.Second)
		// Paying once the time is up closes the trade rather than paying it,
		// whether or not the timer got there first.
		s, out := w.pay(buyer, late)
		wantStatus(t, "pay after the timeout", s, out, http.StatusConflict, "TRADE_HAS_CLOSE")
		w.runDue()
		for _, no := range []string{idle, late} {
			tr := w.get(no)
			checkFields(t, "after the timeout", tr, map[string]any{"status": "TRADE_CLOSED", "paid_at": nil})
			if tr["closed_at"] == nil {
				t.Errorf("%s: closed_at is null", no)
			}
			if n := countStatus(w.notifications(no), "TRADE_CLOSED"); n != 1 {
				t.Errorf("%s: %d close notifications, want 1", no, n)
			}
		}
		if got := w.available(buyer); got != "100.00" {
			t.Errorf("buyer: %s, want 100.00", got)
		}
		if n := w.runDue(); n != 0 {
			t.Errorf("timers moved %d trades again", n)
		}
		w.checkLedger()
	})
}

func TestTradeAutoConfirm(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		buyer := w.user("buyer")
		w.fund(buyer, "100.00")
		no := w.mustCreate(map[string]any{"mode": "escrow", "confirm_timeout": "2h", "total_amount": "80.00"})
		if s, out := w.pay(buyer, no); s != http.StatusOK {
			t.Fatalf("pay: %d %v", s, out)
		}
		// The confirm timer starts at shipping, not at payment.
		w.clock.Advance(3 * time.Hour)
		w.runDue()
		checkFields(t, "paid, not shipped", w.get(no), map[string]any{"status": "WAIT_SELLER_SEND_GOODS"})
		s, out := w.move(no, "ship", nil)
		wantStatus(t, "ship", s, out, http.StatusOK, "")
		s, out = w.move(no, "refunds", map[string]string{"out_request_no": "r1", "refund_amount": "20.00"})
		wantStatus(t, "partial refund", s, out, http.StatusCreated, "")
		w.clock.Advance(time.Hour)
		w.runDue()
		checkFields(t, "an hour after shipping", w.get(no), map[string]any{"status": "WAIT_BUYER_CONFIRM_GOODS"})
		w.clock.Advance(time.Hour)
		w.runDue()
		tr := w.get(no)
		checkFields(t, "two hours after shipping", tr, map[string]any{"status": "TRADE_FINISHED"})
		if tr["finished_at"] == nil {
			t.Error("finished_at is null")
		}
		// The seller gets what the escrow still held: 80 less the refund.
		if got := w.available(w.seller); got != "60.00" {
			t.Errorf("seller: %s, want 60.00", got)
		}
		if got := w.available(buyer); got != "40.00" {
			t.Errorf("buyer: %s, want 40.00", got)
		}
		w.checkLedger()
	})
}

func countStatus(notes []string, status string) int {
	n := 0
	for _, b := range notes {
		if strings.Contains(b, `"status":"`+status+`"`) {
			n++
		}
	}
	return n
}

// TestTradeTimerSurvivesRestart stops the platform with a trade due to
// close, starts it again on the same database after the due time, and
// checks that the trade is closed exactly once.
func TestTradeTimerSurvivesRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		no := w.mustCreate(map[string]any{"timeout_express": "60s"})
		w.clock.Advance(30 * time.Second)
		db, dir := e.m.DB, e.m.DataDir
		if err := e.m.Close(); err != nil {
			t.Fatal(err)
		}
		w.clock.Advance(31 * time.Second)

		tm := trStartNode(t, w.clock, db, dir)
		w.m, w.url, w.token = tm, tm.URL(), tm.AdminToken()

		w.runDue()
		w.runDue()
		checkFields(t, "after the restart", w.get(no), map[string]any{"status": "TRADE_CLOSED"})
		if n := countStatus(w.notifications(no), "TRADE_CLOSED"); n != 1 {
			t.Errorf("%d close notifications, want exactly 1", n)
		}
		w.checkLedger()
	})
}

// trStartNode starts another Main on an existing database (a restart, or a
// second node beside the first) with the test's clock.
func trStartNode(t *testing.T, clock *manualClock, db, dir string) *testMain {
	t.Helper()
	tm := newTestMain(nil)
	tm.Clock = clock
	serveTestMain(t, tm, "--data", dir, "--db", db)
	return tm
}
