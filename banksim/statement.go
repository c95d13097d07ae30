package banksim

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// statementHeader is the statement's first line; the columns are described
// in the package documentation.
var statementHeader = []string{"request_id", "bank_txn_id", "kind", "amount", "status", "settled_at"}

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
	Kind      string
	Amount    int64
	Status    string
	SettledAt time.Time
}

// statement streams the transactions bank settled in [from, to), in order,
// after calling open with the settlement balance at from; it returns the
// balance at to. It reads in one transaction, so the balances and the lines
// agree.
func (st *store) statement(ctx context.Context, bank string, from, to time.Time,
	open func(int64) error, line func(row) error) (int64, error) {
	tx, err := st.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("banksim: statement: %w", err)
	}
	defer tx.Rollback()
	var bal int64
	err = tx.QueryRowContext(ctx, `SELECT b.settlement_float
			+ coalesce(sum(CASE WHEN j.kind = 'debit' THEN j.amount ELSE -j.amount END), 0)
		FROM banks b LEFT JOIN journal j
			ON j.bank = b.bank AND j.status = 'SUCCESS' AND j.settled_at < ?
		WHERE b.bank = ?`, from.UnixNano(), bank).Scan(&bal)
	if err != nil {
		return 0, fmt.Errorf("banksim: statement: %w", err)
	}
	if err := open(bal); err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+journalColumns+` FROM journal
		WHERE bank = ? AND settled_at >= ? AND settled_at < ? ORDER BY settled_at, bank_txn_id`,
		bank, from.UnixNano(), to.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("banksim: statement: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return 0, fmt.Errorf("banksim: statement: %w", err)
		}
		if r.Status == StatusSuccess {
			bal += signed(r.Kind, r.Amount)
		}
		if err := line(r); err != nil {
			return 0, err
		}
	}
	return bal, rows.Err()
}

// signed is a transaction's effect on the settlement account.
func signed(kind string, amount int64) int64 {
	if kind == KindCredit {
		return -amount
	}
	return amount
}

// handleStatement answers GET /banks/{bank}/statements?date=YYYY-MM-DD.
func (s *Sim) handleStatement(w http.ResponseWriter, r *http.Request, b *bankState, _ Scenario) {
	if !s.verifyGET(w, r, b) {
		return
	}
	day, err := time.ParseInLocation(time.DateOnly, r.URL.Query().Get("date"), beijing)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "date must be YYYY-MM-DD")
		return
	}
	from, to := day, day.AddDate(0, 0, 1)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	balanceLine := func(marker string, bal int64, at time.Time) []string {
		return []string{marker, "", "", strconv.FormatInt(bal, 10), "", at.Format(time.RFC3339Nano)}
	}
	open := func(bal int64) error {
		cw.Write(statementHeader)
		return cw.Write(balanceLine(OpeningBalance, bal, from))
	}
	line := func(x row) error {
		return cw.Write([]string{x.RequestID, x.BankTxnID, x.Kind, strconv.FormatInt(x.Amount, 10), x.Status,
			time.Unix(0, x.Settled.Int64).In(beijing).Format(time.RFC3339Nano)})
	}
	closing, err := s.store.statement(r.Context(), b.name, from, to, open, line)
	if err != nil {
		// Lines may already be on the wire: cut the answer short rather
		// than end it with a closing line that would look complete.
		s.log.Error("statement failed", "bank", b.name, "err", err)
		abortConn(w)
		return
	}
	cw.Write(balanceLine(ClosingBalance, closing, to))
	cw.Flush()
}

// ParseStatement reads a statement in the CSV format above. A statement
// without its closing line is an error: it was cut short.
func ParseStatement(rd io.Reader) (Statement, error) {
	var st Statement
	cr := csv.NewReader(rd)
	cr.FieldsPerRecord = len(statementHeader)
	head, err := cr.Read()
	if err != nil {
		return st, fmt.Errorf("banksim: statement: %w", err)
	}
	for i := range head {
		if head[i] != statementHeader[i] {
			return st, fmt.Errorf("banksim: statement: unexpected header %q", head)
		}
	}
	opened, closed := false, false
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("banksim: statement: %w", err)
		}
		if closed {
			return st, errors.New("banksim: statement: lines after the closing balance")
		}
		amount, err1 := strconv.ParseInt(rec[3], 10, 64)
		at, err2 := time.Parse(time.RFC3339Nano, rec[5])
		if err := errors.Join(err1, err2); err != nil {
			return st, fmt.Errorf("banksim: statement line %q: %w", rec, err)
		}
		switch rec[0] {
		case OpeningBalance:
			st.Opening, st.OpeningAt, opened = amount, at, true
		case ClosingBalance:
			st.Closing, st.ClosingAt, closed = amount, at, true
		default:
			st.Lines = append(st.Lines, StatementLine{RequestID: rec[0], BankTxnID: rec[1], Kind: rec[2],
				Amount: amount, Status: rec[4], SettledAt: at})
		}
	}
	if !opened || !closed {
		return st, errors.New("banksim: statement: missing opening or closing balance (cut short?)")
	}
	return st, nil
}
