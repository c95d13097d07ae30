package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/banksim"
	"zhifu/campaign"
	"zhifu/channel"
	"zhifu/ledger"
)

// End-to-end tests of the payment kinds beside trades and transfers:
// credit-card repayments, paid out to the card's bank like withdrawals,
// and bill payments, paid at once to a biller's wallet; over real HTTP
// against the simulated banks, on both stores.

func TestPaymentKinds(t *testing.T) {
	// Each bank holds 1,000.00 of the platform's money at the start, so a
	// repayment beyond what it holds is refused by the bank.
	o := chOptions{banks: func(c *banksim.Config) { c.SettlementFloat = 1000_00 }}
	forEachChannelStore(t, o, func(t *testing.T, e *chEnv) {
		u := e.newUsers(t, "repayer", 1, []string{"ICBC"}, "")[0]
		card := u.cards["ICBC"]
		var tp map[string]any
		if s := e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "300.00", "card_id": card}, &tp); s != 201 {
			t.Fatalf("top-up: %d %v", s, tp)
		}
		e.settle(t, 10*time.Second, time.Minute)
		idWantBalance(t, e.env, u.idUser, "300.00")
		idDeposit(t, e.env, u.id, "2000.00", "kinds-fund-1")

		// A card repayment leaves the wallet at once and is paid by the bank.
		s, hdr, cr, err := e.do(u.token, "POST", "/v1/card-repayments", map[string]string{"amount": "200.00", "card_id": card}, "repay-1")
		if err != nil || s != 202 || cr["kind"] != "card_repayment" || cr["status"] != "QUEUED" || cr["amount"] != "200.00" ||
			cr["discount_amount"] != "0.00" || cr["payer_amount"] != "200.00" || cr["bank"] != "ICBC" || cr["card_id"] != card {
			t.Fatalf("repayment: %d %v %v", s, cr, err)
		}
		if _, ok := cr["campaign_label"]; ok {
			t.Errorf("repayment without a discount shows a campaign_label: %v", cr)
		}
		okID := cr["repayment_id"].(string)
		s, hdr, again, _ := e.do(u.token, "POST", "/v1/card-repayments", map[string]string{"amount": "200.00", "card_id": card}, "repay-1")
		if s != 202 || hdr.Get("Idempotent-Replayed") != "true" || again["repayment_id"] != okID || again["created_at"] != cr["created_at"] {
			t.Fatalf("repayment retried: %d %v, first %v", s, again, cr)
		}
		if avail, frozen := idBalance(t, e.env, u.idUser); avail != "2100.00" || frozen != "200.00" {
			t.Fatalf("after repaying: available %s frozen %s", avail, frozen)
		}
		// More than the bank holds for the platform: the bank refuses it
		// and the money comes back.
		s, _, bad, _ := e.do(u.token, "POST", "/v1/card-repayments", map[string]string{"amount": "1500.00", "card_id": card}, "")
		if s != 202 {
			t.Fatalf("second repayment: %d %v", s, bad)
		}
		failID := bad["repayment_id"].(string)
		e.settle(t, 10*time.Second, time.Minute)
		var got map[string]any
		if s := e.bearer(u.token, "GET", "/v1/card-repayments/"+okID, nil, &got); s != 200 || got["status"] != "SUCCESS" || got["settled_at"] == nil {
			t.Fatalf("repayment after settling: %d %v", s, got)
		}
		if s := e.bearer(u.token, "GET", "/v1/card-repayments/"+failID, nil, &got); s != 200 || got["status"] != "FAILED" || got["reason"] == nil {
			t.Fatalf("refused repayment: %d %v", s, got)
		}
		if avail, frozen := idBalance(t, e.env, u.idUser); avail != "2100.00" || frozen != "0.00" {
			t.Fatalf("after the refusal: available %s frozen %s", avail, frozen)
		}
		// A repayment is not a withdrawal, nor anyone else's.
		other := e.newUsers(t, "other", 1, []string{"CMB"}, "")[0]
		s = e.bearer(u.token, "GET", "/v1/withdrawals/"+okID, nil, &got)
		idWant(t, "repayment as withdrawal", s, got, 404, "NOT_FOUND", "")
		s = e.bearer(other.token, "GET", "/v1/card-repayments/"+okID, nil, &got)
		idWant(t, "another's repayment", s, got, 404, "NOT_FOUND", "")
		s = e.bearer(u.token, "POST", "/v1/card-repayments", map[string]string{"amount": "1.00", "card_id": other.cards["CMB"]}, &got)
		idWant(t, "another's card", s, got, 404, "CARD_NOT_FOUND", "card_id")
		s = e.bearer(u.token, "POST", "/v1/card-repayments", map[string]string{"amount": "0.00", "card_id": card}, &got)
		idWant(t, "zero repayment", s, got, 400, "INVALID_AMOUNT", "amount")

		// Billers: merchants an operator flagged.
		owner := idNewUser(t, e.env, "grid")
		biller := idNewMerchant(t, e.env, owner.id)
		shop := idNewMerchant(t, e.env, other.id)
		if s := e.admin("POST", "/v1/admin/billers", map[string]string{"merchant_id": biller.id, "category": "electricity"}, &got); s != 200 || got["category"] != "electricity" {
			t.Fatalf("flag biller: %d %v", s, got)
		}
		s = e.admin("POST", "/v1/admin/billers", map[string]string{"merchant_id": shop.id, "category": "casino"}, &got)
		idWant(t, "bad category", s, got, 400, "INVALID_REQUEST", "category")
		s = e.admin("POST", "/v1/admin/billers", map[string]string{"merchant_id": "M404", "category": "water"}, &got)
		idWant(t, "unknown merchant", s, got, 404, "NOT_FOUND", "merchant_id")
		var billers struct {
			Data []map[string]any `json:"data"`
		}
		if s := e.bearer(u.token, "GET", "/v1/billers", nil, &billers); s != 200 || len(billers.Data) != 1 || billers.Data[0]["biller_id"] != biller.id {
			t.Fatalf("billers: %d %v", s, billers)
		}

		// A bill payment moves the money at once.
		body := map[string]string{"biller_id": biller.id, "account_no": "0571-8899", "amount": "88.50"}
		s, _, bp, _ := e.do(u.token, "POST", "/v1/bill-payments", body, "bill-1")
		if s != 201 || bp["status"] != "SUCCESS" || bp["biller_id"] != biller.id || bp["account_no"] != "0571-8899" ||
			bp["amount"] != "88.50" || bp["discount_amount"] != "0.00" || bp["payer_amount"] != "88.50" || bp["created_at"] == nil {
			t.Fatalf("bill payment: %d %v", s, bp)
		}
		if _, ok := bp["campaign_label"]; ok {
			t.Errorf("bill payment without a discount shows a campaign_label: %v", bp)
		}
		s, hdr, bp2, _ := e.do(u.token, "POST", "/v1/bill-payments", body, "bill-1")
		if s != 201 || hdr.Get("Idempotent-Replayed") != "true" || bp2["payment_id"] != bp["payment_id"] {
			t.Fatalf("bill payment retried: %d %v, first %v", s, bp2, bp)
		}
		pid := bp["payment_id"].(string)
		if s := e.bearer(u.token, "GET", "/v1/bill-payments/"+pid, nil, &got); s != 200 || got["payment_id"] != pid || got["amount"] != "88.50" {
			t.Fatalf("get bill payment: %d %v", s, got)
		}
		s = e.bearer(other.token, "GET", "/v1/bill-payments/"+pid, nil, &got)
		idWant(t, "another's bill payment", s, got, 404, "NOT_FOUND", "")
		idWantBalance(t, e.env, u.idUser, "2011.50")
		idWantBalance(t, e.env, owner, "88.50")
		for _, c := range []struct {
			what        string
			body        map[string]string
			status      int
			code, param string
		}{
			{"unknown biller", map[string]string{"biller_id": "M404", "account_no": "1", "amount": "1.00"}, 404, "NOT_FOUND", "biller_id"},
			{"not a biller", map[string]string{"biller_id": shop.id, "account_no": "1", "amount": "1.00"}, 400, "INVALID_REQUEST", "biller_id"},
			{"bad account_no", map[string]string{"biller_id": biller.id, "account_no": "12 34", "amount": "1.00"}, 400, "INVALID_REQUEST", "account_no"},
			{"long account_no", map[string]string{"biller_id": biller.id, "account_no": "123456789012345678901234567890123", "amount": "1.00"}, 400, "INVALID_REQUEST", "account_no"},
			{"zero amount", map[string]string{"biller_id": biller.id, "account_no": "1", "amount": "0.00"}, 400, "INVALID_AMOUNT", "amount"},
			{"too much", map[string]string{"biller_id": biller.id, "account_no": "1", "amount": "9999.00"}, 400, "BALANCE_NOT_ENOUGH", "amount"},
		} {
			s := e.bearer(u.token, "POST", "/v1/bill-payments", c.body, &got)
			idWant(t, c.what, s, got, c.status, c.code, c.param)
		}

		// The statement names every movement.
		var st idStatement
		if s := e.bearer(u.token, "GET", "/v1/statement?limit=100", nil, &st); s != 200 {
			t.Fatalf("statement: %d %v", s, st)
		}
		lines := map[string]string{}
		for _, x := range st.Data {
			lines[x.TransferID] = x.Type + " " + x.Amount
		}
		for id, want := range map[string]string{
			"wd:" + okID + ":hold": "card_repayment -200.00", "wd:" + failID + ":hold": "card_repayment -1500.00",
			"wd:" + failID + ":return": "card_repayment 1500.00", "billpay:" + pid: "bill_payment -88.50",
		} {
			if lines[id] != want {
				t.Errorf("statement line %s: %q, want %q (all: %v)", id, lines[id], want, lines)
			}
		}
		e.verify(t, []*chUser{u}, map[string]int64{u.id: 2000_00}, map[string]int64{u.id: 88_50})
	})
}

// TestPaymentKindsDiscount repays cards under a campaign with a real budget
// account: the payer pays Amount − Discount, the bank is paid Amount; a
// refused repayment returns the discount to the budget; a budget too small
// leaves the repayment at full price.
func TestPaymentKindsDiscount(t *testing.T) {
	disc := &fixedDiscounter{}
	o := chOptions{banks: func(c *banksim.Config) { c.SettlementFloat = 1000_00 },
		channels: func(c *channel.Config) { c.Discounter = disc }}
	forEachChannelStore(t, o, func(t *testing.T, e *chEnv) {
		ctx := context.Background()
		disc.reset()
		const budget int64 = 20_001
		l, _ := zhifu.LedgerOf(zhifu.CNY)
		rs, err := ledger.CreateAccounts(ctx, e.m.store, []ledger.Account{{ID: budget, Ledger: l,
			Code: zhifu.AccountCampaignBudget, Flags: ledger.DebitsMustNotExceedCredits}})
		if err != nil || !rs[0].Succeeded() {
			t.Fatalf("budget: %v %v", rs, err)
		}
		// The platform's own money at ICBC funds the budget, so custody
		// holds: the discounts are real money at a bank.
		icbc, _ := zhifu.BankIndex("ICBC")
		res, err := e.m.batcher.Submit(ctx, []ledger.Transfer{{ID: "fund:CP1", DebitAccountID: zhifu.BankSettlementAccountID(icbc),
			CreditAccountID: budget, Amount: 10_00, Ledger: l, Code: zhifu.TransferCampaign}})
		if err != nil || res[0] != ledger.TransferOK {
			t.Fatalf("fund budget: %v %v", res, err)
		}
		budgetLeft := func() int64 {
			as, err := e.m.store.LookupAccounts(ctx, []int64{budget})
			if err != nil || len(as) != 1 {
				t.Fatalf("budget: %v %v", as, err)
			}
			return as[0].Available()
		}
		disc.set(campaign.Grant{CampaignID: "CP1", Label: "还款立减 3 元", Discount: 3_00, Budget: budget})
		u := e.newUsers(t, "saver", 1, []string{"ICBC"}, "2000.00")[0]
		card := u.cards["ICBC"]
		repay := func(amount string) map[string]any {
			t.Helper()
			var cr map[string]any
			if s := e.bearer(u.token, "POST", "/v1/card-repayments", map[string]string{"amount": amount, "card_id": card}, &cr); s != 202 {
				t.Fatalf("repay %s: %d %v", amount, s, cr)
			}
			return cr
		}
		cr := repay("50.00")
		if cr["discount_amount"] != "3.00" || cr["payer_amount"] != "47.00" || cr["amount"] != "50.00" || cr["campaign_label"] != "还款立减 3 元" {
			t.Fatalf("discounted repayment: %v", cr)
		}
		if avail, frozen := idBalance(t, e.env, u.idUser); avail != "1953.00" || frozen != "50.00" {
			t.Fatalf("after the discounted repayment: available %s frozen %s", avail, frozen)
		}
		// The bank refuses this one (beyond the platform's money there):
		// the payer's part goes back to the wallet, the discount to the
		// budget.
		refused := repay("1200.00")
		if refused["payer_amount"] != "1197.00" || budgetLeft() != 4_00 {
			t.Fatalf("second repayment: %v, budget %d", refused, budgetLeft())
		}
		e.settle(t, 10*time.Second, time.Minute)
		var got map[string]any
		e.bearer(u.token, "GET", "/v1/card-repayments/"+cr["repayment_id"].(string), nil, &got)
		if got["status"] != "SUCCESS" || got["payer_amount"] != "47.00" || got["campaign_label"] != "还款立减 3 元" {
			t.Fatalf("paid: %v", got)
		}
		e.bearer(u.token, "GET", "/v1/card-repayments/"+refused["repayment_id"].(string), nil, &got)
		if got["status"] != "FAILED" {
			t.Fatalf("refused: %v", got)
		}
		if line := e.statementLines(t)[cr["repayment_id"].(string)]; line.Amount != 50_00 {
			t.Fatalf("the bank paid %d for the discounted repayment, want the full 50.00: %+v", line.Amount, line)
		}
		if left := budgetLeft(); left != 7_00 {
			t.Fatalf("budget %d after the refusal, want 7.00", left)
		}
		idWantBalance(t, e.env, u.idUser, "1953.00")

		// A discount the budget cannot pay: the ledger refuses it, and the
		// repayment goes through at full price without asking again.
		disc.set(campaign.Grant{CampaignID: "CP1", Label: "还款立减 8 元", Discount: 8_00, Budget: budget})
		full := repay("20.00")
		if full["discount_amount"] != "0.00" || full["payer_amount"] != "20.00" || full["campaign_label"] != nil {
			t.Fatalf("budget short: %v", full)
		}
		if offers, settled := disc.seen(); offers != 3 || len(settled) != 3 || !settled[0] || !settled[1] || settled[2] {
			t.Fatalf("offers %d, settled %v", offers, settled)
		}
		if left := budgetLeft(); left != 7_00 {
			t.Fatalf("budget %d, want 7.00 untouched", left)
		}
		e.settle(t, 10*time.Second, time.Minute)
		idWantBalance(t, e.env, u.idUser, "1933.00")
		idCheckLedger(t, e.env)
		// The bank's books agree with the platform's payouts: the bank
		// credited the full amount of the discounted repayment.
		var cust struct {
			Banks []struct {
				Bank string `json:"bank"`
				OK   bool   `json:"ok"`
			} `json:"banks"`
			Explain []string `json:"explain"`
		}
		if s := e.admin("GET", "/v1/admin/custody", nil, &cust); s != 200 || len(cust.Banks) == 0 {
			t.Fatalf("custody: %d %+v", s, cust)
		}
		for _, c := range cust.Banks {
			if !c.OK {
				t.Errorf("custody of %s: not ok: %v", c.Bank, cust.Explain)
			}
		}
	})
}

// fixedDiscounter grants the same discount to every payment and records
// what it is told.
type fixedDiscounter struct {
	mu     sync.Mutex
	grant  campaign.Grant
	offers int
	settle []bool
}

func (d *fixedDiscounter) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.grant, d.offers, d.settle = campaign.Grant{}, 0, nil
}

func (d *fixedDiscounter) set(g campaign.Grant) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.grant = g
}

func (d *fixedDiscounter) seen() (int, []bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.offers, append([]bool(nil), d.settle...)
}

func (d *fixedDiscounter) Offer(context.Context, ledger.Querier, campaign.Payment) (campaign.Grant, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.offers++
	return d.grant, nil
}

func (d *fixedDiscounter) Settle(_ context.Context, _ ledger.Querier, _ campaign.Payment, _ campaign.Grant, ok bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settle = append(d.settle, ok)
	return nil
}
