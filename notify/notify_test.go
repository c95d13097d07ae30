package notify_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu/notify"
)

const secret = "sk_test_7d1c0e9b4a6f"

// The schedule keeps API.md's promise: at least 8 attempts over at least
// 25 hours, with gaps that never shrink.
func TestRetryScheduleCoversAPIPromise(t *testing.T) {
	s := notify.RetrySchedule()
	if notify.AttemptsMax < 8 || notify.AttemptsMax != len(s)+1 {
		t.Fatalf("AttemptsMax = %d with %d gaps, want at least 8 and gaps+1", notify.AttemptsMax, len(s))
	}
	var total time.Duration
	for i, d := range s {
		if d <= 0 || (i > 0 && d < s[i-1]) {
			t.Errorf("gap %d = %v after %v: gaps must grow", i, d, s[max(i-1, 0)])
		}
		total += d
	}
	if total < 25*time.Hour {
		t.Errorf("first to last attempt spans %v, want at least 25h", total)
	}
	s[0] = time.Hour
	if notify.RetrySchedule()[0] == time.Hour {
		t.Error("RetrySchedule returned the schedule itself, not a copy")
	}
}

func TestDeliveredOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		cases := []struct {
			name   string
			status int
			body   string
		}{
			{"204 empty", http.StatusNoContent, ""},
			{"200 success", http.StatusOK, "success\n"},
			{"200 any body", http.StatusOK, `{"received":true}`},
			// API.md: "2xx or the body success"; either suffices.
			{"500 success", http.StatusInternalServerError, " success "},
		}
		w := e.worker(nil, notify.Config{})
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				m := fmt.Sprintf("m%010d", i+1)
				e.merchant(m, secret+m)
				rc := newReceiver(t, secret+m, e.clock)
				rc.respond = func(int, *http.Request) (int, string) { return c.status, c.body }
				id := "N-once-" + m
				e.enqueue(id, m, rc.URL())
				if n := e.runOnce(w); n != 1 {
					t.Fatalf("RunOnce delivered %d, want 1", n)
				}
				r := e.row(id)
				if r.Status != "delivered" || r.Attempts != 1 || !r.DeliveredAt.Equal(e.clock.Now()) || r.LeaseUntil != 0 {
					t.Errorf("row = %+v, want delivered at %v after 1 attempt", r, e.clock.Now())
				}
				// Nothing more arrives, however long we wait.
				e.clock.Advance(48 * time.Hour)
				if n := e.runOnce(w); n != 0 {
					t.Errorf("second pass delivered %d, want 0", n)
				}
				if got := rc.receptions(id); got != 1 {
					t.Errorf("receptions = %d, want 1", got)
				}
			})
		}
	})
}

// A merchant that fails three times and then accepts sees attempts exactly
// on the schedule, and nothing after it accepted.
func TestRetriesFollowSchedule(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		const failures = 3
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		rc.respond = func(n int, _ *http.Request) (int, string) {
			if n <= failures {
				return http.StatusBadGateway, "upstream down"
			}
			return http.StatusOK, "success"
		}
		w := e.worker(nil, notify.Config{})
		e.enqueue("N1", "m0000000001", rc.URL())
		schedule := notify.RetrySchedule()
		for i := range failures {
			if n := e.runOnce(w); n != 0 {
				t.Fatalf("attempt %d: delivered %d, want 0", i+1, n)
			}
			r := e.row("N1")
			want := e.clock.Now().Add(schedule[i])
			if r.Status != "pending" || r.Attempts != i+1 || !r.Next.Equal(want) || r.LastError != "http 502: upstream down" {
				t.Fatalf("after attempt %d: row = %+v, want pending, next %v, last_error %q", i+1, r, want, "http 502: upstream down")
			}
			// Not a moment early.
			e.clock.Set(want.Add(-time.Nanosecond))
			if n := e.runOnce(w); n != 0 || rc.receptions("N1") != i+1 {
				t.Fatalf("before %v: %d receptions, want %d", want, rc.receptions("N1"), i+1)
			}
			e.clock.Set(want)
		}
		if n := e.runOnce(w); n != 1 {
			t.Fatalf("final attempt delivered %d, want 1", n)
		}
		if r := e.row("N1"); r.Status != "delivered" || r.Attempts != failures+1 || r.LastError != "" {
			t.Errorf("row = %+v, want delivered after %d attempts", r, failures+1)
		}
		for _, d := range schedule {
			e.clock.Advance(d)
			e.runOnce(w)
		}
		if got := rc.receptions("N1"); got != failures+1 {
			t.Errorf("receptions = %d, want %d", got, failures+1)
		}
	})
}

// A merchant that never accepts gets every attempt of the schedule, over
// more than 25 hours, and then the notification is failed.
func TestGivesUpAfterSchedule(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		// The merchant echoes what it got: none of it may reach a log or
		// last_error.
		rc.respond = func(_ int, r *http.Request) (int, string) {
			return http.StatusServiceUnavailable, "down; you sent " + r.Header.Get("Zhifu-Signature")
		}
		w := e.worker(nil, notify.Config{})
		e.enqueue("N1", "m0000000001", rc.URL())
		first := e.clock.Now()
		var times []time.Time
		for range notify.AttemptsMax + 2 {
			times = append(times, e.clock.Now())
			e.runOnce(w)
			r := e.row("N1")
			if r.Status != "pending" {
				break
			}
			if want := e.clock.Now().Add(notify.RetrySchedule()[r.Attempts-1]); !r.Next.Equal(want) {
				t.Fatalf("after attempt %d: next %v, want %v", r.Attempts, r.Next, want)
			}
			e.clock.Set(r.Next)
		}
		r := e.row("N1")
		if r.Status != "failed" || r.Attempts != notify.AttemptsMax || rc.receptions("N1") != notify.AttemptsMax {
			t.Fatalf("row = %+v with %d receptions, want failed after %d attempts", r, rc.receptions("N1"), notify.AttemptsMax)
		}
		if span := times[len(times)-1].Sub(first); len(times) < 8 || span < 25*time.Hour {
			t.Errorf("%d attempts over %v, want at least 8 over at least 25h", len(times), span)
		}
		if !strings.HasPrefix(r.LastError, "http 503: down; you sent t=") || !strings.Contains(r.LastError, "[redacted]") {
			t.Errorf("last_error = %q, want the status and the answer with the signature redacted", r.LastError)
		}
		rc.mu.Lock()
		sig := rc.lastSig
		rc.mu.Unlock()
		for _, s := range []string{secret, sig} {
			if strings.Contains(r.LastError, s) || strings.Contains(e.logs.String(), s) {
				t.Errorf("secret or signature %q in last_error or logs:\n%s", s, e.logs.String())
			}
		}
		e.clock.Advance(72 * time.Hour)
		e.runOnce(w)
		if got := rc.receptions("N1"); got != notify.AttemptsMax {
			t.Errorf("receptions after giving up = %d, want %d", got, notify.AttemptsMax)
		}
		if !strings.Contains(e.logs.String(), "outcome=failed") {
			t.Errorf("no log line for the final failure:\n%s", e.logs.String())
		}
	})
}

// While one merchant's endpoints hang, holding all of its slots, another
// merchant's notifications still go out; the hanging merchant holds no
// more than MerchantInFlightMax slots, and none of its endpoints more than
// DestinationInFlightMax.
func TestSlowMerchantDoesNotDelayOthers(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		e.merchant("m0000000002", secret+"2")
		var slow []*receiver
		for range 3 {
			rc := newReceiver(t, secret, e.clock)
			rc.block = make(chan struct{})
			slow = append(slow, rc)
		}
		shareArrivals(slow...)
		fast := newReceiver(t, secret+"2", e.clock)
		obs := newObserver()
		w := e.worker(nil, notify.Config{Observe: obs.observe})
		const perURL = 2 * notify.DestinationInFlightMax
		for i := range perURL {
			for j, rc := range slow {
				e.enqueue(fmt.Sprintf("S%d-%02d", j, i), "m0000000001", rc.URL())
			}
		}
		e.run(w)
		waitAll(t, notify.MerchantInFlightMax, slow...)

		e.enqueue("F1", "m0000000002", fast.URL())
		l := obs.waitFor(t, "the fast merchant's delivery", func(l []notify.Attempt) bool {
			return count(l, notify.Delivered, func(id string) bool { return id == "F1" }) == 1
		})
		held := 0
		for i, rc := range slow {
			held += rc.current()
			if got := rc.maxInFlight(); got > notify.DestinationInFlightMax {
				t.Errorf("slow endpoint %d had %d requests at once, want at most %d", i, got, notify.DestinationInFlightMax)
			}
		}
		if held != notify.MerchantInFlightMax {
			t.Errorf("the slow merchant holds %d requests, want %d", held, notify.MerchantInFlightMax)
		}
		if got := count(l, notify.Delivered, nil); got != 1 {
			t.Errorf("%d delivered while the slow merchant hangs, want only F1", got)
		}

		for _, rc := range slow {
			rc.unblock()
		}
		obs.waitFor(t, "every notification", func(l []notify.Attempt) bool {
			return count(l, notify.Delivered, nil) == len(slow)*perURL+1
		})
		for i, rc := range slow {
			if got := rc.total(); got != perURL {
				t.Errorf("slow endpoint %d got %d requests, want %d", i, got, perURL)
			}
		}
	})
}

// One merchant's hanging endpoint holds only DestinationInFlightMax of its
// slots: the merchant's notifications to its other URLs still go out.
func TestHangingDestinationDoesNotDelayMerchantsOtherURLs(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		hanging := newReceiver(t, secret, e.clock)
		hanging.block = make(chan struct{})
		healthy := newReceiver(t, secret, e.clock)
		obs := newObserver()
		w := e.worker(nil, notify.Config{Observe: obs.observe})
		const hangingCount = 3 * notify.DestinationInFlightMax
		for i := range hangingCount {
			e.enqueue(fmt.Sprintf("H%02d", i), "m0000000001", hanging.URL())
		}
		e.run(w)
		hanging.waitArrivals(notify.DestinationInFlightMax)
		for i := range notify.MerchantInFlightMax {
			e.enqueue(fmt.Sprintf("OK%d", i), "m0000000001", healthy.URL())
		}
		obs.waitFor(t, "the healthy URL's deliveries", func(l []notify.Attempt) bool {
			return count(l, notify.Delivered, func(id string) bool { return strings.HasPrefix(id, "OK") }) == notify.MerchantInFlightMax
		})
		if got := hanging.maxInFlight(); got != notify.DestinationInFlightMax {
			t.Errorf("the hanging URL had %d requests at once, want %d", got, notify.DestinationInFlightMax)
		}
		if got := hanging.total(); got != notify.DestinationInFlightMax {
			t.Errorf("the hanging URL got %d requests, want %d: more than its bound", got, notify.DestinationInFlightMax)
		}
	})
}

// Several merchants' notifications to one destination share its bound.
func TestDestinationBoundAcrossMerchants(t *testing.T) {
	e := newEnv(t, "sqlite")
	rc := newReceiver(t, secret, e.clock)
	rc.block = make(chan struct{})
	obs := newObserver()
	w := e.worker(nil, notify.Config{Observe: obs.observe})
	const merchants = 4
	for m := range merchants {
		id := fmt.Sprintf("m%010d", m+1)
		e.merchant(id, secret)
		for i := range notify.DestinationInFlightMax {
			e.enqueue(fmt.Sprintf("N%d-%d", m, i), id, rc.URL())
		}
	}
	e.run(w)
	rc.waitArrivals(notify.DestinationInFlightMax)
	// A pass of the worker with everything else due claims nothing more.
	if n, err := w.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("RunOnce = %d, %v; want 0 while the destination is full", n, err)
	}
	if got := rc.total(); got != notify.DestinationInFlightMax {
		t.Errorf("the destination got %d requests at once, want %d", got, notify.DestinationInFlightMax)
	}
	rc.unblock()
	obs.waitFor(t, "every notification", func(l []notify.Attempt) bool {
		return count(l, notify.Delivered, nil) == merchants*notify.DestinationInFlightMax
	})
	if got := rc.maxInFlight(); got > notify.DestinationInFlightMax {
		t.Errorf("%d requests at once, want at most %d", got, notify.DestinationInFlightMax)
	}
}

// waitAll waits until n requests in all have arrived at the receivers,
// which must share one arrival channel (shareArrivals).
func waitAll(t *testing.T, n int, rcs ...*receiver) {
	t.Helper()
	deadline := time.After(waitMax)
	for {
		got := 0
		for _, rc := range rcs {
			got += rc.total()
		}
		if got >= n {
			return
		}
		select {
		case <-rcs[0].arrived:
		case <-deadline:
			t.Fatalf("waited %v for %d arrivals; %d so far", waitMax, n, got)
		}
	}
}

// shareArrivals makes the receivers report arrivals on one channel, before
// any request reaches them.
func shareArrivals(rcs ...*receiver) {
	ch := make(chan string, 4096)
	for _, rc := range rcs {
		rc.arrived = ch
	}
}

// Two workers on one database, like two processes, never deliver one
// notification twice: the receiver fails the test on any overlap, and the
// manual clock never lets a lease expire.
func TestTwoWorkersDeliverEachOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		const merchants, perMerchant = 4, 60
		rc := newReceiver(t, secret, e.clock)
		for m := range merchants {
			id := fmt.Sprintf("m%010d", m+1)
			e.merchant(id, secret)
			for i := range perMerchant {
				e.enqueue(fmt.Sprintf("N-%d-%03d", m, i), id, rc.URL())
			}
		}
		obs := newObserver()
		workers := []*notify.Worker{
			e.worker(nil, notify.Config{Observe: obs.observe}),
			e.worker(e.open(), notify.Config{Observe: obs.observe}),
		}
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() {
				for ctx := context.Background(); ; {
					if _, err := w.RunOnce(ctx); err != nil {
						t.Error(err)
						return
					}
					n, err := w.Pending(ctx)
					if err != nil || n == 0 {
						if err != nil {
							t.Error(err)
						}
						return
					}
				}
			})
		}
		wg.Wait()
		if got := count(obs.all(), notify.Delivered, nil); got != merchants*perMerchant {
			t.Errorf("%d delivered, want %d", got, merchants*perMerchant)
		}
		for m := range merchants {
			for i := range perMerchant {
				if id := fmt.Sprintf("N-%d-%03d", m, i); rc.receptions(id) != 1 {
					t.Errorf("%s received %d times, want once", id, rc.receptions(id))
				}
			}
		}
	})
}

// A row leased by another worker is left alone until the lease expires.
func TestLeaseKeepsOthersAway(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		e.enqueue("N1", "m0000000001", rc.URL())
		lease := e.clock.Now().Add(30 * time.Second)
		if _, err := e.store.Reader().Exec(context.Background(),
			`UPDATE notifications SET lease_until = ? WHERE notify_id = ?`, lease.UnixNano(), "N1"); err != nil {
			t.Fatal(err)
		}
		w := e.worker(nil, notify.Config{})
		e.clock.Set(lease.Add(-time.Nanosecond))
		if n := e.runOnce(w); n != 0 || rc.receptions("N1") != 0 {
			t.Fatalf("delivered a row another worker holds")
		}
		e.clock.Set(lease)
		if n := e.runOnce(w); n != 1 || rc.receptions("N1") != 1 {
			t.Fatalf("after the lease: delivered %d, receptions %d, want 1 and 1", n, rc.receptions("N1"))
		}
	})
}

// Cancelling Run stops it promptly, even with a delivery hanging; the cut
// attempt is not counted and its row is free for the next worker.
func TestRunStopsOnCancel(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		rc.block = make(chan struct{})
		obs := newObserver()
		w := e.worker(nil, notify.Config{Observe: obs.observe})
		e.enqueue("N1", "m0000000001", rc.URL())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Run(ctx)
		}()
		rc.waitArrivals(1)
		cancel()
		select {
		case <-done:
		case <-time.After(waitMax):
			t.Fatalf("Run did not return within %v of cancel", waitMax)
		}
		if r := e.row("N1"); r.Status != "pending" || r.Attempts != 0 || r.LeaseUntil != 0 {
			t.Errorf("row = %+v, want pending, uncounted, unleased", r)
		}
		if got := count(obs.all(), notify.Interrupted, nil); got != 1 {
			t.Errorf("%d interrupted attempts observed, want 1", got)
		}
		// Another worker picks it up at once.
		rc.unblock()
		if n := e.runOnce(e.worker(nil, notify.Config{})); n != 1 {
			t.Errorf("next worker delivered %d, want 1", n)
		}
	})
}

// Run with nothing to do also returns when cancelled.
func TestRunIdleStops(t *testing.T) {
	e := newEnv(t, "sqlite")
	w := e.worker(nil, notify.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(waitMax):
		t.Fatalf("Run did not return within %v of cancel", waitMax)
	}
}

// A redirect is an answer, not an instruction: the notification goes only
// to the registered URL.
func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.merchant("m0000000001", secret)
	elsewhere := newReceiver(t, secret, e.clock)
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL(), http.StatusFound))
	defer redirect.Close()
	e.enqueue("N1", "m0000000001", redirect.URL+"/notify")
	if n := e.runOnce(e.worker(nil, notify.Config{})); n != 0 {
		t.Fatalf("delivered %d, want 0", n)
	}
	if elsewhere.total() != 0 {
		t.Error("the redirect was followed")
	}
	if r := e.row("N1"); r.Status != "pending" || r.Attempts != 1 || !strings.HasPrefix(r.LastError, "http 302") {
		t.Errorf("row = %+v, want one failed attempt with last_error %q", r, "http 302…")
	}
}

func TestUnreachableMerchantRetried(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.merchant("m0000000001", secret)
	gone := httptest.NewServer(http.NotFoundHandler())
	u := gone.URL + "/notify?token=merchant-own-token"
	gone.Close()
	e.enqueue("N1", "m0000000001", u)
	e.runOnce(e.worker(nil, notify.Config{}))
	r := e.row("N1")
	if r.Status != "pending" || r.Attempts != 1 || r.LastError == "" || strings.Contains(r.LastError, "merchant-own-token") {
		t.Errorf("row = %+v, want one failed attempt whose error names no URL", r)
	}
}

func TestUnknownMerchantRetried(t *testing.T) {
	e := newEnv(t, "sqlite")
	rc := newReceiver(t, secret, e.clock)
	e.enqueue("N1", "m0000000404", rc.URL())
	e.runOnce(e.worker(nil, notify.Config{}))
	if r := e.row("N1"); r.Status != "pending" || r.Attempts != 1 || r.LastError != "merchant not found" || rc.total() != 0 {
		t.Errorf("row = %+v, want one failed attempt: merchant not found", r)
	}
}

func TestAlipayFormat(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		answers := []string{"ok", "success"} // Alipay wants exactly "success"; 200 "ok" is a refusal
		rc.respond = func(n int, _ *http.Request) (int, string) { return http.StatusOK, answers[min(n, 2)-1] }
		form := url.Values{"notify_id": {"A1"}, "notify_type": {"trade_status_sync"}, "trade_status": {"TRADE_SUCCESS"},
			"out_trade_no": {"o-1"}, "total_amount": {"12.30"}}
		e.enqueueMsg(notify.Message{NotifyID: "A1", MerchantID: "m0000000001", URL: rc.URL(),
			Format: notify.FormatAlipay, Body: form.Encode()})

		unsigned := e.worker(nil, notify.Config{})
		e.runOnce(unsigned)
		if r := e.row("A1"); r.Status != "pending" || r.Attempts != 1 || r.LastError != "alipay signer not configured" || rc.total() != 0 {
			t.Fatalf("without a signer: row = %+v, receptions %d", r, rc.total())
		}

		var signed []url.Values
		w := e.worker(nil, notify.Config{AlipaySigner: func(f url.Values) (url.Values, error) {
			out := url.Values{}
			for k, v := range f {
				out[k] = v
			}
			out.Set("sign_type", "RSA2")
			out.Set("sign", "c2lnbmVk")
			signed = append(signed, out)
			return out, nil
		}})
		for _, d := range notify.RetrySchedule()[:2] {
			e.clock.Advance(d)
			e.runOnce(w)
		}
		r := e.row("A1")
		if r.Status != "delivered" || r.Attempts != 3 || rc.receptions("A1") != 2 {
			t.Errorf("row = %+v with %d receptions, want delivered on the 3rd attempt, 2nd reception", r, rc.receptions("A1"))
		}
		if len(signed) != 2 || signed[0].Get("out_trade_no") != "o-1" {
			t.Errorf("signer saw %v", signed)
		}
	})
}

func TestPending(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.merchant("m0000000001", secret)
	rc := newReceiver(t, secret, e.clock)
	w := e.worker(nil, notify.Config{})
	for i := range 3 {
		e.enqueue(fmt.Sprintf("N%d", i), "m0000000001", rc.URL())
	}
	if n, err := w.Pending(context.Background()); err != nil || n != 3 {
		t.Fatalf("Pending = %d, %v; want 3", n, err)
	}
	e.runOnce(w)
	if n, err := w.Pending(context.Background()); err != nil || n != 0 {
		t.Fatalf("Pending = %d, %v; want 0", n, err)
	}
}

// If the clock jumps past the lease while an attempt is still running, the
// row looks free, but the worker delivering it does not start it again.
func TestNoSecondAttemptWhileDelivering(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.merchant("m0000000001", secret)
		rc := newReceiver(t, secret, e.clock)
		rc.block = make(chan struct{})
		w := e.worker(nil, notify.Config{})
		e.enqueue("N1", "m0000000001", rc.URL())
		first := make(chan int, 1)
		go func() {
			n, _ := w.RunOnce(context.Background())
			first <- n
		}()
		rc.waitArrivals(1)
		e.clock.Advance(2 * notify.LeaseDuration)
		if n := e.runOnce(w); n != 0 || rc.receptions("N1") != 1 {
			t.Errorf("second pass delivered %d; receptions %d, want 1", n, rc.receptions("N1"))
		}
		rc.unblock()
		select {
		case n := <-first:
			if n != 1 {
				t.Errorf("first pass delivered %d, want 1", n)
			}
		case <-time.After(waitMax):
			t.Fatalf("first pass did not finish within %v", waitMax)
		}
		if r := e.row("N1"); r.Status != "delivered" || r.Attempts != 1 {
			t.Errorf("row = %+v, want delivered after 1 attempt", r)
		}
	})
}
