package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"
)

// A receiver can order what it gets: every notification carries its
// event's time and its trade's sequence number (1, 2, 3…, gap-free), and a
// trade's first attempts go out in that order; a failed first attempt is
// retried later, after newer ones, and the sequence tells.

// TestNotifyOrderFields runs escrow trades through their moves quickly,
// with every trade's first notification refused once.
func TestNotifyOrderFields(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		rc := newNotifyReceiver(t)
		rc.respond = func(n nrNote) (int, string) {
			if n.Sequence == 1 && n.Reception == 1 {
				return http.StatusServiceUnavailable, "busy"
			}
			return http.StatusOK, "success"
		}
		w := newTrWorld(t, e)
		w.mk = w.newMerchant(w.seller, rc.URL())
		buyer := w.user("nobuyer")
		const trades = 6
		w.fund(buyer, "600.00")
		var nos []string
		for range trades {
			nos = append(nos, w.mustCreate(map[string]any{"mode": "escrow"}))
		}
		// Each trade: paid, partly refunded, shipped, finished: four
		// notifications, made as fast as the API takes them.
		for _, no := range nos {
			if s, out := w.pay(buyer, no); s != http.StatusOK {
				t.Fatalf("pay: %d %v", s, out)
			}
			if s, out := w.move(no, "refunds", map[string]string{"refund_amount": "1.00",
				"out_request_no": fmt.Sprintf("r%d", trSeq.Add(1))}); s != http.StatusOK && s != http.StatusCreated {
				t.Fatalf("refund: %d %v", s, out)
			}
			if s, out := w.move(no, "ship", map[string]string{}); s != http.StatusOK {
				t.Fatalf("ship: %d %v", s, out)
			}
			var out map[string]any
			if s := w.bearer(buyer.token, "POST", "/v1/trades/"+no+"/confirm", nil, &out); s != http.StatusOK {
				t.Fatalf("confirm: %d %v", s, out)
			}
		}
		const perTrade = 4
		firsts := func(notes []nrNote) int {
			n := 0
			for _, x := range notes {
				if x.Reception == 1 {
					n++
				}
			}
			return n
		}
		rc.waitNotes("every first attempt", func(n []nrNote) bool { return firsts(n) == trades*perTrade })
		// The refused first notifications come again 15 s later, after
		// the newer ones.
		e.clock.Advance(15 * time.Second)
		notes := rc.waitNotes("the retries", func(n []nrNote) bool { return len(n) == trades*perTrade+trades })

		wantStatuses := []string{"WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"}
		for _, no := range nos {
			var first, retries []nrNote
			for _, n := range notes {
				if n.TradeNo != no {
					continue
				}
				if n.Overtook != "" {
					t.Errorf("trade %s: %s (sequence %d) started while %s's first attempt was still running",
						no, n.NotifyID, n.Sequence, n.Overtook)
				}
				if n.Reception == 1 {
					first = append(first, n)
				} else {
					retries = append(retries, n)
				}
			}
			if len(first) != perTrade {
				t.Fatalf("trade %s: %d first receptions, want %d", no, len(first), perTrade)
			}
			var last time.Time
			for i, n := range first {
				if n.Sequence != int64(i+1) || n.Status != wantStatuses[i] {
					t.Errorf("trade %s: first reception %d is sequence %d %s, want sequence %d %s",
						no, i+1, n.Sequence, n.Status, i+1, wantStatuses[i])
				}
				at, err := time.Parse(time.RFC3339, n.EventTime)
				if err != nil || at.Location() != time.UTC || n.EventTime[len(n.EventTime)-1] != 'Z' {
					t.Errorf("trade %s: event_time %q, want RFC 3339 UTC", no, n.EventTime)
					continue
				}
				if at.Before(last) {
					t.Errorf("trade %s: event_time %s before the previous %s", no, at, last)
				}
				last = at
			}
			if len(retries) != 1 || retries[0].NotifyID != first[0].NotifyID || retries[0].Sequence != 1 {
				t.Errorf("trade %s: retries %+v, want the first notification (sequence 1) once more", no, retries)
			}
		}
		// The outbox holds nothing else: no sequence is skipped or repeated.
		for _, no := range nos {
			if got := len(e.outbox(no)); got != perTrade {
				t.Errorf("trade %s: %d notifications in the outbox, want %d", no, got, perTrade)
			}
		}
	})
}

// TestNotifyOrderGateway: gateway trades keep Alipay's fields (notify_time,
// no zhifu extras) and their first attempts go out in order as well.
func TestNotifyOrderGateway(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		rc := newNotifyReceiver(t)
		w := newTrWorld(t, e)
		buyer := w.user("nogwbuyer")
		w.fund(buyer, "100.00")
		app := gwNewApp(t, w, w.seller, rc.URL())
		const trades = 4
		var outs []string
		for range trades {
			out := fmt.Sprintf("nog%d", trSeq.Add(1))
			outs = append(outs, out)
			pr, err := app.client.TradePay(ctx, alipay.TradePay{Trade: alipay.Trade{OutTradeNo: out, Subject: "Tea",
				TotalAmount: "5.00"}, Scene: "bar_code", AuthCode: gwPaycode(t, w, buyer)})
			if err != nil || !pr.IsSuccess() {
				t.Fatalf("pay: %v %+v", err, pr)
			}
			for i, amount := range []string{"1.00", "4.00"} {
				rr, err := app.client.TradeRefund(ctx, alipay.TradeRefund{OutTradeNo: out, RefundAmount: amount,
					OutRequestNo: fmt.Sprintf("%s-r%d", out, i)})
				if err != nil || !rr.IsSuccess() {
					t.Fatalf("refund: %v %+v", err, rr)
				}
			}
		}
		notes := rc.waitNotes("every notification", func(n []nrNote) bool { return len(n) == 3*trades })
		for _, out := range outs {
			var got []nrNote
			for _, n := range notes {
				if n.Form.Get("out_trade_no") == out {
					got = append(got, n)
				}
			}
			want := []struct{ status, refund string }{{"TRADE_SUCCESS", ""}, {"TRADE_SUCCESS", "1.00"}, {"TRADE_CLOSED", "5.00"}}
			if len(got) != len(want) {
				t.Fatalf("%s: %d notifications, want %d", out, len(got), len(want))
			}
			for i, n := range got {
				if n.Overtook != "" {
					t.Errorf("%s: %s started while %s's first attempt was still running", out, n.NotifyID, n.Overtook)
				}
				if n.Status != want[i].status || n.Form.Get("refund_fee") != want[i].refund {
					t.Errorf("%s: notification %d is %s refund_fee %q, want %s %q", out, i+1, n.Status,
						n.Form.Get("refund_fee"), want[i].status, want[i].refund)
				}
				if n.Form.Get("notify_time") == "" {
					t.Errorf("%s: no notify_time: %v", out, n.Form)
				}
				var keys []string
				for k := range n.Form {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					if k == "sequence" || k == "event_time" {
						t.Errorf("%s: Alipay's format carries %q: %v", out, k, keys)
					}
				}
			}
		}
	})
}
