package trade

import (
	"testing"

	"zhifu"
)

var (
	statuses = []Status{WaitBuyerPay, WaitSellerSendGoods, WaitBuyerConfirmGoods, Success, Finished, Closed}
	events   = []Event{Pay, Close, Ship, Confirm, Refund, FullRefund, WindowEnd}
	modes    = []Mode{Instant, Escrow}
)

// TestPaths walks the paths API.md describes.
func TestPaths(t *testing.T) {
	paths := []struct {
		mode   Mode
		events []Event
		want   Status
	}{
		{Escrow, []Event{Pay, Ship, Confirm}, Finished},
		{Escrow, []Event{Pay, FullRefund}, Closed},
		{Escrow, []Event{Pay, Ship, Refund, Refund, FullRefund}, Closed},
		{Escrow, []Event{Close}, Closed},
		{Instant, []Event{Pay, Refund, WindowEnd}, Finished},
		{Instant, []Event{Pay, FullRefund}, Closed},
	}
	for _, p := range paths {
		s := WaitBuyerPay
		for _, ev := range p.events {
			next, code := Next(p.mode, s, ev)
			if code != "" {
				t.Fatalf("%s %v: %s from %s refused with %s", p.mode, p.events, ev, s, code)
			}
			s = next
		}
		if s != p.want {
			t.Errorf("%s %v: ended %s, want %s", p.mode, p.events, s, p.want)
		}
	}
}

// TestEveryMove checks every (mode, status, event): final statuses never
// move, refused moves keep the status and name the right code.
func TestEveryMove(t *testing.T) {
	for _, m := range modes {
		for _, s := range statuses {
			for _, ev := range events {
				next, code := Next(m, s, ev)
				if s.Final() && code == "" {
					t.Errorf("%s %s --%s--> %s: a final status moved", m, s, ev, next)
				}
				if code != "" && next != s {
					t.Errorf("%s %s --%s--> refused but status changed to %s", m, s, ev, next)
				}
				switch {
				case code == "":
				case s == Closed && code != zhifu.TradeHasClose:
					t.Errorf("%s %s --%s--> %s, want TRADE_HAS_CLOSE", m, s, ev, code)
				case s != Closed && ev == Pay && code != zhifu.TradeHasSuccess:
					t.Errorf("%s %s --%s--> %s, want TRADE_HAS_SUCCESS", m, s, ev, code)
				}
				if m == Instant && (ev == Ship || ev == Confirm) && code == "" {
					t.Errorf("instant trade accepted %s", ev)
				}
			}
		}
	}
}
