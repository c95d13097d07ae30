package bankapi

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// statementHeader is the statement's first line; the columns are described
// in the package documentation.
var statementHeader = [...]string{"request_id", "bank_txn_id", "kind", "amount", "status", "settled_at"}

// Bounds of a statement's instants: a bank's statement is of this world's
// days, and an instant near year 9999 could not be written back in RFC 3339
// once moved to Beijing time.
var (
	statementTimeMin = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	statementTimeMax = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Markers in the request_id column of the balance lines.
const (
	OpeningBalance = "OPENING_BALANCE"
	ClosingBalance = "CLOSING_BALANCE"
)

// Statement is a parsed day's statement of one bank.
type Statement struct {
	Opening   int64 // settlement balance at OpeningAt, fen
	OpeningAt time.Time
	Closing   int64 // settlement balance at ClosingAt, fen
	ClosingAt time.Time
	Lines     []StatementLine
}

// StatementLine is one settled transaction.
type StatementLine struct {
	RequestID string
	BankTxnID string
	Kind      string // KindDebit or KindCredit
	Amount    int64  // fen, positive
	Status    string // StatusSuccess or StatusFailed
	SettledAt time.Time
}

// ParseStatement reads a statement in the format of the package
// documentation. It is strict, because the platform settles money by it: the
// header must be exact, the opening balance first and the closing balance
// last, every line a debit or credit of a positive amount that succeeded or
// failed. A statement without its closing line is an error: it was cut
// short. It keeps every line in memory; StatementReader reads one line at a
// time, by the same rules, for statements of millions of lines.
func ParseStatement(rd io.Reader) (Statement, error) {
	var st Statement
	sr, err := NewStatementReader(rd)
	if err != nil {
		return st, err
	}
	for {
		l, ok, err := sr.Next()
		if err != nil {
			return st, err
		}
		if !ok {
			break
		}
		st.Lines = append(st.Lines, l)
	}
	st.Opening, st.OpeningAt = sr.Opening()
	st.Closing, st.ClosingAt = sr.Closing()
	return st, nil
}

// StatementReader reads a statement one line at a time, so that memory
// does not grow with its length. It checks what ParseStatement checks; a
// statement is whole only once Next has reported its end without an error.
type StatementReader struct {
	cr                   *csv.Reader
	opening, closing     int64
	openingAt, closingAt time.Time
	closed               bool
}

// NewStatementReader reads the header and the opening balance.
func NewStatementReader(rd io.Reader) (*StatementReader, error) {
	cr := csv.NewReader(rd)
	cr.FieldsPerRecord = len(statementHeader)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("bankapi: statement: %w", err)
	}
	if [len(statementHeader)]string(head) != statementHeader {
		return nil, fmt.Errorf("bankapi: statement: unexpected header %q", head)
	}
	sr := &StatementReader{cr: cr}
	rec, amount, at, err := sr.record()
	switch {
	case errors.Is(err, io.EOF):
		return nil, errors.New("bankapi: statement: missing opening or closing balance (cut short?)")
	case err != nil:
		return nil, err
	case rec[0] != OpeningBalance:
		return nil, fmt.Errorf("bankapi: statement: line %q before the opening balance", rec)
	}
	sr.opening, sr.openingAt = amount, at
	return sr, nil
}

// record reads one record with its amount and instant parsed.
func (sr *StatementReader) record() ([]string, int64, time.Time, error) {
	rec, err := sr.cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, 0, time.Time{}, io.EOF
	}
	if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("bankapi: statement: %w", err)
	}
	amount, err1 := strconv.ParseInt(rec[3], 10, 64)
	at, err2 := time.Parse(time.RFC3339Nano, rec[5])
	if err2 == nil && (at.Before(statementTimeMin) || !at.Before(statementTimeMax)) {
		err2 = errors.New("time out of range")
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("bankapi: statement line %q: %w", rec, err)
	}
	return rec, amount, at, nil
}

// Next returns the next transaction, or false once the closing balance
// has been read and nothing follows it.
func (sr *StatementReader) Next() (StatementLine, bool, error) {
	rec, amount, at, err := sr.record()
	switch {
	case errors.Is(err, io.EOF) && sr.closed:
		return StatementLine{}, false, nil
	case errors.Is(err, io.EOF):
		return StatementLine{}, false, errors.New("bankapi: statement: missing opening or closing balance (cut short?)")
	case err != nil:
		return StatementLine{}, false, err
	case sr.closed:
		return StatementLine{}, false, errors.New("bankapi: statement: lines after the closing balance")
	case rec[0] == ClosingBalance:
		sr.closing, sr.closingAt, sr.closed = amount, at, true
		return sr.Next()
	}
	l := StatementLine{RequestID: rec[0], BankTxnID: rec[1], Kind: rec[2], Amount: amount, Status: rec[4], SettledAt: at}
	if err := l.check(); err != nil {
		return StatementLine{}, false, fmt.Errorf("bankapi: statement line %q: %w", rec, err)
	}
	return l, true, nil
}

// Opening returns the opening balance and its instant.
func (sr *StatementReader) Opening() (int64, time.Time) { return sr.opening, sr.openingAt }

// Closing returns the closing balance and its instant, once Next has
// reported the statement's end.
func (sr *StatementReader) Closing() (int64, time.Time) { return sr.closing, sr.closingAt }

func (l StatementLine) check() error {
	switch {
	case !ValidRequestID(l.RequestID):
		return errors.New("bad request_id")
	case l.Kind != KindDebit && l.Kind != KindCredit:
		return errors.New("kind must be debit or credit")
	case l.Status != StatusSuccess && l.Status != StatusFailed:
		return errors.New("status must be SUCCESS or FAILED")
	case l.Amount <= 0:
		return errors.New("amount must be positive")
	}
	return nil
}

// StatementWriter writes a statement: Open, then a Line per transaction in
// settlement order, then Close.
type StatementWriter struct {
	cw *csv.Writer
}

// NewStatementWriter returns a writer of a statement to w.
func NewStatementWriter(w io.Writer) *StatementWriter {
	return &StatementWriter{cw: csv.NewWriter(w)}
}

// Open writes the header and the opening balance, in fen, at the start of
// the day.
func (sw *StatementWriter) Open(balance int64, at time.Time) error {
	if err := sw.cw.Write(statementHeader[:]); err != nil {
		return err
	}
	return sw.balance(OpeningBalance, balance, at)
}

// Line writes one settled transaction.
func (sw *StatementWriter) Line(l StatementLine) error {
	return sw.cw.Write([]string{l.RequestID, l.BankTxnID, l.Kind, strconv.FormatInt(l.Amount, 10), l.Status,
		formatTime(l.SettledAt)})
}

// Close writes the closing balance at the end of the day and flushes.
func (sw *StatementWriter) Close(balance int64, at time.Time) error {
	if err := sw.balance(ClosingBalance, balance, at); err != nil {
		return err
	}
	sw.cw.Flush()
	return sw.cw.Error()
}

func (sw *StatementWriter) balance(marker string, balance int64, at time.Time) error {
	return sw.cw.Write([]string{marker, "", "", strconv.FormatInt(balance, 10), "", formatTime(at)})
}

func formatTime(t time.Time) string { return t.In(Beijing).Format(time.RFC3339Nano) }
