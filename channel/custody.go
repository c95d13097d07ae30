package channel

import (
	"context"
	"fmt"

	"zhifu"
)

// BankCustody is one bank's side of custody (备付金): the platform's money
// there by the bank's own books, and whether those books agree with the
// platform's records of its debits and credits at the bank.
type BankCustody struct {
	Bank string
	// Funds is the platform's settlement balance by the bank's books.
	Funds zhifu.Amount
	// Debited and Credited are the bank's successful debits (top-ups) and
	// credits (payouts) for the platform.
	Debited, Credited zhifu.Amount
	Violations        []string
}

// sums are the platform's bank transactions by bank, kind (every payout
// counted as KindWithdrawal) and whether
// they are done (SUCCESS) or may be at the bank without the platform
// knowing the outcome yet (PROCESSING, or requeued after an attempt).
type sums map[string]map[Kind]struct{ done, open zhifu.Amount }

func (s *Service) sums(ctx context.Context) (sums, error) {
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT bank, kind, status, coalesce(sum(amount), 0) FROM bank_txns
		WHERE status IN (?, ?) OR (status = ? AND attempts > 0) GROUP BY bank, kind, status`,
		string(StatusSuccess), string(StatusProcessing), string(StatusQueued))
	if err != nil {
		return nil, fmt.Errorf("channel: custody sums: %w", err)
	}
	defer rows.Close()
	out := make(sums)
	for rows.Next() {
		var bank, kind, status string
		var amount int64
		if err := rows.Scan(&bank, &kind, &status, &amount); err != nil {
			return nil, fmt.Errorf("channel: custody sums: %w", err)
		}
		if out[bank] == nil {
			out[bank] = make(map[Kind]struct{ done, open zhifu.Amount })
		}
		k := Kind(kind)
		if k.Payout() {
			k = KindWithdrawal // a card repayment is a payout like any other
		}
		v := out[bank][k]
		if Status(status) == StatusSuccess {
			v.done += zhifu.Amount(amount)
		} else {
			v.open += zhifu.Amount(amount)
		}
		out[bank][k] = v
	}
	return out, rows.Err()
}

// BooksAdjustment is what a bank moved beyond the platform's bank
// transactions, as reconciliation found and recorded it (a top-up the
// platform failed that the bank took, a second debit, a payout the bank
// never made): debits and credits, positive when the bank moved more.
type BooksAdjustment struct {
	Debited, Credited zhifu.Amount
}

// UseBooksAdjustments makes Custody count what reconciliation found; f
// reads it, by bank. It is not safe to call once the service is in use.
func (s *Service) UseBooksAdjustments(f func(context.Context) (map[string]BooksAdjustment, error)) {
	s.adjust = f
}

// Custody compares every bank's books with the platform's records, and
// returns nil when the platform cannot read the banks' books. It reads the
// records, then the books, then the records again, so that traffic
// meanwhile cannot make a false alarm: what the bank had debited by the
// time its books were read must be, afterwards, either credited to a wallet
// or still in flight; and what the platform had credited before must be
// in the bank's books. The same holds for payouts. The platform's records
// are its bank transactions and what reconciliation found the bank moved
// beyond them (UseBooksAdjustments).
func (s *Service) Custody(ctx context.Context) ([]BankCustody, error) {
	if s.cfg.Books == nil {
		return nil, nil
	}
	before, err := s.sums(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]BankCustody, 0, len(s.order))
	for _, b := range s.order {
		books, err := s.cfg.Books(b.name)
		if err != nil {
			return nil, fmt.Errorf("channel: books of %s: %w", b.name, err)
		}
		c := BankCustody{Bank: b.name, Funds: zhifu.Amount(books.Settlement),
			Debited: zhifu.Amount(books.Debited), Credited: zhifu.Amount(books.Credited)}
		if books.Unbalanced != nil {
			c.Violations = append(c.Violations, fmt.Sprintf("bank %s: its own books do not balance: %v", b.name, books.Unbalanced))
		}
		out = append(out, c)
	}
	after, err := s.sums(ctx)
	if err != nil {
		return nil, err
	}
	// Read last: a repair committed meanwhile only adds what the bank
	// already had when its books were read.
	var adjust map[string]BooksAdjustment
	if s.adjust != nil {
		if adjust, err = s.adjust(ctx); err != nil {
			return nil, err
		}
	}
	for i := range out {
		c := &out[i]
		adj := adjust[c.Bank]
		for _, side := range []struct {
			kind     Kind
			bank     zhifu.Amount
			adj      zhifu.Amount
			verb     string
			platform string
		}{{KindTopup, c.Debited, adj.Debited, "debited", "top-ups credited to wallets"},
			{KindWithdrawal, c.Credited, adj.Credited, "paid out", "withdrawals paid"}} {
			was, is := before[c.Bank][side.kind], after[c.Bank][side.kind]
			if side.bank < was.done+side.adj {
				c.Violations = append(c.Violations, fmt.Sprintf("bank %s: %s %s, less than the platform's %s %s%s",
					c.Bank, side.verb, side.bank, side.platform, was.done, reconciled(side.adj)))
			}
			if side.bank > is.done+is.open+side.adj {
				c.Violations = append(c.Violations, fmt.Sprintf(
					"bank %s: %s %s, more than the platform's %s %s and those in flight %s%s",
					c.Bank, side.verb, side.bank, side.platform, is.done, is.open, reconciled(side.adj)))
			}
		}
	}
	return out, nil
}

func reconciled(adj zhifu.Amount) string {
	if adj == 0 {
		return ""
	}
	return fmt.Sprintf(" with %s found by reconciliation", adj)
}
