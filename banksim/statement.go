package banksim

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"time"

	"zhifu/bankapi"
)

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
			+ coalesce((SELECT sum(CASE WHEN kind = 'debit' THEN amount ELSE -amount END) FROM journal
				WHERE bank = b.bank AND status = 'SUCCESS' AND settled_at < ?), 0)
			+ coalesce((SELECT sum(CASE WHEN kind = 'debit' THEN amount ELSE -amount END) FROM repeats
				WHERE bank = b.bank AND settled_at < ?), 0)
		FROM banks b WHERE b.bank = ?`, from.UnixNano(), from.UnixNano(), bank).Scan(&bal)
	if err != nil {
		return 0, fmt.Errorf("banksim: statement: %w", err)
	}
	if err := open(bal); err != nil {
		return 0, err
	}
	// A repeat (a test's seeded difference, see Differ) is a line like
	// any other.
	rows, err := tx.QueryContext(ctx, `SELECT `+journalColumns+` FROM journal
		WHERE bank = ? AND settled_at >= ? AND settled_at < ?
		UNION ALL SELECT request_id, bank, kind, 'api', card_token, amount, '', 'SUCCESS', '', bank_txn_id,
			settled_at, settled_at FROM repeats WHERE bank = ? AND settled_at >= ? AND settled_at < ?
		ORDER BY 12, 10`,
		bank, from.UnixNano(), to.UnixNano(), bank, from.UnixNano(), to.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("banksim: statement: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return 0, fmt.Errorf("banksim: statement: %w", err)
		}
		if r.Status == bankapi.StatusSuccess {
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
	if kind == bankapi.KindCredit {
		return -amount
	}
	return amount
}

// handleStatement answers GET /banks/{bank}/statements?date=YYYY-MM-DD in
// the protocol's format (bankapi.StatementWriter).
func (s *Sim) handleStatement(w http.ResponseWriter, r *http.Request, b *bankState, _ Scenario) {
	if !s.verifyGET(w, r, b) {
		return
	}
	day, err := time.ParseInLocation(time.DateOnly, r.URL.Query().Get("date"), beijing)
	if err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "date must be YYYY-MM-DD")
		return
	}
	from, to := day, day.AddDate(0, 0, 1)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	sw := bankapi.NewStatementWriter(w)
	open := func(bal int64) error { return sw.Open(bal, from) }
	line := func(x row) error {
		return sw.Line(bankapi.StatementLine{RequestID: x.RequestID, BankTxnID: x.BankTxnID, Kind: x.Kind,
			Amount: x.Amount, Status: x.Status, SettledAt: time.Unix(0, x.Settled.Int64)})
	}
	closing, err := s.store.statement(r.Context(), b.name, from, to, open, line)
	if err != nil {
		// Lines may already be on the wire: cut the answer short rather
		// than end it with a closing line that would look complete.
		s.log.Error("statement failed", "bank", b.name, "err", err)
		abortConn(w)
		return
	}
	if err := sw.Close(closing, to); err != nil {
		s.log.Warn("statement not sent whole", "bank", b.name, "err", err)
	}
}
