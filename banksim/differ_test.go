package banksim_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

// TestDifferences seeds each kind of difference and shows that the bank's
// books still balance, its statement shows the difference, and its
// inquiry agrees with the statement.
func TestDifferences(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	card := e.card("CMB", 1)
	c := e.client("CMB")
	day := start.In(bankapi.Beijing).Format(time.DateOnly)
	for _, id := range []string{"TU1", "TU2", "TU3"} {
		e.debit("CMB", id, card, 100_00)
	}
	startBal := e.balance("CMB", card)
	cc := banksim.NewControlClient(e.srv.URL, controlToken, nil)
	steps := []struct {
		d    banksim.Difference
		card int64 // the card's change
	}{
		{banksim.Difference{Kind: banksim.DifferRepeat, RequestID: "TU1"}, -100_00},
		{banksim.Difference{Kind: banksim.DifferFlip, RequestID: "TU2"}, +100_00},
		{banksim.Difference{Kind: banksim.DifferAmount, RequestID: "TU3", Amount: 120_00}, -20_00},
		{banksim.Difference{Kind: banksim.DifferAdd, RequestID: "XX1", Amount: 7_00, CardToken: card.CardToken}, -7_00},
		{banksim.Difference{Kind: banksim.DifferRedate, RequestID: "XX1", At: start.AddDate(0, 0, -1)}, 0},
	}
	want := startBal
	for _, s := range steps {
		if _, err := cc.Differ(ctx, "CMB", s.d); err != nil {
			t.Fatalf("%s: %v", s.d.Kind, err)
		}
		want += s.card
		if got := e.balance("CMB", card); got != want {
			t.Fatalf("after %s the card holds %d, want %d", s.d.Kind, got, want)
		}
		e.checkBooks()
	}
	st, err := c.Statement(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range st.Lines {
		got = append(got, l.RequestID+" "+l.Status)
	}
	if want := "[TU1 SUCCESS TU2 FAILED TU3 SUCCESS TU1 SUCCESS]"; fmtList(got) != want {
		t.Errorf("statement %s, want %s", fmtList(got), want)
	}
	if st.Lines[3].BankTxnID == st.Lines[0].BankTxnID || st.Lines[2].Amount != 120_00 {
		t.Errorf("the repeat or the changed amount: %+v", st.Lines)
	}
	if tx, err := c.Inquire(ctx, "TU2"); err != nil || tx.Status != bankapi.StatusFailed || tx.Reason != "REVERSED" {
		t.Errorf("inquiry of the reversed: %+v %v", tx, err)
	}
	prev, err := c.Statement(ctx, start.AddDate(0, 0, -1).In(bankapi.Beijing).Format(time.DateOnly))
	if err != nil || len(prev.Lines) != 1 || prev.Lines[0].RequestID != "XX1" || prev.Closing-prev.Opening != 7_00 {
		t.Errorf("the day before: %+v %v", prev, err)
	}
	if st.Opening != prev.Closing {
		t.Errorf("today opens at %d, yesterday closed at %d", st.Opening, prev.Closing)
	}
	for _, bad := range []banksim.Difference{
		{Kind: "forge", RequestID: "TU1"},
		{Kind: banksim.DifferRepeat, RequestID: "TU2"}, // failed now: nothing to repeat
		{Kind: banksim.DifferFlip, RequestID: "nope"},
		{Kind: banksim.DifferAdd, RequestID: "XX1", Amount: 1, CardToken: card.CardToken}, // taken
		{Kind: banksim.DifferAdd, RequestID: "XX2", Amount: 1 << 50, CardToken: card.CardToken},
	} {
		_, err := cc.Differ(ctx, "CMB", bad)
		var ae *bankapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("%+v: %v, want 400", bad, err)
		}
	}
	e.checkBooks()
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
