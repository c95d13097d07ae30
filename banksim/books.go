package banksim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Books is one bank's books at one instant, all amounts in fen.
type Books struct {
	Bank string `json:"bank"`
	// Funding is all the money the bank ever held for this simulation: the
	// settlement float plus the starting balance of every card provisioned.
	Funding         int64 `json:"funding"`
	SettlementFloat int64 `json:"settlement_float"`
	// Settlement is the platform's settlement account now.
	Settlement int64 `json:"settlement"`
	// CardBalances is the sum over Cards card accounts.
	CardBalances int64 `json:"card_balances"`
	Cards        int64 `json:"cards"`
	// Debited and Credited sum the successful debits and credits, the
	// repeats of a seeded difference (Differ) among them.
	Debited  int64 `json:"debited"`
	Credited int64 `json:"credited"`
	// Transactions counts the journal; Accepted those not yet decided.
	Transactions int64 `json:"transactions"`
	Accepted     int64 `json:"accepted"`
}

// Check reports whether the books balance: card balances plus settlement
// equal the funding (no money created or lost), and the settlement account
// equals its float plus the successful debits minus the successful credits
// (the balance agrees with the journal).
func (b Books) Check() error {
	var errs []error
	if b.CardBalances+b.Settlement != b.Funding {
		errs = append(errs, fmt.Errorf("%s: cards %d + settlement %d != funding %d",
			b.Bank, b.CardBalances, b.Settlement, b.Funding))
	}
	if b.SettlementFloat+b.Debited-b.Credited != b.Settlement {
		errs = append(errs, fmt.Errorf("%s: float %d + debited %d - credited %d != settlement %d",
			b.Bank, b.SettlementFloat, b.Debited, b.Credited, b.Settlement))
	}
	if b.Settlement < 0 || b.CardBalances < 0 {
		errs = append(errs, fmt.Errorf("%s: negative balance", b.Bank))
	}
	return errors.Join(errs...)
}

// books reads bank's books in one read transaction, so every figure is of
// the same committed state.
func (st *store) books(ctx context.Context, bank string) (Books, error) {
	b := Books{Bank: bank}
	tx, err := st.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return b, fmt.Errorf("banksim: books: %w", err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `SELECT funding, settlement_float, settlement FROM banks WHERE bank = ?`,
		bank).Scan(&b.Funding, &b.SettlementFloat, &b.Settlement)
	if err != nil {
		return b, fmt.Errorf("banksim: books: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT coalesce(sum(balance), 0), count(*) FROM cards WHERE bank = ?`,
		bank).Scan(&b.CardBalances, &b.Cards)
	if err != nil {
		return b, fmt.Errorf("banksim: books: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT
			coalesce(sum(CASE WHEN status = 'SUCCESS' AND kind = 'debit' THEN amount END), 0),
			coalesce(sum(CASE WHEN status = 'SUCCESS' AND kind = 'credit' THEN amount END), 0),
			count(*),
			coalesce(sum(status = 'ACCEPTED'), 0)
		FROM journal WHERE bank = ?`, bank).Scan(&b.Debited, &b.Credited, &b.Transactions, &b.Accepted)
	if err != nil {
		return b, fmt.Errorf("banksim: books: %w", err)
	}
	var debited, credited int64
	err = tx.QueryRowContext(ctx, `SELECT coalesce(sum(CASE WHEN kind = 'debit' THEN amount END), 0),
			coalesce(sum(CASE WHEN kind = 'credit' THEN amount END), 0) FROM repeats WHERE bank = ?`,
		bank).Scan(&debited, &credited)
	if err != nil {
		return b, fmt.Errorf("banksim: books: %w", err)
	}
	b.Debited, b.Credited = b.Debited+debited, b.Credited+credited
	return b, nil
}
