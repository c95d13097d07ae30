// Package wallet keeps users' money: the platform's chart of accounts, wallet
// balances (available and frozen), operator-confirmed deposits, user-to-user
// transfers and statements. Every movement is a ledger transfer.
package wallet

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"zhifu/campaign"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// Config is what the service needs.
type Config struct {
	Store    ledger.Store
	Batcher  *ledger.Batcher
	Clock    zhifu.Clock
	Logger   *slog.Logger
	Identity *identity.Service
	// Discounter gives transfers the campaigns' discounts; nil for none.
	Discounter campaign.Discounter
}

// Service moves and reports users' money.
type Service struct {
	cfg Config
}

// New returns the wallet service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// PlatformAccounts are the platform's own accounts in the CNY ledger: the
// pooled escrow, revenue, own funds, suspense, and a settlement and an
// in-transit account at each bank of zhifu.Banks. Bank accounts are
// debit-normal assets and carry no balance flag.
func PlatformAccounts(now time.Time) []ledger.Account {
	ts := now.UnixNano()
	acct := func(id int64, code uint16, flags ledger.AccountFlags) ledger.Account {
		return ledger.Account{ID: id, Ledger: identity.CNYLedger, Code: code, Flags: flags, Timestamp: ts}
	}
	out := []ledger.Account{
		acct(zhifu.EscrowAccountID, zhifu.AccountEscrow, ledger.DebitsMustNotExceedCredits),
		acct(zhifu.RevenueAccountID, zhifu.AccountRevenue, 0),
		acct(zhifu.OwnFundsAccountID, zhifu.AccountOwnFunds, 0),
		acct(zhifu.SuspenseAccountID, zhifu.AccountSuspense, 0),
	}
	for i := range zhifu.Banks {
		out = append(out,
			acct(zhifu.BankSettlementAccountID(i), zhifu.AccountBankSettlement, 0),
			acct(zhifu.BankInTransitAccountID(i), zhifu.AccountBankInTransit, 0))
	}
	return out
}

// EnsurePlatformAccounts creates the platform accounts that do not exist
// yet. It runs at every start; accounts already there are left alone, and
// one there with another shape is an error the operator must look at.
func (s *Service) EnsurePlatformAccounts(ctx context.Context) error {
	return s.ensure(ctx, PlatformAccounts(s.cfg.Clock.Now()))
}

// EnsureUserAccounts creates the user's ledger accounts if they are
// missing. Users get them when created, in the same transaction; this
// repairs a user whatever happened since.
func (s *Service) EnsureUserAccounts(ctx context.Context, u *identity.User) error {
	return s.ensure(ctx, identity.UserAccounts(u.Num, s.cfg.Clock.Now()))
}

func (s *Service) ensure(ctx context.Context, accounts []ledger.Account) error {
	results, err := ledger.CreateAccounts(ctx, s.cfg.Store, accounts)
	if err != nil {
		return fmt.Errorf("create accounts: %w", err)
	}
	for i, r := range results {
		if !r.Succeeded() {
			return fmt.Errorf("create account %d: %s", accounts[i].ID, r)
		}
	}
	return nil
}

// Balance is what a user holds.
type Balance struct {
	UserID    string
	Available zhifu.Amount // what the user can spend now
	Frozen    zhifu.Amount // held for withdrawals in flight and pending payments
	Currency  zhifu.Currency
}

// Balance reads a user's balance. A user whose accounts are missing holds
// nothing.
func (s *Service) Balance(ctx context.Context, u *identity.User) (Balance, error) {
	walletID, frozenID := zhifu.WalletAccountID(u.Num), zhifu.FrozenAccountID(u.Num)
	accounts, err := s.cfg.Store.LookupAccounts(ctx, []int64{walletID, frozenID})
	if err != nil {
		return Balance{}, fmt.Errorf("balance: %w", err)
	}
	b := Balance{UserID: u.UserID, Currency: zhifu.CNY}
	for _, a := range accounts {
		switch a.ID {
		case walletID:
			b.Available += zhifu.Amount(a.Available())
			b.Frozen += zhifu.Amount(a.DebitsPending)
		case frozenID:
			b.Frozen += zhifu.Amount(a.Balance())
		}
	}
	return b, nil
}

// newID returns prefix, the clock's UTC date and 20 random digits.
func (s *Service) newID(prefix string) string { return zhifu.NewID(prefix, s.cfg.Clock.Now()) }
