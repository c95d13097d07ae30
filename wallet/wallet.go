// Package wallet keeps users' money: the platform's chart of accounts, wallet
// balances (available and frozen), operator-confirmed deposits, user-to-user
// transfers and statements. Every movement is a ledger transfer.
package wallet

import (
	"log/slog"

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
}

// Service moves and reports users' money.
type Service struct {
	cfg Config
}

// New returns the wallet service.
func New(cfg Config) *Service { return &Service{cfg: cfg} }
