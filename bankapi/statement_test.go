package bankapi_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
)

const statementHead = "request_id,bank_txn_id,kind,amount,status,settled_at\n"

func TestParseStatementRefusesCutShort(t *testing.T) {
	full := statementHead +
		"OPENING_BALANCE,,,100,,2010-11-11T00:00:00+08:00\n" +
		"a,ICBC201011110000000001,debit,5,SUCCESS,2010-11-11T10:00:00+08:00\n" +
		"CLOSING_BALANCE,,,105,,2010-11-12T00:00:00+08:00\n"
	st, err := bankapi.ParseStatement(strings.NewReader(full))
	if err != nil || len(st.Lines) != 1 || st.Closing != 105 {
		t.Fatalf("parse = %+v, %v", st, err)
	}
	cut := full[:strings.Index(full, "CLOSING")]
	if _, err := bankapi.ParseStatement(strings.NewReader(cut)); err == nil {
		t.Fatal("a statement without its closing line was accepted")
	}
}

// TestParseStatementIsStrict: the platform settles money by statements, so
// anything but the documented shape is refused rather than half read.
func TestParseStatementIsStrict(t *testing.T) {
	open := "OPENING_BALANCE,,,100,,2010-11-11T00:00:00+08:00\n"
	line := "a,ICBC1,debit,5,SUCCESS,2010-11-11T10:00:00+08:00\n"
	closing := "CLOSING_BALANCE,,,105,,2010-11-12T00:00:00+08:00\n"
	tests := []struct{ name, text string }{
		{"empty", ""},
		{"header only", statementHead},
		{"other header", strings.Replace(statementHead, "amount", "amt", 1) + open + closing},
		{"columns missing", statementHead + "OPENING_BALANCE,,,100,\n" + closing},
		{"line before the opening", statementHead + line + open + closing},
		{"no opening", statementHead + line + closing},
		{"lines after the closing", statementHead + open + closing + line},
		{"amount not a number", statementHead + open + strings.Replace(line, ",5,", ",5.00,", 1) + closing},
		{"amount zero", statementHead + open + strings.Replace(line, ",5,", ",0,", 1) + closing},
		{"amount negative", statementHead + open + strings.Replace(line, ",5,", ",-5,", 1) + closing},
		{"kind unknown", statementHead + open + strings.Replace(line, "debit", "refund", 1) + closing},
		{"status not final", statementHead + open + strings.Replace(line, "SUCCESS", "ACCEPTED", 1) + closing},
		{"request id unusable", statementHead + open + strings.Replace(line, "a,", "a b,", 1) + closing},
		{"time out of range", statementHead + strings.Replace(open, "2010-11-11T00:00:00+08:00", "9999-12-31T23:00:00Z", 1) + closing},
		{"time without zone", statementHead + open + strings.Replace(line, "+08:00", "", 1) + closing},
		{"unbalanced quote", statementHead + open + `"a,ICBC1,debit,5,SUCCESS,2010-11-11T10:00:00+08:00` + "\n" + closing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, err := bankapi.ParseStatement(strings.NewReader(tt.text)); err == nil {
				t.Fatalf("accepted: %+v", st)
			}
		})
	}
}

func TestStatementWriteParse(t *testing.T) {
	day := time.Date(2010, 11, 11, 0, 0, 0, 0, bankapi.Beijing)
	want := bankapi.Statement{Opening: 100_000_000_00, OpeningAt: day, Closing: 100_000_000_00 + 800_00 - 50_00,
		ClosingAt: day.AddDate(0, 0, 1), Lines: []bankapi.StatementLine{
			{RequestID: "TU20101111a", BankTxnID: "ICBC201011110000000001", Kind: bankapi.KindDebit, Amount: 800_00,
				Status: bankapi.StatusSuccess, SettledAt: day.Add(10*time.Hour + 123*time.Nanosecond)},
			{RequestID: "TU20101111b", BankTxnID: "ICBC201011110000000002", Kind: bankapi.KindDebit, Amount: 900_00,
				Status: bankapi.StatusFailed, SettledAt: day.Add(11 * time.Hour)},
			// A time given in another zone is written in Beijing's.
			{RequestID: "WD20101111c", BankTxnID: "ICBC201011110000000003", Kind: bankapi.KindCredit, Amount: 50_00,
				Status: bankapi.StatusSuccess, SettledAt: day.Add(12 * time.Hour).UTC()},
		}}
	var b strings.Builder
	writeStatement(t, &b, want)
	if !strings.Contains(b.String(), "2010-11-11T12:00:00+08:00") {
		t.Errorf("times not written in Beijing time:\n%s", b.String())
	}
	got, err := bankapi.ParseStatement(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parse what was written: %v\n%s", err, b.String())
	}
	if !sameStatement(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
}

func writeStatement(t testing.TB, b *strings.Builder, st bankapi.Statement) {
	t.Helper()
	sw := bankapi.NewStatementWriter(b)
	if err := sw.Open(st.Opening, st.OpeningAt); err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Lines {
		if err := sw.Line(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(st.Closing, st.ClosingAt); err != nil {
		t.Fatal(err)
	}
}

// sameStatement compares instants by Equal, the rest exactly.
func sameStatement(a, b bankapi.Statement) bool {
	norm := func(s bankapi.Statement) bankapi.Statement {
		s.OpeningAt, s.ClosingAt = s.OpeningAt.UTC(), s.ClosingAt.UTC()
		lines := make([]bankapi.StatementLine, len(s.Lines))
		for i, l := range s.Lines {
			l.SettledAt = l.SettledAt.UTC()
			lines[i] = l
		}
		s.Lines = lines
		if len(s.Lines) == 0 {
			s.Lines = nil
		}
		return s
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
