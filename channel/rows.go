package channel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// BankTxn is one row of bank_txns: a top-up, a withdrawal or a refund
// payout, and where it stands with its bank.
type BankTxn struct {
	Seq        int64
	TxnID      string // topup_id or withdrawal_id; the bank's request_id
	Kind       Kind
	Method     string
	UserID     string
	Bank       string
	CardID     string
	CardToken  string
	Amount     zhifu.Amount
	HoldAmount zhifu.Amount // balance part of a balance+card payment
	TradeNo    string
	SourceTxn  string
	Status     Status
	Stage      Stage
	Attempts   int
	NextAt     time.Time
	Deadline   time.Time
	Reason     string
	BankTxnID  string
	ResolvedBy string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	SettledAt  time.Time
	// A card repayment's discount: paid from the campaign's budget account
	// into the frozen money, so the payer paid Amount − Discount and the
	// bank is paid Amount; a failed payout returns it to BudgetAccount.
	CampaignID    string
	CampaignLabel string
	Discount      zhifu.Amount
	BudgetAccount int64
}

// PayerAmount is what left the payer's wallet.
func (t *BankTxn) PayerAmount() zhifu.Amount { return t.Amount - t.Discount }

func (t *BankTxn) rules() Txn {
	return Txn{Kind: t.Kind, Method: t.Method, Status: t.Status, Stage: t.Stage, Attempts: t.Attempts,
		Amount: int64(t.Amount), NextAt: t.NextAt, Deadline: t.Deadline}
}

const txnColumns = `seq, txn_id, kind, method, user_id, bank, card_id, card_token, amount, hold_amount,
	trade_no, source_txn, status, stage, attempts, next_at, deadline, reason, bank_txn_id, resolved_by,
	created_at, updated_at, settled_at, campaign_id, campaign_label, discount, budget_account`

// scanTxn reads txnColumns. Numbers go through plain int64 so both
// drivers take them the same way.
func scanTxn(row ledger.Row) (*BankTxn, error) {
	var t BankTxn
	var kind, status, stage string
	var amount, hold, attempts, next, deadline, created, updated, settled, discount int64
	err := row.Scan(&t.Seq, &t.TxnID, &kind, &t.Method, &t.UserID, &t.Bank, &t.CardID, &t.CardToken,
		&amount, &hold, &t.TradeNo, &t.SourceTxn, &status, &stage, &attempts, &next, &deadline,
		&t.Reason, &t.BankTxnID, &t.ResolvedBy, &created, &updated, &settled,
		&t.CampaignID, &t.CampaignLabel, &discount, &t.BudgetAccount)
	if err != nil {
		return nil, err
	}
	t.Kind, t.Status, t.Stage = Kind(kind), Status(status), Stage(stage)
	t.Amount, t.HoldAmount, t.Attempts = zhifu.Amount(amount), zhifu.Amount(hold), int(attempts)
	t.Discount = zhifu.Amount(discount)
	t.NextAt, t.Deadline = fromNanos(next), fromNanos(deadline)
	t.CreatedAt, t.UpdatedAt, t.SettledAt = fromNanos(created), fromNanos(updated), fromNanos(settled)
	return &t, nil
}

// loadTxn reads one transaction; lock holds it until the transaction ends
// (PostgreSQL). A missing one is (nil, nil).
func loadTxn(ctx context.Context, q ledger.Querier, txnID string, lock bool) (*BankTxn, error) {
	query := `SELECT ` + txnColumns + ` FROM bank_txns WHERE txn_id = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	t, err := scanTxn(q.QueryRow(ctx, query, txnID))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("channel: load %s: %w", txnID, err)
	}
	return t, nil
}

// queryTxns runs a query selecting txnColumns.
func queryTxns(ctx context.Context, q ledger.Querier, query string, args ...any) ([]*BankTxn, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("channel: query transactions: %w", err)
	}
	defer rows.Close()
	var out []*BankTxn
	for rows.Next() {
		t, err := scanTxn(rows)
		if err != nil {
			return nil, fmt.Errorf("channel: scan transaction: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// insertTxn writes a new transaction. Its id (or, for a card payment, its
// trade and card while processing) already taken fails the op: another
// process recorded it after Prepare looked, and the op's transfers roll
// back with it; run alone again, Prepare finds the other one.
func insertTxn(ctx context.Context, q ledger.Querier, t *BankTxn) error {
	n, err := q.Exec(ctx, `INSERT INTO bank_txns (txn_id, kind, method, user_id, bank, card_id, card_token,
		amount, hold_amount, trade_no, source_txn, status, stage, attempts, next_at, deadline, reason,
		bank_txn_id, resolved_by, created_at, updated_at, settled_at, campaign_id, campaign_label, discount,
		budget_account)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		t.TxnID, string(t.Kind), t.Method, t.UserID, t.Bank, t.CardID, t.CardToken, int64(t.Amount),
		int64(t.HoldAmount), t.TradeNo, t.SourceTxn, string(t.Status), string(t.Stage), int64(t.Attempts),
		nanos(t.NextAt), nanos(t.Deadline), t.Reason, t.BankTxnID, t.ResolvedBy, nanos(t.CreatedAt),
		nanos(t.UpdatedAt), nanos(t.SettledAt), t.CampaignID, t.CampaignLabel, int64(t.Discount), t.BudgetAccount)
	if err != nil {
		return fmt.Errorf("channel: insert %s: %w", t.TxnID, err)
	}
	if n != 1 {
		return fmt.Errorf("channel: %s recorded concurrently", t.TxnID)
	}
	return nil
}

// saveTxn writes what a change moved. The WHERE clause repeats the status
// and stage read under the row's lock, so a change made without that lock
// fails the op instead of being overwritten (a Write: the count error is
// an ErrConflict, and the transaction runs again on fresh rows).
func saveTxn(ctx context.Context, q ledger.Querier, old, t *BankTxn) error {
	if old.Status.Final() && t.Status != old.Status {
		// Exactly one outcome per bank transaction: a change that turns a
		// SUCCESS into a FAILED (or back) would credit or refund twice.
		panic(fmt.Sprintf("channel: %s would leave final status %s for %s", t.TxnID, old.Status, t.Status))
	}
	err := q.Write(ctx, 1, `UPDATE bank_txns SET status = ?, stage = ?, attempts = ?, next_at = ?, deadline = ?,
		reason = ?, bank_txn_id = ?, resolved_by = ?, updated_at = ?, settled_at = ?
		WHERE txn_id = ? AND status = ? AND stage = ?`,
		string(t.Status), string(t.Stage), int64(t.Attempts), nanos(t.NextAt), nanos(t.Deadline),
		t.Reason, t.BankTxnID, t.ResolvedBy, nanos(t.UpdatedAt), nanos(t.SettledAt),
		t.TxnID, string(old.Status), string(old.Stage))
	if err != nil {
		return fmt.Errorf("channel: update %s: %w", t.TxnID, err)
	}
	return nil
}

// Card is a bound card. The number is not kept: the bank's token and the
// last four digits are all the platform has.
type Card struct {
	CardID    string
	UserID    string
	Bank      string
	Token     string
	Last4     string
	Status    string // active | unbound
	CreatedAt time.Time
}

// Card statuses.
const (
	CardActive  = "active"
	CardUnbound = "unbound"
)

const cardColumns = `card_id, user_id, bank, card_token, last4, status, created_at`

func scanCard(row ledger.Row) (*Card, error) {
	var c Card
	var created int64
	if err := row.Scan(&c.CardID, &c.UserID, &c.Bank, &c.Token, &c.Last4, &c.Status, &created); err != nil {
		return nil, err
	}
	c.CreatedAt = fromNanos(created)
	return &c, nil
}

func queryCards(ctx context.Context, q ledger.Querier, query string, args ...any) ([]*Card, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("channel: query cards: %w", err)
	}
	defer rows.Close()
	var out []*Card
	for rows.Next() {
		c, err := scanCard(rows)
		if err != nil {
			return nil, fmt.Errorf("channel: scan card: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// nanos stores a time as unix nanoseconds, the zero time as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
