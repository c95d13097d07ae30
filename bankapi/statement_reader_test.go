package bankapi_test

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
)

// TestStatementReaderStreams reads a statement of 300,000 lines as it is
// written, holding one line at a time: the heap does not grow with it,
// where ParseStatement would keep every line.
func TestStatementReaderStreams(t *testing.T) {
	const n = 300_000
	pr, pw := io.Pipe()
	at := time.Date(2010, 11, 11, 0, 0, 0, 0, bankapi.Beijing)
	go func() {
		w := bankapi.NewStatementWriter(pw)
		err := w.Open(0, at)
		for i := 0; err == nil && i < n; i++ {
			err = w.Line(bankapi.StatementLine{RequestID: fmt.Sprintf("TU%028d", i), BankTxnID: fmt.Sprintf("CMB%010d", i),
				Kind: bankapi.KindDebit, Amount: 1, Status: bankapi.StatusSuccess, SettledAt: at.Add(time.Duration(i))})
		}
		if err == nil {
			err = w.Close(n, at.AddDate(0, 0, 1))
		}
		pw.CloseWithError(err)
	}()
	sr, err := bankapi.NewStatementReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var got, peak uint64
	for {
		l, ok, err := sr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if l.RequestID != fmt.Sprintf("TU%028d", got) {
			t.Fatalf("line %d: %+v", got, l)
		}
		got++
		if got%50_000 == 0 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	if closing, _ := sr.Closing(); got != n || closing != n {
		t.Fatalf("read %d lines, closing %d", got, closing)
	}
	// 300,000 lines kept would be tens of MiB.
	if grown := int64(peak) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Errorf("the heap grew by %d bytes while reading", grown)
	}
}

// TestStatementReaderCutShort: a statement that ends without its closing
// line is an error at its end, however many lines came before.
func TestStatementReaderCutShort(t *testing.T) {
	text := statementHead + "OPENING_BALANCE,,,100,,2010-11-11T00:00:00+08:00\n" +
		"a,ICBC1,debit,5,SUCCESS,2010-11-11T10:00:00+08:00\n"
	sr, err := bankapi.NewStatementReader(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := sr.Next(); !ok || err != nil {
		t.Fatalf("first line: %v %v", ok, err)
	}
	if _, ok, err := sr.Next(); ok || err == nil {
		t.Fatalf("the end without a closing line: %v %v", ok, err)
	}
}
