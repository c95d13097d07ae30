package trade

import (
	"strings"
	"testing"
	"time"

	"zhifu"
	"zhifu/ledger"
)

const testLedger = 156

var (
	t0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seller = zhifu.UserIDOf(1)
	buyer  = payer{num: 2, userID: zhifu.UserIDOf(2)}
)

// sample returns a trade in status st as the service would have left it.
func sample(mode Mode, st Status) *Trade {
	t := &Trade{TradeNo: "20260102" + strings.Repeat("1", 18), OutTradeNo: "o1", MerchantID: "m0000000001",
		SellerID: seller, Mode: mode, Subject: "s", TotalAmount: 10000, Status: st,
		TimeoutExpress: 30 * time.Minute, ConfirmTimeout: 10 * 24 * time.Hour,
		CreatedAt: t0, CloseDue: t0.Add(30 * time.Minute)}
	if Paid(st) || st == Closed {
		t.BuyerID, t.BuyerPayAmount, t.PaidAt = buyer.userID, t.TotalAmount, t0.Add(time.Minute)
	}
	return t
}

// rulesOf applies every rule of the service to t; each returns a change.
func rulesOf(t *Trade, now time.Time) map[string]change {
	return map[string]change{
		"pay":           payChange(t, buyer, now, testLedger),
		"close":         closeChange(t, now),
		"ship":          shipChange(t, "SF", "1", now),
		"confirm":       confirmChange(t, now, testLedger),
		"window_end":    windowEndChange(t, now),
		"refund_part":   refundChange(t, refundRequest{OutRequestNo: "r1", Amount: 1}, nil, now, testLedger),
		"refund_all":    refundChange(t, refundRequest{OutRequestNo: "r1", Amount: t.Paid()}, nil, now, testLedger),
		"refund_exceed": refundChange(t, refundRequest{OutRequestNo: "r1", Amount: t.Paid() + 1}, nil, now, testLedger),
	}
}

// TestFinalStatusesNeverMove checks that no rule of the service moves a
// trade out of TRADE_FINISHED or TRADE_CLOSED, or moves money for one.
func TestFinalStatusesNeverMove(t *testing.T) {
	for _, mode := range modes {
		for _, st := range []Status{Finished, Closed} {
			for name, ch := range rulesOf(sample(mode, st), t0.Add(100*24*time.Hour)) {
				if ch.trade != nil || ch.transfer != nil || ch.refusal == nil {
					t.Errorf("%s %s %s: got trade %v transfer %v refusal %v, want a refusal alone",
						mode, st, name, ch.trade, ch.transfer, ch.refusal)
				}
				if st == Closed && ch.refusal != nil && ch.refusal.Code != zhifu.TradeHasClose {
					t.Errorf("%s %s %s: %s, want TRADE_HAS_CLOSE", mode, st, name, ch.refusal.Code)
				}
			}
		}
	}
}

// TestRulesFollowTheTable checks every rule against trade.Next from every
// status: a refused move changes nothing, an allowed one lands where the
// table says and moves exactly the money its flow in ARCHITECTURE.md says.
func TestRulesFollowTheTable(t *testing.T) {
	events := map[string]Event{"pay": Pay, "close": Close, "ship": Ship, "confirm": Confirm,
		"window_end": WindowEnd, "refund_part": Refund, "refund_all": FullRefund, "refund_exceed": Refund}
	now := t0.Add(time.Minute * 2) // before CloseDue, so pay is a pay
	for _, mode := range modes {
		for _, st := range statuses {
			tr := sample(mode, st)
			for name, ch := range rulesOf(tr, now) {
				want, code := Next(mode, st, events[name])
				if name == "refund_exceed" && code == "" {
					code = zhifu.RefundAmountExceeded
				}
				if name == "pay" && code == "" && tr.BuyerID != "" && tr.BuyerID != buyer.userID {
					code = zhifu.NotFound
				}
				switch {
				case code != "" && (ch.refusal == nil || ch.refusal.Code != code):
					t.Errorf("%s %s %s: refusal %v, want %s", mode, st, name, ch.refusal, code)
				case code != "" && (ch.trade != nil || ch.transfer != nil):
					t.Errorf("%s %s %s: refused but changed something", mode, st, name)
				case code == "" && (ch.refusal != nil || ch.trade == nil || ch.trade.Status != want):
					t.Errorf("%s %s %s: got %v %v, want status %s", mode, st, name, ch.trade, ch.refusal, want)
				case code == "":
					checkMoney(t, mode, st, name, tr, ch)
				}
			}
		}
	}
}

// checkMoney checks the transfer of an allowed move.
func checkMoney(t *testing.T, mode Mode, st Status, name string, before *Trade, ch change) {
	t.Helper()
	sellerWallet, buyerWallet := zhifu.WalletAccountID(1), zhifu.WalletAccountID(2)
	var want *ledger.Transfer
	switch name {
	case "pay":
		credit := sellerWallet
		if mode == Escrow {
			credit = zhifu.EscrowAccountID
		}
		want = &ledger.Transfer{ID: "pay:" + before.TradeNo, DebitAccountID: buyerWallet, CreditAccountID: credit,
			Amount: 10000, Code: zhifu.TransferPayment}
	case "confirm":
		want = &ledger.Transfer{ID: "settle:" + before.TradeNo, DebitAccountID: zhifu.EscrowAccountID,
			CreditAccountID: sellerWallet, Amount: 10000, Code: zhifu.TransferSettle}
	case "refund_part", "refund_all":
		debit := zhifu.EscrowAccountID
		if st == Success {
			debit = sellerWallet
		}
		want = &ledger.Transfer{ID: "refund:" + before.TradeNo + ":r1", DebitAccountID: debit,
			CreditAccountID: buyerWallet, Amount: int64(ch.refund.RefundAmount), Code: zhifu.TransferRefund}
	}
	got := ch.transfer
	if want == nil {
		if got != nil {
			t.Errorf("%s %s %s: moved money %+v, want none", mode, st, name, got)
		}
		return
	}
	want.Ledger = testLedger
	if got == nil || *got != *want {
		t.Errorf("%s %s %s: transfer %+v, want %+v", mode, st, name, got, want)
	}
}

func TestPayRules(t *testing.T) {
	tr := sample(Escrow, WaitBuyerPay)
	if ch := payChange(tr, payer{num: 1, userID: seller}, t0, testLedger); ch.refusal == nil ||
		ch.refusal.Code != zhifu.InvalidRequest {
		t.Errorf("seller paying own trade: %v, want INVALID_REQUEST", ch.refusal)
	}
	named := sample(Instant, WaitBuyerPay)
	named.BuyerID = zhifu.UserIDOf(3)
	if ch := payChange(named, buyer, t0, testLedger); ch.refusal == nil || ch.refusal.Code != zhifu.NotFound {
		t.Errorf("paying a trade named for another buyer: %v, want NOT_FOUND", ch.refusal)
	}
	// At close_due the trade closes instead of being paid.
	ch := payChange(tr, buyer, tr.CloseDue, testLedger)
	if ch.refusal == nil || ch.refusal.Code != zhifu.TradeHasClose || ch.trade == nil ||
		ch.trade.Status != Closed || ch.transfer != nil || !ch.trade.ClosedAt.Equal(tr.CloseDue) {
		t.Errorf("paying at close_due: %+v", ch)
	}
	ch = payChange(sample(Instant, WaitBuyerPay), buyer, t0, testLedger)
	if got := ch.trade.ConfirmDue; !got.Equal(t0.Add(RefundWindow)) {
		t.Errorf("instant trade paid: finishes at %v, want the end of the refund window", got)
	}
	if ch.shortfall != zhifu.BuyerBalanceNotEnough {
		t.Errorf("pay shortfall = %q", ch.shortfall)
	}
}

func TestShipStartsConfirmTimer(t *testing.T) {
	tr := sample(Escrow, WaitSellerSendGoods)
	tr.ConfirmTimeout = 90 * time.Second
	ch := shipChange(tr, "SF", "123", t0)
	if ch.trade.ConfirmDue != t0.Add(90*time.Second) || ch.trade.ShippedAt != t0 || ch.trade.TrackingNo != "123" {
		t.Errorf("shipped: %+v", ch.trade)
	}
}

func TestRefundRules(t *testing.T) {
	tr := sample(Instant, Success)
	tr.RefundedAmount = 4000
	existing := &RefundRecord{TradeNo: tr.TradeNo, OutRequestNo: "r1", RefundAmount: 4000, Status: RefundSuccess}
	if ch := refundChange(tr, refundRequest{OutRequestNo: "r1", Amount: 4000}, existing, t0, testLedger); ch.refusal != nil ||
		ch.trade != nil || ch.transfer != nil || ch.refund != existing {
		t.Errorf("same refund again: %+v, want the existing refund and nothing else", ch)
	}
	if ch := refundChange(tr, refundRequest{OutRequestNo: "r1", Amount: 1}, existing, t0, testLedger); ch.refusal == nil ||
		ch.refusal.Code != zhifu.ContextInconsistent {
		t.Errorf("same out_request_no, other amount: %v", ch.refusal)
	}
	if ch := refundChange(tr, refundRequest{OutRequestNo: "r2", Amount: 6001}, nil, t0, testLedger); ch.refusal == nil ||
		ch.refusal.Code != zhifu.RefundAmountExceeded {
		t.Errorf("over the paid amount: %v", ch.refusal)
	}
	ch := refundChange(tr, refundRequest{OutRequestNo: "r2", Amount: 6000}, nil, t0, testLedger)
	if ch.refusal != nil || ch.trade.Status != Closed || ch.trade.RefundedAmount != 10000 || !ch.trade.ClosedAt.Equal(t0) {
		t.Errorf("last refund: %+v", ch.trade)
	}
	if ch.shortfall != zhifu.BalanceNotEnough {
		t.Errorf("refund from the seller's wallet: shortfall %q", ch.shortfall)
	}
	if ch := refundChange(sample(Escrow, WaitSellerSendGoods), refundRequest{OutRequestNo: "r", Amount: 1}, nil, t0,
		testLedger); ch.shortfall != "" {
		t.Errorf("refund from escrow: shortfall %q, want none (a shortfall there is a bug)", ch.shortfall)
	}
}

func TestConfirmSettlesWhatIsHeld(t *testing.T) {
	tr := sample(Escrow, WaitBuyerConfirmGoods)
	tr.RefundedAmount = 2500
	ch := confirmChange(tr, t0, testLedger)
	if ch.transfer == nil || ch.transfer.Amount != 7500 || ch.trade.Status != Finished {
		t.Errorf("confirm after a partial refund: %+v %+v", ch.transfer, ch.trade)
	}
}

func TestRefundTransferID(t *testing.T) {
	no := "20260102" + strings.Repeat("7", 18)
	short := strings.Repeat("a", 30)
	if got := refundTransferID(no, short); got != "refund:"+no+":"+short {
		t.Errorf("short out_request_no: %q", got)
	}
	long1, long2 := refundTransferID(no, strings.Repeat("a", 31)), refundTransferID(no, strings.Repeat("a", 64))
	for _, id := range []string{long1, long2} {
		if len(id) != ledger.IDLenMax || !strings.HasPrefix(id, "refund:"+no+":~") {
			t.Errorf("long out_request_no: %q (%d bytes)", id, len(id))
		}
	}
	if long1 == long2 {
		t.Error("two long out_request_nos share a transfer id")
	}
}
