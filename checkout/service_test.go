package checkout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"zhifu"
	"zhifu/channel"
	"zhifu/checkout"
	"zhifu/identity"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
	"zhifu/trade"
	"zhifu/wallet"
)

// fixture is checkout over real trades and wallets on a real store, with
// no bank channels: card payments are refused, and settlements are driven
// by the test as the channels drive them.
type fixture struct {
	st            ledger.Store
	b             *ledger.Batcher
	clock         *testkit.Clock
	wallet        *wallet.Service
	trades        *trade.Service
	co            *checkout.Service
	settler       *checkout.Settler
	merchant      *identity.Merchant
	buyer, seller *identity.User
	deposits      int
}

func newFixture(t *testing.T, open func() ledger.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{st: open(), clock: testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	f.b = ledger.NewBatcher(f.st, f.clock.Now)
	t.Cleanup(f.b.Close)
	ids := identity.New(identity.Config{Store: f.st, Batcher: f.b, Clock: f.clock})
	f.wallet = wallet.New(wallet.Config{Store: f.st, Batcher: f.b, Clock: f.clock, Identity: ids})
	f.trades = trade.New(trade.Config{Store: f.st, Batcher: f.b, Clock: f.clock, Identity: ids})
	f.settler = checkout.NewSettler(f.trades)
	f.co = checkout.New(checkout.Config{Trades: f.trades, Wallet: f.wallet})
	if err := f.wallet.EnsurePlatformAccounts(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	for _, u := range []struct {
		login string
		to    **identity.User
	}{{"seller", &f.seller}, {"buyer", &f.buyer}} {
		if *u.to, err = ids.CreateUser(ctx, u.login, "correct-horse-1", u.login); err != nil {
			t.Fatal(err)
		}
		if err := f.wallet.EnsureUserAccounts(ctx, *u.to); err != nil {
			t.Fatal(err)
		}
	}
	if f.merchant, _, err = ids.CreateMerchant(ctx, "shop", f.seller.UserID, "", ""); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) newTrade(t *testing.T, out string, total zhifu.Amount) *trade.Trade {
	t.Helper()
	tr, _, err := f.trades.Create(context.Background(), f.merchant, trade.CreateParams{OutTradeNo: out, Subject: "tea",
		TotalAmount: total, Mode: trade.Instant})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// deposit puts money in the buyer's wallet, as a card's top-up does.
func (f *fixture) deposit(t *testing.T, amount zhifu.Amount) {
	t.Helper()
	f.deposits++
	ref := "ref" + strings.Repeat("x", f.deposits)
	if _, _, err := f.wallet.Deposit(context.Background(), f.buyer.UserID, amount, "ICBC", ref); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) available(t *testing.T) zhifu.Amount {
	t.Helper()
	b, err := f.wallet.Balance(context.Background(), f.buyer)
	if err != nil {
		t.Fatal(err)
	}
	return b.Available
}

// settleOp settles a trade as the channels' resolution does: in its own
// op, holding the trade's key, the settlement's transfer among its own.
type settleOp struct {
	s channel.TradeSettler
	p channel.TradeSettle

	st     channel.TradeSettlement
	result ledger.TransferResult
}

func (o *settleOp) Keys() []string { return []string{"trade:" + o.p.TradeNo} }

func (o *settleOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	st, err := o.s.SettleTrade(ctx, tx, o.p)
	if err != nil {
		return nil, err
	}
	o.st = st
	if tr := st.Transfer(); tr != nil {
		return []ledger.Transfer{*tr}, nil
	}
	return nil, nil
}

func (o *settleOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	o.result = ledger.TransferOK
	if len(results) > 0 {
		o.result = results[0]
	}
	return o.st.Finish(ctx, tx, o.result)
}

func TestSettle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open)
		ctx := context.Background()
		tr := f.newTrade(t, "o1", 12345)
		f.deposit(t, 12345)
		p := channel.TradeSettle{TradeNo: tr.TradeNo, BuyerID: f.buyer.UserID, PaymentID: "TU1", Now: f.clock.Now()}

		// Money that is not the charge is a fault: nothing moves.
		p.Amount = 12344
		if err := f.b.Do(ctx, &settleOp{s: f.settler, p: p}); err == nil || !strings.Contains(err.Error(), "charges 123.45") {
			t.Fatalf("settling 123.44 for a trade of 123.45: %v", err)
		}
		if got, _ := f.trades.Get(ctx, tr.TradeNo); got.Status != trade.WaitBuyerPay || f.available(t) != 12345 {
			t.Fatalf("after a refused settlement: trade %s, balance %s", got.Status, f.available(t))
		}

		// The charge itself pays the trade by the rule of balance payments.
		p.Amount = 12345
		op := &settleOp{s: f.settler, p: p}
		if err := f.b.Do(ctx, op); err != nil || op.st.Transfer() == nil || op.result != ledger.TransferOK {
			t.Fatalf("settle: %v", err)
		}
		if tr := op.st.Transfer(); tr.ID != "pay:"+p.TradeNo || tr.Amount != 12345 ||
			tr.DebitAccountID != zhifu.WalletAccountID(f.buyer.Num) {
			t.Fatalf("settlement transfer %+v", tr)
		}
		got, err := f.trades.Get(ctx, tr.TradeNo)
		if err != nil || got.Status != trade.Success || got.BuyerID != f.buyer.UserID || got.BuyerPayAmount != 12345 ||
			f.available(t) != 0 {
			t.Fatalf("after settling: %+v %v, balance %s", got, err, f.available(t))
		}

		// A second payment's money is not taken: the trade refuses it, and
		// the channels give it back.
		f.deposit(t, 12345)
		op = &settleOp{s: f.settler, p: p}
		if err := f.b.Do(ctx, op); err != nil || op.st.Transfer() != nil ||
			zhifu.ErrorCode(op.st.Refusal()) != zhifu.TradeHasSuccess {
			t.Fatalf("second settlement: %v, refusal %v", err, op.st.Refusal())
		}
		if f.available(t) != 12345 {
			t.Fatalf("a refused settlement moved money: balance %s", f.available(t))
		}
	})
}

// TestPayWithoutChannels walks the methods with no bank channels: a
// balance+card payment the balance covers is a balance payment, any other
// card payment is CHANNEL_UNAVAILABLE, and a trade that cannot be paid
// answers its refusal before the method's.
func TestPayWithoutChannels(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open)
		ctx := context.Background()
		f.deposit(t, 5000)
		pay := func(tr *trade.Trade, method string) (*trade.Trade, error) {
			return f.co.Pay(ctx, f.buyer, tr.TradeNo, checkout.PayParams{Method: method})
		}

		big := f.newTrade(t, "big", 8000)
		for _, m := range []string{checkout.MethodCard, checkout.MethodBalanceCard} {
			if _, err := pay(big, m); zhifu.ErrorCode(err) != zhifu.ChannelUnavailable {
				t.Errorf("%s with no channels: %v, want CHANNEL_UNAVAILABLE", m, err)
			}
		}
		if _, err := pay(big, checkout.MethodBalance); zhifu.ErrorCode(err) != zhifu.BuyerBalanceNotEnough {
			t.Errorf("balance short of the total: %v, want BUYER_BALANCE_NOT_ENOUGH", err)
		}

		small := f.newTrade(t, "small", 3000)
		got, err := pay(small, checkout.MethodBalanceCard)
		if err != nil || got.Status != trade.Success || got.Payment != nil || f.available(t) != 2000 {
			t.Fatalf("balance+card covered by the balance: %+v %v, balance %s", got, err, f.available(t))
		}
		for _, m := range []string{checkout.MethodBalance, checkout.MethodCard, checkout.MethodBalanceCard} {
			if _, err := pay(small, m); zhifu.ErrorCode(err) != zhifu.TradeHasSuccess {
				t.Errorf("%s of a paid trade: %v, want TRADE_HAS_SUCCESS", m, err)
			}
		}

		// Past its time to pay, a trade asked for a card payment is closed.
		late := f.newTrade(t, "late", 100)
		f.clock.Advance(late.CloseDue.Sub(f.clock.Now()))
		if _, err := pay(late, checkout.MethodCard); zhifu.ErrorCode(err) != zhifu.TradeHasClose {
			t.Fatalf("card payment of an expired trade: %v, want TRADE_HAS_CLOSE", err)
		}
		if got, _ := f.trades.Get(ctx, late.TradeNo); got.Status != trade.Closed {
			t.Fatalf("expired trade asked for a card payment: %s, want TRADE_CLOSED", got.Status)
		}
		if f.available(t) != 2000 {
			t.Fatalf("refusals moved money: balance %s", f.available(t))
		}
	})
}
