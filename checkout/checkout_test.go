package checkout

import (
	"context"
	"go/build"
	"path/filepath"
	"strings"
	"testing"

	"zhifu"
	"zhifu/identity"
	"zhifu/trade"
)

func TestSplit(t *testing.T) {
	c := trade.Charge{BuyerPay: 10000}
	for _, tc := range []struct {
		method    string
		available zhifu.Amount
		want      parts
	}{
		{MethodBalance, 0, parts{balance: 10000}},
		{MethodCard, 50000, parts{card: 10000}}, // the balance is not asked
		{MethodBalanceCard, 0, parts{card: 10000}},
		{MethodBalanceCard, 2500, parts{balance: 2500, card: 7500}},
		{MethodBalanceCard, 9999, parts{balance: 9999, card: 1}},
		{MethodBalanceCard, 10000, parts{balance: 10000}}, // covered: a balance payment
		{MethodBalanceCard, 50000, parts{balance: 10000}},
		{MethodBalanceCard, -300, parts{card: 10000}}, // a balance below zero gives nothing
	} {
		got := split(c, tc.method, tc.available)
		if got != tc.want {
			t.Errorf("split %s of %s with %s available: got %+v, want %+v", tc.method, c.BuyerPay, tc.available, got, tc.want)
		}
		if got.balance+got.card != c.BuyerPay {
			t.Errorf("split %s with %s available: %s+%s does not add up to %s", tc.method, tc.available,
				got.balance, got.card, c.BuyerPay)
		}
	}
}

// TestChargeOf pins today's charge: the whole total, no discount. A
// discount is a deliberate change here and in trade's pay rule.
func TestChargeOf(t *testing.T) {
	for _, total := range []zhifu.Amount{1, 10000, zhifu.AmountMax} {
		if got := chargeOf(&trade.Trade{TotalAmount: total}); got != (trade.Charge{BuyerPay: total}) {
			t.Errorf("charge of a trade of %s: got %+v, want the whole total and no discount", total, got)
		}
	}
}

// TestPayRefusesBadParams checks the refusals made before any trade is
// read.
func TestPayRefusesBadParams(t *testing.T) {
	s := New(Config{}) // nothing is reached
	u := &identity.User{Num: 2, UserID: zhifu.UserIDOf(2)}
	for _, tc := range []struct {
		p     PayParams
		param string
	}{
		{PayParams{Method: ""}, "method"},
		{PayParams{Method: "cash"}, "method"},
		{PayParams{Method: "Balance"}, "method"},
		{PayParams{Method: MethodBalance, CardID: "CD1"}, "card_id"},
	} {
		_, err := s.Pay(context.Background(), u, "20260102"+strings.Repeat("1", 18), tc.p)
		e, ok := err.(*zhifu.Error)
		if !ok || e.Code != zhifu.InvalidRequest || e.Param != tc.param {
			t.Errorf("pay %+v: got %v, want INVALID_REQUEST on %s", tc.p, err, tc.param)
		}
	}
}

// TestLayers checks the dependency graph checkout exists for: checkout
// imports trade and channel, and neither trade nor channel imports the
// other or checkout, directly or through another package of the module.
func TestLayers(t *testing.T) {
	imports := moduleImports(t, "zhifu/checkout")
	for _, p := range []string{"zhifu/trade", "zhifu/channel"} {
		if !imports[p] {
			t.Errorf("checkout does not import %s", p)
		}
	}
	for pkg, forbidden := range map[string][]string{
		"zhifu/trade":   {"zhifu/channel", "zhifu/checkout"},
		"zhifu/channel": {"zhifu/trade", "zhifu/checkout"},
	} {
		imports := moduleImports(t, pkg)
		for _, f := range forbidden {
			if imports[f] {
				t.Errorf("%s imports %s", pkg, f)
			}
		}
	}
}

// moduleImports returns the module's packages pkg imports, directly or
// not, from its non-test files.
func moduleImports(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	seen := make(map[string]bool)
	var walk func(string)
	walk = func(p string) {
		dir := filepath.Join("..", filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p, "zhifu"), "/")))
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		for _, imp := range bp.Imports {
			if (imp == "zhifu" || strings.HasPrefix(imp, "zhifu/")) && !seen[imp] {
				seen[imp] = true
				walk(imp)
			}
		}
	}
	walk(pkg)
	return seen
}
