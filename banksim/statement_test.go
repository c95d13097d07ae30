package banksim_test

import (
	"context"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

// TestStatementMatchesJournal: each day's statement lists exactly the
// transactions settled that day in Beijing time, as the inquiry shows them,
// and its balances chain from day to day.
func TestStatementMatchesJournal(t *testing.T) {
	e := newEnv(t, func(c *banksim.Config) { c.StartingBalance = 1000_00 })
	card := e.card("ICBC", 1)
	c := e.client("ICBC")
	ctx := context.Background()
	step := func() { e.clock.Advance(time.Minute) }

	e.debit("ICBC", "d1-a", card, 800_00)
	step()
	e.debit("ICBC", "d1-b", card, 900_00) // FAILED: 200.00 left
	step()
	if _, err := c.Credit(ctx, bankapi.TxnRequest{RequestID: "d1-c", CardToken: card.CardToken, Amount: 50_00}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(14 * time.Hour) // past midnight in Beijing
	e.debit("ICBC", "d2-a", card, 10_00)

	float := banksim.SettlementFloatDefault
	day1 := statement(t, c, "2010-11-11")
	checkLines(t, c, day1, "d1-a", "d1-b", "d1-c")
	if day1.Opening != float || day1.Closing != float+800_00-50_00 {
		t.Fatalf("day 1 balances %d → %d", day1.Opening, day1.Closing)
	}
	if want := time.Date(2010, 11, 11, 0, 0, 0, 0, start.Location()); !day1.OpeningAt.Equal(want) {
		t.Fatalf("day 1 opens at %v, want %v", day1.OpeningAt, want)
	}
	day2 := statement(t, c, "2010-11-12")
	checkLines(t, c, day2, "d2-a")
	books, _ := e.sim.Books("ICBC")
	if day2.Opening != day1.Closing || day2.Closing != books.Settlement {
		t.Fatalf("day 2 balances %d → %d; day 1 closed at %d, settlement is %d",
			day2.Opening, day2.Closing, day1.Closing, books.Settlement)
	}
	day0 := statement(t, c, "2010-11-10")
	if len(day0.Lines) != 0 || day0.Opening != float || day0.Closing != float {
		t.Fatalf("day before = %+v", day0)
	}
	if _, err := c.Statement(ctx, "11/11/2010"); err == nil {
		t.Fatal("a malformed date was accepted")
	}
}

func statement(t *testing.T, c *bankapi.Client, date string) bankapi.Statement {
	t.Helper()
	st, err := c.Statement(context.Background(), date)
	if err != nil {
		t.Fatalf("statement %s: %v", date, err)
	}
	return st
}

// checkLines compares a statement's lines with the inquiry of each id.
func checkLines(t *testing.T, c *bankapi.Client, st bankapi.Statement, ids ...string) {
	t.Helper()
	if len(st.Lines) != len(ids) {
		t.Fatalf("statement has %d lines, want %v: %+v", len(st.Lines), ids, st.Lines)
	}
	for i, id := range ids {
		l := st.Lines[i]
		q, err := c.Inquire(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		want := bankapi.StatementLine{RequestID: q.RequestID, BankTxnID: q.BankTxnID, Kind: q.Kind,
			Amount: q.Amount, Status: q.Status, SettledAt: *q.SettledAt}
		if l.RequestID != want.RequestID || l.BankTxnID != want.BankTxnID || l.Kind != want.Kind ||
			l.Amount != want.Amount || l.Status != want.Status || !l.SettledAt.Equal(want.SettledAt) {
			t.Fatalf("line %d = %+v, want %+v", i, l, want)
		}
	}
}
