package campaign

import (
	"context"
	"fmt"
	"strings"
	"time"

	"zhifu"
)

// Dry runs look back this far, over at most this many payments.
const (
	DryRunPeriod   = time.Hour
	dryRunScanMax  = 2_000_000
	dryRunPageSize = 5000
)

// DryRunResult is what a campaign would have done over the last hour of
// real payments.
type DryRunResult struct {
	CampaignID  string
	From, To    time.Time
	Payments    int64 // payments of the hour
	Discounted  int64 // of which the campaign would have discounted
	Payers      int64 // distinct payers reached
	Discount    zhifu.Amount
	Budget      zhifu.Amount
	ExhaustedAt time.Time // when the budget would have run out; zero if it would not
	ByKind      map[string]DryRunKind
	Truncated   bool // more payments than a dry run reads; the figures cover the newest
	Note        string
}

// DryRunKind is a dry run's figures for one payment kind.
type DryRunKind struct {
	Payments, Discounted int64
	Discount             zhifu.Amount
}

// DryRun runs campaign id over the payments of the last hour as if it had
// been live for every payer (no canary) from the hour's start: its scope,
// minimum, caps per payment and per payer and its budget, in the order the
// payments were made. Nothing is written.
func (s *Service) DryRun(ctx context.Context, id string) (*DryRunResult, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Clock.Now().UTC()
	d := &DryRunResult{CampaignID: id, From: now.Add(-DryRunPeriod), To: now, Budget: c.Budget,
		ByKind: map[string]DryRunKind{},
		Note:   "as if live for every payer, without canary, from the hour's start; payments a discount would have made affordable are not counted"}
	pays, truncated, err := s.recentPayments(ctx, d.From)
	if err != nil {
		return nil, err
	}
	d.Truncated = truncated
	used := map[string]zhifu.Amount{}
	left := c.Budget
	for i := len(pays) - 1; i >= 0; i-- { // oldest first
		p := pays[i]
		d.Payments++
		k := d.ByKind[p.Kind]
		k.Payments++
		if c.applies(p) && left > 0 {
			x := min(c.discountOf(p.Amount), left, c.UserDailyCap-used[p.PayerID])
			if x > 0 {
				if used[p.PayerID] == 0 {
					d.Payers++
				}
				used[p.PayerID] += x
				left -= x
				d.Discounted++
				d.Discount += x
				k.Discounted++
				k.Discount += x
				if left == 0 {
					d.ExhaustedAt = p.Now
				}
			}
		}
		d.ByKind[p.Kind] = k
	}
	return d, nil
}

// recentPayments reads the payments made since from out of the ledger,
// newest first: every transfer whose code is a payment kind's, its payer
// the debited wallet's user. A trade's payee is its merchant, a bill's the
// biller whose wallet was credited, a transfer's the recipient.
func (s *Service) recentPayments(ctx context.Context, from time.Time) ([]Payment, bool, error) {
	q := s.cfg.Store.Reader()
	merchants, err := s.merchantsByWallet(ctx)
	if err != nil {
		return nil, false, err
	}
	var out []Payment
	var trades []int
	before := int64(1) << 62
	for len(out) < dryRunScanMax {
		rows, err := q.Query(ctx, `SELECT seq, id, debit_account_id, credit_account_id, amount, code, ts
			FROM transfers WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, dryRunPageSize)
		if err != nil {
			return nil, false, fmt.Errorf("campaign: dry run: %w", err)
		}
		n, done := 0, false
		for rows.Next() {
			var seq, debit, credit, amount, code, ts int64
			var tid string
			if err := rows.Scan(&seq, &tid, &debit, &credit, &amount, &code, &ts); err != nil {
				rows.Close()
				return nil, false, fmt.Errorf("campaign: dry run: %w", err)
			}
			n++
			before = seq
			if ts < from.UnixNano() {
				done = true
				break
			}
			kind, ok := zhifu.KindOfTransfer(uint16(code))
			if !ok || strings.HasPrefix(tid, "disc:") {
				continue
			}
			payer, ok := zhifu.UserOfAccount(debit)
			if !ok {
				continue
			}
			p := Payment{Kind: kind, Ref: tid, PayerID: zhifu.UserIDOf(payer), Amount: zhifu.Amount(amount),
				Now: time.Unix(0, ts).UTC()}
			switch kind {
			case zhifu.KindTrade:
				trades = append(trades, len(out))
				p.Ref = strings.TrimPrefix(tid, "pay:")
			case zhifu.KindBillPayment:
				p.PayeeID = merchants[credit]
			case zhifu.KindTransfer:
				if u, ok := zhifu.UserOfAccount(credit); ok {
					p.PayeeID = zhifu.UserIDOf(u)
				}
			}
			out = append(out, p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, false, fmt.Errorf("campaign: dry run: %w", err)
		}
		if done || n < dryRunPageSize {
			return out, false, s.tradeMerchants(ctx, out, trades)
		}
	}
	return out, true, s.tradeMerchants(ctx, out, trades)
}

// tradeMerchants names the merchant of each trade payment (at indexes of
// out), and its full price: a trade paid with a discount took less from
// the buyer than its total.
func (s *Service) tradeMerchants(ctx context.Context, out []Payment, idx []int) error {
	q := s.cfg.Store.Reader()
	for start := 0; start < len(idx); start += 500 {
		part := idx[start:min(start+500, len(idx))]
		args := make([]any, len(part))
		at := make(map[string]int, len(part))
		for i, j := range part {
			args[i] = out[j].Ref
			at[out[j].Ref] = j
		}
		rows, err := q.Query(ctx, `SELECT trade_no, merchant_id, total_amount FROM trades WHERE trade_no IN (?`+
			strings.Repeat(", ?", len(part)-1)+`)`, args...)
		if err != nil {
			return fmt.Errorf("campaign: dry run trades: %w", err)
		}
		for rows.Next() {
			var no, merchant string
			var total int64
			if err := rows.Scan(&no, &merchant, &total); err != nil {
				rows.Close()
				return fmt.Errorf("campaign: dry run trades: %w", err)
			}
			if j, ok := at[no]; ok {
				out[j].PayeeID, out[j].Amount = merchant, zhifu.Amount(total)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("campaign: dry run trades: %w", err)
		}
	}
	return nil
}

// merchantsByWallet maps merchants' wallet accounts to their ids.
func (s *Service) merchantsByWallet(ctx context.Context) (map[int64]string, error) {
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT merchant_id, user_id FROM merchants`)
	if err != nil {
		return nil, fmt.Errorf("campaign: merchants: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id, user string
		if err := rows.Scan(&id, &user); err != nil {
			return nil, fmt.Errorf("campaign: merchants: %w", err)
		}
		if num, ok := zhifu.ParseUserID(user); ok {
			out[zhifu.WalletAccountID(num)] = id
		}
	}
	return out, rows.Err()
}

// PendingApproval is the id of the approval campaign id waits for, or "".
func (s *Service) PendingApproval(ctx context.Context, id string) (string, error) {
	var out string
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT approval_id FROM approvals WHERE kind = ? AND subject = ?
		AND state = 'PENDING' ORDER BY proposed_at DESC LIMIT 1`, KindLaunch, id)
	if err != nil {
		return "", fmt.Errorf("campaign: approval of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(&out); err != nil {
			return "", err
		}
	}
	return out, rows.Err()
}
