package notify_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"zhifu/ledger"
	"zhifu/notify"
)

// enqueueTrade enqueues a notification of trade tradeNo in a transaction,
// numbered as the trade service numbers them, and returns its sequence.
func (e *env) enqueueTrade(notifyID, m, tradeNo, u string) int64 {
	e.t.Helper()
	var seq int64
	err := e.store.Update(context.Background(), func(tx ledger.Tx) error {
		var err error
		if seq, err = notify.NextSequence(context.Background(), tx, tradeNo); err != nil {
			return err
		}
		return notify.Enqueue(context.Background(), tx, notify.Message{NotifyID: notifyID, MerchantID: m, URL: u,
			Format: notify.FormatZhifu, TradeNo: tradeNo, Sequence: seq,
			Body: `{"notify_id":"` + notifyID + `","notify_type":"trade_status_sync","trade":{"trade_no":"` + tradeNo + `"}}`}, e.clock.Now())
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// A trade's notifications are numbered 1, 2, 3…, each trade on its own.
func TestNextSequence(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		for i, c := range []struct {
			trade string
			want  int64
		}{{"T1", 1}, {"T1", 2}, {"T2", 1}, {"T1", 3}, {"T2", 2}} {
			if got := e.enqueueTrade("N"+string(rune('a'+i)), "m0000000001", c.trade, "http://127.0.0.1:9/"); got != c.want {
				t.Errorf("notification %d of %s: sequence %d, want %d", i+1, c.trade, got, c.want)
			}
		}
		// A number given twice is refused by the database.
		err := notify.Enqueue(context.Background(), e.store.Reader(), notify.Message{NotifyID: "dup", MerchantID: "m0000000001",
			URL: "http://127.0.0.1:9/", Format: notify.FormatZhifu, Body: "{}", TradeNo: "T1", Sequence: 2}, e.clock.Now())
		if err == nil {
			t.Error("a repeated sequence number was written")
		}
		err = notify.Enqueue(context.Background(), e.store.Reader(), notify.Message{NotifyID: "noseq", MerchantID: "m0000000001",
			URL: "http://127.0.0.1:9/", Format: notify.FormatZhifu, Body: "{}", TradeNo: "T3"}, e.clock.Now())
		if err == nil {
			t.Error("a trade's notification without a sequence number was written")
		}
	})
}

// A trade's next first attempt waits until the previous first attempt has
// finished, in this worker and in any other sharing the database; a failed
// first attempt does not hold the next back, and its retry comes after.
func TestFirstAttemptsInOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		rc.block = make(chan struct{})
		// N1's first attempt is refused; the URL tells it apart.
		rc.respond = func(n int, r *http.Request) (int, string) {
			if n == 1 && r.URL.Query().Get("id") == "N1" {
				return http.StatusServiceUnavailable, "busy"
			}
			return http.StatusOK, "success"
		}
		for _, id := range []string{"N1", "N2", "N3"} {
			e.enqueueTrade(id, "m0000000001", "T1", rc.URL()+"&id="+id)
		}
		e.enqueueTrade("O1", "m0000000001", "T2", rc.URL()) // another trade: not held back
		w := e.worker(nil, notify.Config{})
		first := make(chan int, 1)
		go func() {
			n, _ := w.RunOnce(context.Background())
			first <- n
		}()
		rc.waitArrivals(2)
		if rc.receptions("N1") != 1 || rc.receptions("O1") != 1 {
			t.Fatalf("first pass sent N1 %d, O1 %d times; want each once", rc.receptions("N1"), rc.receptions("O1"))
		}
		// While N1's first attempt runs, neither this worker nor another
		// process starts N2.
		for _, other := range []*notify.Worker{w, e.worker(e.open(), notify.Config{})} {
			if n := e.runOnce(other); n != 0 || rc.receptions("N2") != 0 {
				t.Fatalf("N2 sent while N1's first attempt runs")
			}
		}
		rc.unblock()
		select {
		case n := <-first:
			if n != 1 {
				t.Fatalf("first pass delivered %d, want 1 (O1; N1 refused)", n)
			}
		case <-time.After(waitMax):
			t.Fatalf("first pass did not finish within %v", waitMax)
		}
		if r := e.row("N1"); r.Status != "pending" || r.Attempts != 1 {
			t.Fatalf("N1 = %+v, want pending after a failed first attempt", r)
		}
		// N1 failed: N2 may go, then N3, one pass each, before N1's retry.
		for _, id := range []string{"N2", "N3"} {
			if n := e.runOnce(w); n != 1 || rc.receptions(id) != 1 {
				t.Fatalf("pass for %s delivered %d, receptions %d; want 1 and 1", id, n, rc.receptions(id))
			}
		}
		e.clock.Advance(notify.RetrySchedule()[0])
		if n := e.runOnce(w); n != 1 || rc.receptions("N1") != 2 {
			t.Fatalf("retry pass delivered %d, N1 receptions %d; want 1 and 2", n, rc.receptions("N1"))
		}
	})
}

// An interrupted first attempt (the worker stopped) still holds the next
// notification back: it has not finished.
func TestInterruptedFirstAttemptHoldsNext(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.merchant("m0000000001", secret)
	rc := newReceiver(t, secret, e.clock)
	rc.block = make(chan struct{})
	e.enqueueTrade("N1", "m0000000001", "T1", rc.URL())
	e.enqueueTrade("N2", "m0000000001", "T1", rc.URL())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.worker(nil, notify.Config{}).RunOnce(ctx)
	}()
	rc.waitArrivals(1)
	cancel()
	<-done
	rc.unblock()
	if r := e.row("N1"); r.Attempts != 0 || r.LeaseUntil != 0 {
		t.Fatalf("N1 = %+v, want released and uncounted", r)
	}
	w := e.worker(nil, notify.Config{})
	if n := e.runOnce(w); n != 1 || rc.receptions("N1") != 2 || rc.receptions("N2") != 0 {
		t.Fatalf("next pass delivered %d; N1 %d, N2 %d receptions; want N1 again, alone", n,
			rc.receptions("N1"), rc.receptions("N2"))
	}
	if n := e.runOnce(w); n != 1 || rc.receptions("N2") != 1 {
		t.Fatalf("then N2: delivered %d, receptions %d", n, rc.receptions("N2"))
	}
}
