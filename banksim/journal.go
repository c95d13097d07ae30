package banksim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"zhifu/bankapi"
)

// submitResult says what submit did with a request.
type submitResult int

const (
	submitCreated  submitResult = iota // a new transaction
	submitExists                       // the same request again: nothing changed
	submitConflict                     // the request_id was used for something else
)

// submit records a debit or credit. Idempotency is checked first: a known
// request_id answers the stored row. A new one gets the next bank_txn_id
// and, unless async, is settled in the same transaction, with fail forcing
// BANK_ERROR.
func (st *store) submit(ctx context.Context, in txnIn, now time.Time, async, fail bool) (row, submitResult, error) {
	var out row
	res := submitCreated
	err := st.update(ctx, func(tx *sql.Tx) error {
		have, err := scanRow(tx.QueryRowContext(ctx, `SELECT `+journalColumns+` FROM journal
			WHERE bank = ? AND request_id = ?`, in.Bank, in.RequestID))
		if err == nil {
			out, res = have, submitExists
			if have.txnIn != in {
				res = submitConflict
			}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `UPDATE banks SET txn_seq = txn_seq + 1 WHERE bank = ? RETURNING txn_seq`,
			in.Bank).Scan(&seq); err != nil {
			return err
		}
		out = row{txnIn: in, Status: bankapi.StatusAccepted, BankTxnID: bankTxnID(in.Bank, now, seq), Created: now.UnixNano()}
		if !async {
			if err := applyOutcome(ctx, tx, &out, fail, now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO journal (`+journalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.RequestID, out.Bank, out.Kind, out.Channel, out.CardToken, out.Amount, out.CallbackURL,
			out.Status, out.Reason, out.BankTxnID, out.Created, out.Settled)
		return err
	})
	if err != nil {
		return row{}, 0, fmt.Errorf("banksim: submit: %w", err)
	}
	return out, res, nil
}

// settle decides an ACCEPTED transaction. It reports false, changing
// nothing, when the transaction was already decided.
func (st *store) settle(ctx context.Context, bank, requestID string, fail bool, now time.Time) (row, bool, error) {
	var out row
	changed := false
	err := st.update(ctx, func(tx *sql.Tx) error {
		r, err := scanRow(tx.QueryRowContext(ctx, `SELECT `+journalColumns+` FROM journal
			WHERE bank = ? AND request_id = ?`, bank, requestID))
		if err != nil {
			return err
		}
		out = r
		if r.Status != bankapi.StatusAccepted {
			return nil
		}
		if err := applyOutcome(ctx, tx, &out, fail, now); err != nil {
			return err
		}
		changed = true
		_, err = tx.ExecContext(ctx, `UPDATE journal SET status = ?, reason = ?, settled_at = ?
			WHERE bank = ? AND request_id = ?`, out.Status, out.Reason, out.Settled, bank, requestID)
		return err
	})
	if err != nil {
		return row{}, false, fmt.Errorf("banksim: settle: %w", err)
	}
	return out, changed, nil
}

// applyOutcome loads the two balances r touches, decides, and saves them,
// setting r's status, reason and settlement time.
func applyOutcome(ctx context.Context, tx *sql.Tx, r *row, fail bool, now time.Time) error {
	var b balances
	if err := tx.QueryRowContext(ctx, `SELECT settlement FROM banks WHERE bank = ?`, r.Bank).Scan(&b.settlement); err != nil {
		return err
	}
	err := tx.QueryRowContext(ctx, `SELECT balance FROM cards WHERE bank = ? AND card_token = ?`,
		r.Bank, r.CardToken).Scan(&b.card)
	switch {
	case err == nil:
		b.cardFound = true
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	status, reason, after := decide(r.Kind, r.Amount, b, fail)
	r.Status, r.Reason = status, reason
	r.Settled = sql.NullInt64{Int64: now.UnixNano(), Valid: true}
	if status != bankapi.StatusSuccess {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE banks SET settlement = ? WHERE bank = ?`, after.settlement, r.Bank); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE cards SET balance = ? WHERE bank = ? AND card_token = ?`,
		after.card, r.Bank, r.CardToken)
	return err
}

// accepted lists up to limit transactions not yet decided, oldest first.
func (st *store) accepted(ctx context.Context, limit int) ([]row, error) {
	rows, err := st.reader.QueryContext(ctx, `SELECT `+journalColumns+` FROM journal
		WHERE status = 'ACCEPTED' ORDER BY created_at LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("banksim: accepted: %w", err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("banksim: accepted: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (st *store) cardBalance(ctx context.Context, bank, token string) (int64, bool, error) {
	var bal int64
	err := st.reader.QueryRowContext(ctx, `SELECT balance FROM cards WHERE bank = ? AND card_token = ?`,
		bank, token).Scan(&bal)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("banksim: card balance: %w", err)
	}
	return bal, true, nil
}
