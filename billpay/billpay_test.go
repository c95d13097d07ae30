package billpay_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/billpay"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
	"zhifu/wallet"
)

// The package's tests run on both stores: a fresh SQLite file and a fresh
// PostgreSQL database (ZHIFU_TEST_POSTGRES, else the local server).

type fixture struct {
	store ledger.Store
	b     *ledger.Batcher
	id    *identity.Service
	w     *wallet.Service
	disc  *fakeDiscounter
	bp    *billpay.Service
	payer *identity.User
	// biller is a merchant flagged as a biller; shop one that is not.
	biller, shop *identity.Merchant
	billerUser   *identity.User
}

func forEachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) { fn(t, newFixture(t, open)) })
}

func newFixture(t *testing.T, open func() ledger.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	st := open()
	c := testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := ledger.NewBatcher(st, c.Now)
	t.Cleanup(b.Close)
	id := identity.New(identity.Config{Store: st, Batcher: b, Clock: c})
	w := wallet.New(wallet.Config{Store: st, Batcher: b, Clock: c, Identity: id})
	if err := w.EnsurePlatformAccounts(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, b: b, id: id, w: w, disc: &fakeDiscounter{}}
	f.bp = billpay.New(billpay.Config{Store: st, Batcher: b, Clock: c, Identity: id, Wallet: w, Discounter: f.disc})
	var err error
	if f.payer, err = id.CreateUser(ctx, "payer", "password-1", "Payer"); err != nil {
		t.Fatal(err)
	}
	if f.billerUser, err = id.CreateUser(ctx, "grid", "password-1", "State Grid"); err != nil {
		t.Fatal(err)
	}
	shopUser, err := id.CreateUser(ctx, "shopkeeper", "password-1", "Shop")
	if err != nil {
		t.Fatal(err)
	}
	if f.biller, _, err = id.CreateMerchant(ctx, "国家电网", f.billerUser.UserID, "", ""); err != nil {
		t.Fatal(err)
	}
	if f.shop, _, err = id.CreateMerchant(ctx, "Shop", shopUser.UserID, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bp.FlagBiller(ctx, f.biller.MerchantID, "electricity"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Deposit(ctx, f.payer.UserID, 1000_00, zhifu.Banks[0], "fund-payer"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) available(t *testing.T, u *identity.User) zhifu.Amount {
	t.Helper()
	b, err := f.w.Balance(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return b.Available
}

func wantCode(t *testing.T, what string, err error, code, param string) {
	t.Helper()
	e, ok := err.(*zhifu.Error)
	if !ok || e.Code != code || e.Param != param {
		t.Fatalf("%s: error %v, want %s on %q", what, err, code, param)
	}
}

func TestPayBill(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		p := billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "3301-998877", Amount: 123_45, IdempotencyKey: "bill-1"}
		pay, created, err := f.bp.Pay(ctx, f.payer, p)
		if err != nil || !created || pay.Status != billpay.StatusSuccess || pay.Amount != 123_45 || pay.Discount != 0 {
			t.Fatalf("pay: %+v %v %v", pay, created, err)
		}
		if got := f.available(t, f.payer); got != 1000_00-123_45 {
			t.Fatalf("payer holds %s", got)
		}
		if got := f.available(t, f.billerUser); got != 123_45 {
			t.Fatalf("biller holds %s", got)
		}
		// The same key again is the same payment, paid once.
		again, created, err := f.bp.Pay(ctx, f.payer, p)
		if err != nil || created || again.PaymentID != pay.PaymentID || !again.CreatedAt.Equal(pay.CreatedAt) {
			t.Fatalf("again: %+v %v %v", again, created, err)
		}
		if got := f.available(t, f.payer); got != 1000_00-123_45 {
			t.Fatalf("payer holds %s after the retry", got)
		}
		q := p
		q.Amount = 1_00
		_, _, err = f.bp.Pay(ctx, f.payer, q)
		wantCode(t, "key reused", err, zhifu.ContextInconsistent, "Idempotency-Key")
		got, err := f.bp.Get(ctx, f.payer, pay.PaymentID)
		if err != nil || got.AccountNo != p.AccountNo || got.BillerID != f.biller.MerchantID {
			t.Fatalf("get: %+v %v", got, err)
		}
		_, err = f.bp.Get(ctx, f.billerUser, pay.PaymentID)
		wantCode(t, "another's payment", err, zhifu.NotFound, "")

		// The statement names the movement.
		st, err := f.w.Statement(ctx, f.payer, 1, "")
		if err != nil || len(st.Entries) != 1 || st.Entries[0].Type != "bill_payment" || st.Entries[0].Amount != -123_45 {
			t.Fatalf("statement: %+v %v", st, err)
		}

		bad := []struct {
			p           billpay.PayParams
			code, param string
		}{
			{billpay.PayParams{BillerID: "M0000", AccountNo: "1", Amount: 1_00}, zhifu.NotFound, "biller_id"},
			{billpay.PayParams{BillerID: f.shop.MerchantID, AccountNo: "1", Amount: 1_00}, zhifu.InvalidRequest, "biller_id"},
			{billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "", Amount: 1_00}, zhifu.InvalidRequest, "account_no"},
			{billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "a b", Amount: 1_00}, zhifu.InvalidRequest, "account_no"},
			{billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "123456789012345678901234567890123", Amount: 1_00}, zhifu.InvalidRequest, "account_no"},
			{billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "1", Amount: 0}, zhifu.InvalidAmount, "amount"},
			{billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "1", Amount: 5000_00}, zhifu.BalanceNotEnough, "amount"},
		}
		for _, b := range bad {
			_, _, err := f.bp.Pay(ctx, f.payer, b.p)
			wantCode(t, b.p.AccountNo+"/"+b.p.BillerID, err, b.code, b.param)
		}
		_, _, err = f.bp.Pay(ctx, f.billerUser, billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "1", Amount: 1_00})
		wantCode(t, "own bill", err, zhifu.InvalidRequest, "biller_id")
		_, err = f.bp.FlagBiller(ctx, f.shop.MerchantID, "casino")
		wantCode(t, "bad category", err, zhifu.InvalidRequest, "category")
		_, err = f.bp.FlagBiller(ctx, "M0000", "water")
		wantCode(t, "unknown merchant", err, zhifu.NotFound, "merchant_id")

		billers, err := f.bp.Billers(ctx)
		if err != nil || len(billers) != 1 || billers[0].MerchantID != f.biller.MerchantID || billers[0].Category != "electricity" {
			t.Fatalf("billers: %+v %v", billers, err)
		}
	})
}

// TestBillDiscount pays bills under a campaign with a real budget account:
// the payer pays Amount − Discount and the biller receives Amount; a budget
// too small for the discount leaves the payment at full price.
func TestBillDiscount(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		budget := newBudget(t, f.store, f.b, 10_00)
		f.disc.grant = campaign.Grant{CampaignID: "CP1", Label: "电费立减 3 元", Discount: 3_00, Budget: budget}

		pay, _, err := f.bp.Pay(ctx, f.payer, billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "E-1", Amount: 50_00})
		if err != nil || pay.Discount != 3_00 || pay.PayerAmount() != 47_00 || pay.CampaignID != "CP1" || pay.Label == "" {
			t.Fatalf("discounted: %+v %v", pay, err)
		}
		if got := f.available(t, f.payer); got != 1000_00-47_00 {
			t.Fatalf("payer holds %s, want the discount taken off", got)
		}
		if got := f.available(t, f.billerUser); got != 50_00 {
			t.Fatalf("biller holds %s, want the whole bill", got)
		}
		if got := balance(t, f.store, budget); got != 7_00 {
			t.Fatalf("budget %s", got)
		}
		got, err := f.bp.Get(ctx, f.payer, pay.PaymentID)
		if err != nil || got.Discount != 3_00 || got.CampaignID != "CP1" || got.Label != pay.Label {
			t.Fatalf("stored: %+v %v", got, err)
		}
		if s := f.disc.settled(); len(s) != 1 || !s[0] {
			t.Fatalf("settled %v", s)
		}

		// A discount the budget cannot pay: the ledger refuses the chain,
		// and the bill is paid again without asking for a discount.
		f.disc.grant.Discount = 8_00
		pay, _, err = f.bp.Pay(ctx, f.payer, billpay.PayParams{BillerID: f.biller.MerchantID, AccountNo: "E-1", Amount: 20_00})
		if err != nil || pay.Discount != 0 || pay.CampaignID != "" || pay.PayerAmount() != 20_00 {
			t.Fatalf("budget short: %+v %v", pay, err)
		}
		if s := f.disc.settled(); len(s) != 2 || s[1] || f.disc.offers() != 2 {
			t.Fatalf("settled %v after %d offers, want the second refused and no third offer", s, f.disc.offers())
		}
		if got := f.available(t, f.payer); got != 1000_00-47_00-20_00 {
			t.Fatalf("payer holds %s", got)
		}
		if got := f.available(t, f.billerUser); got != 70_00 {
			t.Fatalf("biller holds %s", got)
		}
		if got := balance(t, f.store, budget); got != 7_00 {
			t.Fatalf("budget %s after the refusal", got)
		}
		res, err := ledger.Check(ctx, f.store)
		if err != nil || !res.OK {
			t.Fatalf("ledger check: %+v %v", res, err)
		}
	})
}

// fakeDiscounter grants the same discount to every payment and records
// what it is told.
type fakeDiscounter struct {
	mu     sync.Mutex
	grant  campaign.Grant
	n      int
	settle []bool
}

func (d *fakeDiscounter) Offer(context.Context, ledger.Querier, campaign.Payment) (campaign.Grant, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	return d.grant, nil
}

func (d *fakeDiscounter) Settle(_ context.Context, _ ledger.Querier, _ campaign.Payment, _ campaign.Grant, ok bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settle = append(d.settle, ok)
	return nil
}

func (d *fakeDiscounter) offers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *fakeDiscounter) settled() []bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]bool(nil), d.settle...)
}

// budgetAccountID is the test's campaign budget account.
const budgetAccountID int64 = 20_001

// newBudget creates a campaign budget account and funds it from the
// platform's own funds.
func newBudget(t *testing.T, st ledger.Store, b *ledger.Batcher, funds zhifu.Amount) int64 {
	t.Helper()
	ctx := context.Background()
	l, _ := zhifu.LedgerOf(zhifu.CNY)
	rs, err := ledger.CreateAccounts(ctx, st, []ledger.Account{{ID: budgetAccountID, Ledger: l,
		Code: zhifu.AccountCampaignBudget, Flags: ledger.DebitsMustNotExceedCredits}})
	if err != nil || !rs[0].Succeeded() {
		t.Fatalf("budget account: %v %v", rs, err)
	}
	res, err := b.Submit(ctx, []ledger.Transfer{{ID: "fund:CP1", DebitAccountID: zhifu.OwnFundsAccountID,
		CreditAccountID: budgetAccountID, Amount: int64(funds), Ledger: l, Code: zhifu.TransferCampaign}})
	if err != nil || res[0] != ledger.TransferOK {
		t.Fatalf("fund budget: %v %v", res, err)
	}
	return budgetAccountID
}

func balance(t *testing.T, st ledger.Store, id int64) zhifu.Amount {
	t.Helper()
	as, err := st.LookupAccounts(context.Background(), []int64{id})
	if err != nil || len(as) != 1 {
		t.Fatalf("account %d: %v %v", id, as, err)
	}
	return zhifu.Amount(as[0].Available())
}
