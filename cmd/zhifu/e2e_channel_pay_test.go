package main

import (
	"context"
	"testing"
	"time"

	"zhifu/banksim"
)

// Card payments of trades: by card, by balance plus card, and what happens
// when the bank's money arrives after the trade no longer wants it.

// cardToken reads the bank's token of a bound card, to ask the bank for
// the card's balance.
func (e *chEnv) cardToken(t *testing.T, cardID string) string {
	t.Helper()
	var tok string
	if err := e.m.store.Reader().QueryRow(context.Background(), `SELECT card_token FROM cards WHERE card_id = ?`,
		cardID).Scan(&tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// cardBalance is the card's balance at its bank, in fen.
func (e *chEnv) cardBalance(t *testing.T, bank, cardID string) int64 {
	t.Helper()
	b, ok, err := e.banks.CardBalance(bank, e.cardToken(t, cardID))
	if err != nil || !ok {
		t.Fatalf("card balance: %v %v", ok, err)
	}
	return b
}

// transferAmounts reads the ledger transfers with the ids, by id.
func (e *chEnv) transferAmounts(t *testing.T, ids ...string) map[string]int64 {
	t.Helper()
	trs, err := e.m.store.LookupTransfers(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64, len(trs))
	for _, tr := range trs {
		out[tr.ID] = tr.Amount
	}
	return out
}

// payTrade pays as u and returns the status and the trade (or error).
func (e *chEnv) payTrade(t *testing.T, u *chUser, tradeNo string, body map[string]string) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	s := e.bearer(u.token, "POST", "/v1/trades/"+tradeNo+"/pay", body, &out)
	return s, out
}

// tradeTopups lists u's top-ups for the trade.
func (e *chEnv) tradeTopups(t *testing.T, u *chUser, tradeNo string) []map[string]any {
	t.Helper()
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if s := e.bearer(u.token, "GET", "/v1/topups?trade_no="+tradeNo, nil, &list); s != 200 {
		t.Fatalf("top-ups of %s: %d", tradeNo, s)
	}
	return list.Data
}

// refunds lists u's automatic refunds.
func (e *chEnv) refunds(t *testing.T, u *chUser) []map[string]any {
	t.Helper()
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if s := e.bearer(u.token, "GET", "/v1/withdrawals", nil, &list); s != 200 {
		t.Fatalf("withdrawals: %d", s)
	}
	var out []map[string]any
	for _, w := range list.Data {
		if w["kind"] == "refund" {
			out = append(out, w)
		}
	}
	return out
}

func TestChannelCardPay(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		w := newTrWorld(t, e.env)
		buyers := e.newUsers(t, "buyer", 5, []string{"ICBC", "CMB"}, "")
		deposits, spent := map[string]int64{}, map[string]int64{}
		const total = int64(100_00)
		start := map[string]int64{}
		for _, b := range buyers {
			for bank, id := range b.cards {
				start[id] = e.cardBalance(t, bank, id)
			}
		}

		t.Run("card", func(t *testing.T) {
			b := buyers[0]
			no := w.mustCreate(nil)
			s, tr := e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["CMB"]})
			if s != 200 || tr["status"] != "WAIT_BUYER_PAY" || tr["trade_no"] != no {
				t.Fatalf("pay by card: %d %v", s, tr)
			}
			if p, _ := tr["payment"].(map[string]any); p == nil || p["status"] != "PROCESSING" || p["bank"] != "CMB" ||
				p["card_amount"] != "100.00" || p["payment_id"] == "" {
				t.Fatalf("pay by card: payment %v", tr["payment"])
			}
			e.settle(t, 10*time.Second, time.Minute)
			if got := w.get(no); got["status"] != "TRADE_SUCCESS" || got["buyer_id"] != b.id {
				t.Fatalf("trade after the bank: %v", got)
			}
			if tps := e.tradeTopups(t, b, no); len(tps) != 1 || tps[0]["status"] != "SUCCESS" || tps[0]["bank"] != "CMB" {
				t.Fatalf("card payment: %v", tps)
			}
			spent[b.id] += total
			if got := e.cardBalance(t, "CMB", b.cards["CMB"]); got != start[b.cards["CMB"]]-total {
				t.Errorf("card debited %d, want %d", start[b.cards["CMB"]]-got, total)
			}
			// Paying again: the trade is paid.
			s, out := e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["ICBC"]})
			wantStatus(t, "pay a paid trade by card", s, out, 409, "TRADE_HAS_SUCCESS")
		})

		t.Run("balance+card", func(t *testing.T) {
			b := buyers[1]
			w.fund(trUser{id: b.id}, "30.00")
			deposits[b.id] += 30_00
			no := w.mustCreate(nil)
			s, tr := e.payTrade(t, b, no, map[string]string{"method": "balance+card"})
			if s != 200 || tr["status"] != "WAIT_BUYER_PAY" {
				t.Fatalf("pay by balance+card: %d %v", s, tr)
			}
			// The balance part was frozen before the bank heard of the
			// card part: the hold is on the ledger when the answer comes.
			// (The balances themselves are not read now: the bank may
			// already have answered and the trade be paid.)
			p, _ := tr["payment"].(map[string]any)
			id, _ := p["payment_id"].(string)
			if held := e.transferAmounts(t, "tp:"+id+":hold"); held["tp:"+id+":hold"] != 30_00 {
				t.Fatalf("balance part of payment %q frozen: %v", id, held)
			}
			if avail, _ := idBalance(t, e.env, b.idUser); avail != "0.00" {
				t.Errorf("while the card is charged: available %s", avail)
			}
			e.settle(t, 10*time.Second, time.Minute)
			if got := w.get(no); got["status"] != "TRADE_SUCCESS" {
				t.Fatalf("trade: %v", got)
			}
			// Paid: the hold released into the payment, nothing frozen.
			if moved := e.transferAmounts(t, "tp:"+id+":release"); moved["tp:"+id+":release"] != 30_00 {
				t.Errorf("hold of payment %s released: %v", id, moved)
			}
			if avail, frozen := idBalance(t, e.env, b.idUser); avail != "0.00" || frozen != "0.00" {
				t.Errorf("after the payment: available %s frozen %s", avail, frozen)
			}
			tps := e.tradeTopups(t, b, no)
			if len(tps) != 1 || tps[0]["amount"] != "70.00" || tps[0]["status"] != "SUCCESS" {
				t.Fatalf("card part: %v", tps)
			}
			spent[b.id] += total
			// A balance that covers the trade pays from the balance alone.
			w.fund(trUser{id: b.id}, "100.00")
			deposits[b.id] += total
			no2 := w.mustCreate(nil)
			if s, tr := e.payTrade(t, b, no2, map[string]string{"method": "balance+card"}); s != 200 || tr["status"] != "TRADE_SUCCESS" {
				t.Fatalf("balance+card with enough balance: %d %v", s, tr)
			}
			spent[b.id] += total
		})

		// From here the banks answer later (the outcome comes by callback),
		// so the buyer can do something else meanwhile.
		for _, bank := range []string{"ICBC", "CMB"} {
			if err := e.banks.SetScenario(bank, banksim.Scenario{SettleDelayMs: 300}); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("paid by balance meanwhile", func(t *testing.T) {
			b := buyers[2]
			w.fund(trUser{id: b.id}, "100.00")
			deposits[b.id] += total
			no := w.mustCreate(nil)
			if s, tr := e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["ICBC"]}); s != 200 || tr["status"] != "WAIT_BUYER_PAY" {
				t.Fatalf("pay by card: %d %v", s, tr)
			}
			// Like the mother who saw nothing happen and paid again.
			if s, tr := e.payTrade(t, b, no, map[string]string{"method": "balance"}); s != 200 || tr["status"] != "TRADE_SUCCESS" {
				t.Fatalf("pay by balance: %d %v", s, tr)
			}
			spent[b.id] += total
			e.settle(t, 10*time.Second, 5*time.Minute)
			rs := e.refunds(t, b)
			tps := e.tradeTopups(t, b, no)
			if len(tps) != 1 || tps[0]["status"] != "SUCCESS" || len(rs) != 1 || rs[0]["status"] != "SUCCESS" ||
				rs[0]["amount"] != "100.00" || rs[0]["source_topup_id"] != tps[0]["topup_id"] || rs[0]["reason"] != "TRADE_HAS_SUCCESS" {
				t.Fatalf("late card payment: top-ups %v refunds %v", tps, rs)
			}
			if got := e.cardBalance(t, "ICBC", b.cards["ICBC"]); got != start[b.cards["ICBC"]] {
				t.Errorf("card is %d short after the refund", start[b.cards["ICBC"]]-got)
			}
			if got := w.get(no); got["status"] != "TRADE_SUCCESS" || got["buyer_pay_amount"] != "100.00" {
				t.Errorf("trade paid once: %v", got)
			}
		})

		t.Run("double debit", func(t *testing.T) {
			b := buyers[3]
			no := w.mustCreate(nil)
			if s, tr := e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["ICBC"]}); s != 200 {
				t.Fatalf("first card: %d %v", s, tr)
			}
			// The same card again while the bank works: the same payment.
			e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["ICBC"]})
			if tps := e.tradeTopups(t, b, no); len(tps) != 1 {
				t.Fatalf("paying twice with one card made %d debits", len(tps))
			}
			// Another card: the bank takes the money twice.
			if s, tr := e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["CMB"]}); s != 200 {
				t.Fatalf("second card: %d %v", s, tr)
			}
			e.settle(t, 10*time.Second, 5*time.Minute)
			tps := e.tradeTopups(t, b, no)
			rs := e.refunds(t, b)
			if len(tps) != 2 || tps[0]["status"] != "SUCCESS" || tps[1]["status"] != "SUCCESS" || len(rs) != 1 || rs[0]["status"] != "SUCCESS" {
				t.Fatalf("double debit: top-ups %v refunds %v", tps, rs)
			}
			spent[b.id] += total
			out := start[b.cards["ICBC"]] - e.cardBalance(t, "ICBC", b.cards["ICBC"]) +
				start[b.cards["CMB"]] - e.cardBalance(t, "CMB", b.cards["CMB"])
			if out != total {
				t.Errorf("the cards paid %d in all, want %d", out, total)
			}
			if got := w.get(no); got["status"] != "TRADE_SUCCESS" || got["buyer_pay_amount"] != "100.00" {
				t.Errorf("trade paid once: %v", got)
			}
		})

		t.Run("closed meanwhile", func(t *testing.T) {
			b := buyers[4]
			no := w.mustCreate(map[string]any{"timeout_express": "90s"})
			if s, tr := e.payTrade(t, b, no, map[string]string{"method": "card", "card_id": b.cards["CMB"]}); s != 200 {
				t.Fatalf("pay by card: %d %v", s, tr)
			}
			if s, tr := w.move(no, "close", nil); s != 200 || tr["status"] != "TRADE_CLOSED" {
				t.Fatalf("close: %d %v", s, tr)
			}
			e.settle(t, 10*time.Second, 5*time.Minute)
			if rs := e.refunds(t, b); len(rs) != 1 || rs[0]["status"] != "SUCCESS" || rs[0]["reason"] != "TRADE_HAS_CLOSE" {
				t.Fatalf("card payment of a closed trade: %v", rs)
			}
			if got := e.cardBalance(t, "CMB", b.cards["CMB"]); got != start[b.cards["CMB"]] {
				t.Errorf("card is %d short", start[b.cards["CMB"]]-got)
			}
		})
		e.verify(t, buyers, deposits, spent)
	})
}
