package recon

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"zhifu"
	"zhifu/channel"
)

// CodeBalance is the balance of every account of one code, in fen (credit
// less debit for credit-normal accounts: customer and platform funds; debit
// less credit for the banks', which are assets).
type CodeBalance struct {
	Code     uint16
	Accounts int64
	Balance  int64
	Kind     string // customer | bank | platform | other
}

// Custody is one custody check (备付金): customer funds must equal the
// platform's money at the banks less its own funds, and bank funds must
// cover customer funds.
type Custody struct {
	At            time.Time
	OK            bool
	CustomerFunds zhifu.Amount // wallets, frozen, escrow
	BankFunds     zhifu.Amount // settlement and in transit, by the ledger
	PlatformFunds zhifu.Amount // revenue, own funds, suspense, campaign budgets
	// Difference is customer funds less (bank funds less platform funds):
	// 0 unless the ledger does not balance or money sits in accounts of a
	// code the chart does not class.
	Difference int64
	// Shortfall is by how much customer funds exceed bank funds (0 when
	// covered): the platform's own funds are negative, as when a
	// reconciliation found money recorded at a bank that it never had.
	Shortfall int64
	Codes     []CodeBalance
	// Explain names the accounts that explain a break.
	Explain []string
	// Banks are the banks' own books against the platform's records,
	// when the check was asked for with them and the books can be read.
	Banks []channel.BankCustody
}

// explainMax bounds the accounts a break names.
const explainMax = 20

// LastCustody returns the latest check, nil before the first.
func (s *Service) LastCustody() *Custody { return s.custody.Load() }

// OpenItems returns the review items OPEN at the latest custody check.
func (s *Service) OpenItems() int64 { return s.open.Load() }

// CheckCustody checks custody from the accounts' balances by code: one
// grouped read of the accounts table, never a replay of the transfers
// (ledger.Check does that). With banks it also compares each bank's own
// books with the platform's records where they can be read. A break is
// logged at error with the accounts that explain it.
func (s *Service) CheckCustody(ctx context.Context, banks bool) (*Custody, error) {
	c := &Custody{At: s.now()}
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT code, count(*), CAST(coalesce(sum(credits_posted), 0) AS BIGINT),
		CAST(coalesce(sum(debits_posted), 0) AS BIGINT) FROM accounts WHERE ledger = ? GROUP BY code ORDER BY code`, s.ledgerID)
	if err != nil {
		return nil, fmt.Errorf("recon: custody: %w", err)
	}
	var customer, bank, platform, other int64
	ok := true
	for rows.Next() {
		var code, n, credits, debits int64
		if err := rows.Scan(&code, &n, &credits, &debits); err != nil {
			rows.Close()
			return nil, fmt.Errorf("recon: custody: %w", err)
		}
		cb := CodeBalance{Code: uint16(code), Accounts: n}
		var sum *int64
		switch c16 := uint16(code); {
		case zhifu.IsCustomerFunds(c16):
			cb.Kind, cb.Balance, sum = "customer", credits-debits, &customer
		case zhifu.IsBankFunds(c16):
			cb.Kind, cb.Balance, sum = "bank", debits-credits, &bank
		case zhifu.IsPlatformFunds(c16):
			cb.Kind, cb.Balance, sum = "platform", credits-debits, &platform
		default:
			cb.Kind, cb.Balance, sum = "other", credits-debits, &other
		}
		var added bool
		if *sum, added = add(*sum, cb.Balance); !added {
			ok = false
		}
		c.Codes = append(c.Codes, cb)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recon: custody: %w", err)
	}
	c.CustomerFunds, c.BankFunds, c.PlatformFunds = zhifu.Amount(customer), zhifu.Amount(bank), zhifu.Amount(platform)
	c.Difference = customer - (bank - platform)
	c.Shortfall = max(0, customer-bank)
	if !ok {
		c.Explain = append(c.Explain, "the sums of the accounts' balances overflow")
	}
	if err := s.explain(ctx, c, other); err != nil {
		return nil, err
	}
	if banks {
		if c.Banks, err = s.cfg.Channels.Custody(ctx); err != nil {
			return nil, err
		}
		for _, b := range c.Banks {
			c.Explain = append(c.Explain, b.Violations...)
		}
	}
	c.OK = ok && c.Difference == 0 && c.Shortfall == 0 && len(c.Explain) == 0
	var open int64
	if err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT count(*) FROM recon_items WHERE status = ?`, Open).Scan(&open); err != nil {
		return nil, fmt.Errorf("recon: open items: %w", err)
	}
	s.open.Store(open)
	s.custody.Store(c)
	if !c.OK {
		s.cfg.Logger.Error("recon: custody break", slog.String("customer_funds", c.CustomerFunds.String()),
			slog.String("bank_funds", c.BankFunds.String()), slog.String("platform_funds", c.PlatformFunds.String()),
			slog.Int64("difference_fen", c.Difference), slog.Int64("shortfall_fen", c.Shortfall),
			slog.Any("explain", c.Explain))
	}
	return c, nil
}

// explain names what makes a break: money in accounts of no class, and
// for a shortfall the platform's accounts below zero and each bank's
// accounts.
func (s *Service) explain(ctx context.Context, c *Custody, other int64) error {
	for _, cb := range c.Codes {
		if cb.Kind == "other" && cb.Balance != 0 {
			c.Explain = append(c.Explain, fmt.Sprintf("%d accounts of code %d, which the chart of accounts does not class, hold %s",
				cb.Accounts, cb.Code, zhifu.Amount(cb.Balance)))
		}
	}
	if c.Difference != 0 && other == 0 {
		c.Explain = append(c.Explain, fmt.Sprintf("the ledger's balances do not sum to zero: customer funds %s, bank funds %s, platform funds %s",
			c.CustomerFunds, c.BankFunds, c.PlatformFunds))
	}
	if c.Shortfall == 0 {
		return nil
	}
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT id, code, credits_posted - debits_posted FROM accounts
		WHERE ledger = ? AND code IN (?, ?, ?, ?) AND debits_posted > credits_posted ORDER BY id LIMIT ?`, s.ledgerID,
		zhifu.AccountRevenue, zhifu.AccountOwnFunds, zhifu.AccountSuspense, zhifu.AccountCampaignBudget, explainMax)
	if err != nil {
		return fmt.Errorf("recon: custody: %w", err)
	}
	defer rows.Close()
	c.Explain = append(c.Explain, fmt.Sprintf("customer funds %s exceed bank funds %s by %s", c.CustomerFunds, c.BankFunds,
		zhifu.Amount(c.Shortfall)))
	for rows.Next() {
		var id, code, bal int64
		if err := rows.Scan(&id, &code, &bal); err != nil {
			return fmt.Errorf("recon: custody: %w", err)
		}
		c.Explain = append(c.Explain, fmt.Sprintf("platform account %d (code %d) is at %s", id, code, zhifu.Amount(bal)))
	}
	return rows.Err()
}

func add(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return a, false
	}
	return a + b, true
}

// BooksAdjustments is what the banks moved, by bank, beyond what the
// platform's bank transactions show, as reconciliation found it (the items'
// Books): channel.Service.Custody counts it when it compares the banks'
// own books with those transactions.
func (s *Service) BooksAdjustments(ctx context.Context) (map[string]channel.BooksAdjustment, error) {
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT bank, kind, CAST(coalesce(sum(books), 0) AS BIGINT) FROM recon_items
		WHERE books <> 0 GROUP BY bank, kind`)
	if err != nil {
		return nil, fmt.Errorf("recon: books adjustments: %w", err)
	}
	defer rows.Close()
	out := map[string]channel.BooksAdjustment{}
	for rows.Next() {
		var bank, kind string
		var sum int64
		if err := rows.Scan(&bank, &kind, &sum); err != nil {
			return nil, fmt.Errorf("recon: books adjustments: %w", err)
		}
		a := out[bank]
		if channel.Kind(kind).Payout() {
			a.Credited += zhifu.Amount(sum)
		} else {
			a.Debited += zhifu.Amount(sum)
		}
		out[bank] = a
	}
	return out, rows.Err()
}
