package banksim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"zhifu/bankapi"
)

// Differences a test seeds in a bank's books, so that its statement
// differs from what the platform recorded in the ways reconciliation must
// find. Each is a real change to the books (money moves between the card
// and the settlement account, and the books still balance): the statement,
// inquiries and Books all tell the same story afterwards.
const (
	// DifferRepeat moves the money of a request a second time, under a new
	// bank reference, as a bank that charged one card twice: the
	// statement shows the request twice; an inquiry shows the first.
	DifferRepeat = "repeat"
	// DifferFlip turns a decided transaction's outcome: a SUCCESS is
	// reversed (its money moves back, reason REVERSED), a FAILED is
	// carried out after all.
	DifferFlip = "flip"
	// DifferAmount changes a SUCCESS transaction's amount to Amount,
	// moving the difference.
	DifferAmount = "amount"
	// DifferRedate moves a decided transaction's settlement to At, onto
	// another day's statement.
	DifferRedate = "redate"
	// DifferAdd makes a transaction nobody asked for: a debit (or, with
	// TxnKind credit, a credit) of Amount on the card with CardToken,
	// under RequestID.
	DifferAdd = "add"
)

// Difference is one change to a bank's books (POST
// /control/banks/{bank}/differences).
type Difference struct {
	Kind      string    `json:"kind"`
	RequestID string    `json:"request_id"`
	Amount    int64     `json:"amount,omitempty"`
	At        time.Time `json:"at,omitzero"` // redate: the new instant; repeat, add: when (default now)
	CardToken string    `json:"card_token,omitempty"`
	TxnKind   string    `json:"txn_kind,omitempty"` // add: debit (default) or credit
}

// repeatsSchema is the table of repeated movements: the journal holds one
// row per request, the way the bank deduplicates; a repeat is the bank's
// mistake beside it.
const repeatsSchema = `
CREATE TABLE IF NOT EXISTS repeats (
	bank        TEXT    NOT NULL,
	bank_txn_id TEXT    NOT NULL,
	request_id  TEXT    NOT NULL,
	kind        TEXT    NOT NULL CHECK (kind IN ('debit', 'credit')),
	card_token  TEXT    NOT NULL,
	amount      INTEGER NOT NULL CHECK (amount > 0),
	settled_at  INTEGER NOT NULL,
	PRIMARY KEY (bank, bank_txn_id)
) STRICT;
CREATE INDEX IF NOT EXISTS repeats_settled ON repeats (bank, settled_at);
`

// errDiffer is a difference the books cannot take.
type errDiffer struct{ msg string }

func (e *errDiffer) Error() string { return "banksim: " + e.msg }

// Differ applies d to bank's books and returns the transaction it made or
// changed (for a repeat, the repeat).
func (s *Sim) Differ(ctx context.Context, bank string, d Difference) (bankapi.Transaction, error) {
	if s.banks[bank] == nil {
		return bankapi.Transaction{}, &errDiffer{fmt.Sprintf("unknown bank %q", bank)}
	}
	if d.At.IsZero() {
		d.At = s.now()
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var out row
	err := s.store.update(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = differ(ctx, tx, bank, d)
		return err
	})
	if err != nil {
		return bankapi.Transaction{}, err
	}
	s.log.Info("books changed for a test", "bank", bank, "kind", d.Kind, "request_id", d.RequestID)
	return out.transaction(), nil
}

func differ(ctx context.Context, tx *sql.Tx, bank string, d Difference) (row, error) {
	if d.Kind == DifferAdd {
		return differAdd(ctx, tx, bank, d)
	}
	r, err := scanRow(tx.QueryRowContext(ctx, `SELECT `+journalColumns+` FROM journal WHERE bank = ? AND request_id = ?`,
		bank, d.RequestID))
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, &errDiffer{fmt.Sprintf("no transaction %q at %s", d.RequestID, bank)}
	}
	if err != nil {
		return row{}, err
	}
	if r.Status == bankapi.StatusAccepted {
		return row{}, &errDiffer{"the transaction is not decided yet"}
	}
	switch d.Kind {
	case DifferRepeat:
		if r.Status != bankapi.StatusSuccess {
			return row{}, &errDiffer{"only a transaction that moved money can be repeated"}
		}
		if err := move(ctx, tx, bank, r.CardToken, r.Kind, r.Amount); err != nil {
			return row{}, err
		}
		rep := r
		if rep.BankTxnID, err = nextBankTxnID(ctx, tx, bank, d.At); err != nil {
			return row{}, err
		}
		rep.Created, rep.Settled = d.At.UnixNano(), sql.NullInt64{Int64: d.At.UnixNano(), Valid: true}
		_, err = tx.ExecContext(ctx, `INSERT INTO repeats (bank, bank_txn_id, request_id, kind, card_token, amount, settled_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, bank, rep.BankTxnID, rep.RequestID, rep.Kind, rep.CardToken, rep.Amount, rep.Settled.Int64)
		return rep, err
	case DifferFlip:
		if r.Status == bankapi.StatusSuccess {
			err = move(ctx, tx, bank, r.CardToken, opposite(r.Kind), r.Amount)
			r.Status, r.Reason = bankapi.StatusFailed, "REVERSED"
		} else {
			err = move(ctx, tx, bank, r.CardToken, r.Kind, r.Amount)
			r.Status, r.Reason = bankapi.StatusSuccess, ""
		}
	case DifferAmount:
		if r.Status != bankapi.StatusSuccess || d.Amount <= 0 || d.Amount > amountMax {
			return row{}, &errDiffer{"amount changes a transaction that moved money, to a positive amount"}
		}
		switch delta := d.Amount - r.Amount; {
		case delta > 0:
			err = move(ctx, tx, bank, r.CardToken, r.Kind, delta)
		case delta < 0:
			err = move(ctx, tx, bank, r.CardToken, opposite(r.Kind), -delta)
		}
		r.Amount = d.Amount
	case DifferRedate:
		r.Settled = sql.NullInt64{Int64: d.At.UnixNano(), Valid: true}
	default:
		return row{}, &errDiffer{fmt.Sprintf("kind must be %s, %s, %s, %s or %s", DifferRepeat, DifferFlip, DifferAmount,
			DifferRedate, DifferAdd)}
	}
	if err != nil {
		return row{}, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE journal SET status = ?, reason = ?, amount = ?, settled_at = ?
		WHERE bank = ? AND request_id = ?`, r.Status, r.Reason, r.Amount, r.Settled, bank, r.RequestID)
	return r, err
}

func differAdd(ctx context.Context, tx *sql.Tx, bank string, d Difference) (row, error) {
	kind := d.TxnKind
	if kind == "" {
		kind = bankapi.KindDebit
	}
	switch {
	case kind != bankapi.KindDebit && kind != bankapi.KindCredit:
		return row{}, &errDiffer{"txn_kind must be debit or credit"}
	case !bankapi.ValidRequestID(d.RequestID):
		return row{}, &errDiffer{"request_id is not one"}
	case d.Amount <= 0 || d.Amount > amountMax:
		return row{}, &errDiffer{"amount must be positive"}
	}
	if err := move(ctx, tx, bank, d.CardToken, kind, d.Amount); err != nil {
		return row{}, err
	}
	id, err := nextBankTxnID(ctx, tx, bank, d.At)
	if err != nil {
		return row{}, err
	}
	r := row{txnIn: txnIn{Bank: bank, RequestID: d.RequestID, Kind: kind, Channel: channelAPI, CardToken: d.CardToken,
		Amount: d.Amount}, Status: bankapi.StatusSuccess, BankTxnID: id, Created: d.At.UnixNano(),
		Settled: sql.NullInt64{Int64: d.At.UnixNano(), Valid: true}}
	_, err = tx.ExecContext(ctx, `INSERT INTO journal (`+journalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.RequestID, r.Bank, r.Kind, r.Channel, r.CardToken, r.Amount, r.CallbackURL, r.Status, r.Reason, r.BankTxnID,
		r.Created, r.Settled)
	if err != nil {
		return row{}, &errDiffer{fmt.Sprintf("request %q: %v", d.RequestID, err)}
	}
	return r, nil
}

// move moves amount between the card and the settlement account as a
// transaction of kind would, by the bank's one money rule.
func move(ctx context.Context, tx *sql.Tx, bank, token, kind string, amount int64) error {
	var b balances
	if err := tx.QueryRowContext(ctx, `SELECT settlement FROM banks WHERE bank = ?`, bank).Scan(&b.settlement); err != nil {
		return err
	}
	err := tx.QueryRowContext(ctx, `SELECT balance FROM cards WHERE bank = ? AND card_token = ?`, bank, token).Scan(&b.card)
	switch {
	case err == nil:
		b.cardFound = true
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	status, reason, after := decide(kind, amount, b, false)
	if status != bankapi.StatusSuccess {
		return &errDiffer{"the books cannot move it: " + reason}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE banks SET settlement = ? WHERE bank = ?`, after.settlement, bank); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE cards SET balance = ? WHERE bank = ? AND card_token = ?`, after.card, bank, token)
	return err
}

func opposite(kind string) string {
	if kind == bankapi.KindDebit {
		return bankapi.KindCredit
	}
	return bankapi.KindDebit
}

func nextBankTxnID(ctx context.Context, tx *sql.Tx, bank string, at time.Time) (string, error) {
	var seq int64
	if err := tx.QueryRowContext(ctx, `UPDATE banks SET txn_seq = txn_seq + 1 WHERE bank = ? RETURNING txn_seq`,
		bank).Scan(&seq); err != nil {
		return "", err
	}
	return bankTxnID(bank, at, seq), nil
}

// postDifference answers POST /control/banks/{bank}/differences.
func (s *Sim) postDifference(w http.ResponseWriter, r *http.Request) {
	body, ok := readControlBody(w, r)
	if !ok {
		return
	}
	var d Difference
	if err := decodeStrict(body, &d); err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, err.Error())
		return
	}
	t, err := s.Differ(r.Context(), r.PathValue("bank"), d)
	var de *errDiffer
	switch {
	case errors.As(err, &de):
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, de.msg)
	case err != nil:
		writeError(w, http.StatusInternalServerError, bankapi.CodeSystemError, err.Error())
	default:
		writeJSONStatus(w, http.StatusOK, t)
	}
}

// Differ applies d to bank's books through the control API.
func (c *ControlClient) Differ(ctx context.Context, bank string, d Difference) (bankapi.Transaction, error) {
	var t bankapi.Transaction
	err := c.call(ctx, http.MethodPost, "/control/banks/"+bank+"/differences", d, &t)
	return t, err
}
