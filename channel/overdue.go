package channel

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// OverdueMax bounds one answer of Overdue.
const OverdueMax = 500

// Overdue lists bank transactions still PROCESSING past their deadline,
// oldest deadline first, at most limit (1 to OverdueMax) of them; more
// reports whether there were others.
//
// Past its deadline a transaction waits for the bank's statement. It stays
// here when the statement does not settle it either: the bank's answers
// name another amount or kind than our record (logged as "bank answer does
// not match"), or the bank cannot produce its statement. Such money needs
// a person: reconciliation (package recon) makes a review item of each one
// (OverdueSince), which an operator resolves with a second operator's
// approval. The user sees the transaction as PROCESSING meanwhile, and the
// wallet is neither credited nor (for a withdrawal) given back until it is
// decided.
func (s *Service) Overdue(ctx context.Context, limit int) (txns []*BankTxn, more bool, err error) {
	if limit < 1 || limit > OverdueMax {
		return nil, false, fmt.Errorf("channel: overdue limit %d out of 1..%d", limit, OverdueMax)
	}
	now := nanos(s.now())
	// One query per bank keeps to the workers' index (bank, status,
	// next_at): overdue rows are few, PROCESSING rows many.
	for _, b := range s.order {
		found, err := queryTxns(ctx, s.cfg.Store.Reader(), `SELECT `+txnColumns+` FROM bank_txns
			WHERE bank = ? AND status = ? AND deadline > 0 AND deadline < ?
			ORDER BY deadline, seq LIMIT ?`, b.name, string(StatusProcessing), now, limit+1)
		if err != nil {
			return nil, false, err
		}
		txns = append(txns, found...)
	}
	slices.SortFunc(txns, func(a, b *BankTxn) int {
		if c := a.Deadline.Compare(b.Deadline); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	if len(txns) > limit {
		return txns[:limit], true, nil
	}
	return txns, false, nil
}

// OverdueSince lists, oldest deadline first, at most limit (1 to
// OverdueMax) of the bank's transactions still PROCESSING whose deadline
// passed before since: those that reconciliation hands to a person as
// review items (package recon), once the statement sweep has had its
// chance.
func (s *Service) OverdueSince(ctx context.Context, bankName string, since time.Time, limit int) ([]*BankTxn, error) {
	if limit < 1 || limit > OverdueMax {
		return nil, fmt.Errorf("channel: overdue limit %d out of 1..%d", limit, OverdueMax)
	}
	return queryTxns(ctx, s.cfg.Store.Reader(), `SELECT `+txnColumns+` FROM bank_txns
		WHERE bank = ? AND status = ? AND deadline > 0 AND deadline < ?
		ORDER BY deadline, seq LIMIT ?`, bankName, string(StatusProcessing), nanos(since), limit)
}
