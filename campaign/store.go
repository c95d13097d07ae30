package campaign

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"zhifu"
	"zhifu/ledger"
)

const columns = `num, campaign_id, name, template, percent_bp, amount_off, kinds, merchants, min_amount,
	max_discount, user_daily_cap, budget, starts_at, ends_at, funding, funding_id, plan_per_hour,
	plan_share_bp, plan_ratio_bp, label, budget_account, status, status_reason, version, created_by,
	changed_by, approved_by, created_at, changed_at, live_at, widened_at, stopped_at, funded, returned`

func scan(row ledger.Row) (*Campaign, error) {
	var c Campaign
	var kinds, merchants string
	var amountOff, minAmount, maxDiscount, cap, budget, starts, ends, plan, created, changed int64
	var live, widened, stopped, funded, returned int64
	err := row.Scan(&c.Num, &c.CampaignID, &c.Name, &c.Template, &c.PercentBP, &amountOff, &kinds, &merchants,
		&minAmount, &maxDiscount, &cap, &budget, &starts, &ends, &c.Funding, &c.FundingID, &plan,
		&c.PlanShareBP, &c.PlanRatioBP, &c.Label, &c.BudgetAccount, &c.Status, &c.StatusReason, &c.Version,
		&c.CreatedBy, &c.ChangedBy, &c.ApprovedBy, &created, &changed, &live, &widened, &stopped, &funded,
		&returned)
	if err != nil {
		return nil, err
	}
	c.AmountOff, c.MinAmount, c.MaxDiscount = zhifu.Amount(amountOff), zhifu.Amount(minAmount), zhifu.Amount(maxDiscount)
	c.UserDailyCap, c.Budget, c.PlanPerHour = zhifu.Amount(cap), zhifu.Amount(budget), zhifu.Amount(plan)
	c.Kinds, c.Merchants = split(kinds), split(merchants)
	c.StartsAt, c.EndsAt, c.CreatedAt, c.ChangedAt = at(starts), at(ends), at(created), at(changed)
	c.LiveAt, c.WidenedAt, c.StoppedAt = at(live), at(widened), at(stopped)
	c.Funded, c.Returned = zhifu.Amount(funded), zhifu.Amount(returned)
	return &c, nil
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func at(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// load reads campaign id; lock holds its row to the transaction's end.
// A missing campaign is (nil, nil).
func load(ctx context.Context, q ledger.Querier, id string, lock bool) (*Campaign, error) {
	query := `SELECT ` + columns + ` FROM campaigns WHERE campaign_id = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	c, err := scan(q.QueryRow(ctx, query, id))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("campaign: load %s: %w", id, err)
	}
	return c, nil
}

// insert writes a new campaign and sets its number and budget account.
func insert(ctx context.Context, q ledger.Querier, c *Campaign) error {
	err := q.QueryRow(ctx, `INSERT INTO campaigns (campaign_id, name, template, percent_bp, amount_off, kinds,
		merchants, min_amount, max_discount, user_daily_cap, budget, starts_at, ends_at, funding, funding_id,
		plan_per_hour, plan_share_bp, plan_ratio_bp, label, budget_account, status, version, created_by,
		changed_by, created_at, changed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?) RETURNING num`,
		c.CampaignID, c.Name, c.Template, c.PercentBP, int64(c.AmountOff), strings.Join(c.Kinds, ","),
		strings.Join(c.Merchants, ","), int64(c.MinAmount), int64(c.MaxDiscount), int64(c.UserDailyCap),
		int64(c.Budget), nanos(c.StartsAt), nanos(c.EndsAt), c.Funding, c.FundingID, int64(c.PlanPerHour),
		c.PlanShareBP, c.PlanRatioBP, c.Label, c.Status, c.Version, c.CreatedBy, c.ChangedBy, nanos(c.CreatedAt),
		nanos(c.ChangedAt)).Scan(&c.Num)
	if err != nil {
		return fmt.Errorf("campaign: insert %s: %w", c.CampaignID, err)
	}
	c.BudgetAccount = BudgetAccountID(c.Num)
	if _, err := q.Exec(ctx, `UPDATE campaigns SET budget_account = ? WHERE num = ?`, c.BudgetAccount, c.Num); err != nil {
		return fmt.Errorf("campaign: insert %s: %w", c.CampaignID, err)
	}
	return nil
}

// save writes c over old: every field may change but the identity. The
// WHERE clause repeats the version and status read under the lock.
func save(ctx context.Context, q ledger.Querier, old, c *Campaign) error {
	n, err := q.Exec(ctx, `UPDATE campaigns SET name = ?, template = ?, percent_bp = ?, amount_off = ?,
		kinds = ?, merchants = ?, min_amount = ?, max_discount = ?, user_daily_cap = ?, budget = ?, starts_at = ?,
		ends_at = ?, funding = ?, funding_id = ?, plan_per_hour = ?, plan_share_bp = ?, plan_ratio_bp = ?,
		label = ?, status = ?, status_reason = ?, version = ?, changed_by = ?, approved_by = ?, changed_at = ?,
		live_at = ?, widened_at = ?, stopped_at = ?, funded = ?, returned = ?
		WHERE campaign_id = ? AND version = ? AND status = ?`,
		c.Name, c.Template, c.PercentBP, int64(c.AmountOff), strings.Join(c.Kinds, ","),
		strings.Join(c.Merchants, ","), int64(c.MinAmount), int64(c.MaxDiscount), int64(c.UserDailyCap),
		int64(c.Budget), nanos(c.StartsAt), nanos(c.EndsAt), c.Funding, c.FundingID, int64(c.PlanPerHour),
		c.PlanShareBP, c.PlanRatioBP, c.Label, c.Status, clip(c.StatusReason), c.Version, c.ChangedBy,
		c.ApprovedBy, nanos(c.ChangedAt), nanos(c.LiveAt), nanos(c.WidenedAt), nanos(c.StoppedAt),
		int64(c.Funded), int64(c.Returned), c.CampaignID, old.Version, old.Status)
	if err != nil {
		return fmt.Errorf("campaign: save %s: %w", c.CampaignID, err)
	}
	if n != 1 {
		return fmt.Errorf("campaign %s changed concurrently: %w", c.CampaignID, ledger.ErrConflict)
	}
	return nil
}

func clip(s string) string {
	r := []rune(s)
	if len(r) > reasonLenMax {
		return string(r[:reasonLenMax])
	}
	return s
}

// list reads campaigns newest first, before number before (0 for the
// newest), optionally of one status.
func list(ctx context.Context, q ledger.Querier, status string, before int64, limit int) ([]*Campaign, error) {
	query := `SELECT ` + columns + ` FROM campaigns WHERE (? = '' OR status = ?) AND (? = 0 OR num < ?)
		ORDER BY num DESC LIMIT ?`
	rows, err := q.Query(ctx, query, status, status, before, before, limit)
	if err != nil {
		return nil, fmt.Errorf("campaign: list: %w", err)
	}
	defer rows.Close()
	var out []*Campaign
	for rows.Next() {
		c, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("campaign: list: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// active reads the campaigns that may give discounts now or soon, the
// paused ones (which end at their end like the others), and
// those stopped since stoppedSince, whose budgets may still hold money to
// return (a refund of a discounted payment puts some back).
func active(ctx context.Context, q ledger.Querier, stoppedSince time.Time) ([]*Campaign, error) {
	rows, err := q.Query(ctx, `SELECT `+columns+` FROM campaigns WHERE status IN (?, ?, ?, ?)
		OR (status IN (?, ?) AND stopped_at >= ?) ORDER BY num`, Scheduled, Canary, Live, Paused, Killed, Ended,
		stoppedSince.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("campaign: active: %w", err)
	}
	defer rows.Close()
	var out []*Campaign
	for rows.Next() {
		c, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("campaign: active: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
