package recon

import (
	"context"
	"fmt"

	"zhifu/channel"
)

// overdueCounts are what reviewOverdue changed.
type overdueCounts struct{ opened, closed int64 }

// overdueItemsMax bounds the overdue items one pass closes.
const overdueItemsMax = 500

// reviewOverdue makes a review item of each of the bank's transactions
// still PROCESSING past its deadline by more than the grace (the statement
// sweep had its chance), unless a run already made one of it, and closes
// the overdue items whose transaction was decided meanwhile (a late
// callback, the sweep, a run's repair). runID is the run doing it, "" for
// the background loop.
func (s *Service) reviewOverdue(ctx context.Context, bank, runID string) (overdueCounts, error) {
	var c overdueCounts
	now := s.now()
	txns, err := s.cfg.Channels.OverdueSince(ctx, bank, now.Add(-s.cfg.OverdueGrace), channel.OverdueMax)
	if err != nil {
		return c, err
	}
	for _, t := range txns {
		key := OverdueKey(t.TxnID)
		it := &Item{ItemID: ItemID(bank, key), Bank: bank, Key: key, Day: Day(t.CreatedAt), RunID: runID, Class: Overdue,
			Status: Open, TxnID: t.TxnID, Kind: string(t.Kind), UserID: t.UserID, RequestID: t.TxnID,
			BankTxnID: t.BankTxnID, OurAmount: int64(t.Amount), CreatedAt: now, UpdatedAt: now,
			Detail: fmt.Sprintf("still PROCESSING %s past its deadline: the bank's answers and statement do not decide it",
				now.Sub(t.Deadline).Round(1e9))}
		op := &itemOp{it: it, onlyAlone: true}
		if err := s.do(ctx, op); err != nil {
			return c, err
		}
		if op.applied {
			c.opened++
		}
	}
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT item_id, txn_id FROM recon_items
		WHERE status = ? AND class = ? AND bank = ? ORDER BY created_at LIMIT ?`, Open, string(Overdue), bank, overdueItemsMax)
	if err != nil {
		return c, fmt.Errorf("recon: overdue items: %w", err)
	}
	var items, ids []string
	for rows.Next() {
		var item, txn string
		if err := rows.Scan(&item, &txn); err != nil {
			rows.Close()
			return c, fmt.Errorf("recon: overdue items: %w", err)
		}
		items, ids = append(items, item), append(ids, txn)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("recon: overdue items: %w", err)
	}
	for start := 0; start < len(ids); start += channel.LoadTxnsMax {
		end := min(start+channel.LoadTxnsMax, len(ids))
		found, err := channel.LoadTxns(ctx, s.cfg.Store.Reader(), ids[start:end])
		if err != nil {
			return c, err
		}
		for i := start; i < end; i++ {
			t := found[ids[i]]
			if t == nil || !t.Status.Final() {
				continue
			}
			op := &closeOp{itemID: items[i], detail: fmt.Sprintf("decided %s by %s", t.Status, t.ResolvedBy), now: now}
			if err := s.do(ctx, op); err != nil {
				return c, err
			}
			if op.closed {
				c.closed++
			}
		}
	}
	return c, nil
}
