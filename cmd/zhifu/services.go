package main

import (
	"context"
	"fmt"
	"time"

	"zhifu/gateway"
	"zhifu/identity"
	"zhifu/notify"
	"zhifu/trade"
	"zhifu/wallet"
)

// platformAccountsTimeout bounds creating the platform's ledger accounts at
// start, so a stuck database fails the start instead of hanging it.
const platformAccountsTimeout = 30 * time.Second

// startServices builds the business services over the store and batcher
// and starts their background workers (trade timers, notification
// delivery, expired nonces and sessions). It first makes sure the
// platform's ledger accounts exist. Close stops the workers before the
// batcher.
func (m *Main) startServices() error {
	m.Identity = identity.New(identity.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger})
	m.Wallet = wallet.New(wallet.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity})
	m.Trades = trade.New(trade.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity, Wallet: m.Wallet})
	ensureCtx, cancelEnsure := context.WithTimeout(context.Background(), platformAccountsTimeout)
	err := m.Wallet.EnsurePlatformAccounts(ensureCtx)
	var keys *gateway.Keys
	if err == nil {
		keys, err = gateway.LoadKeys(ensureCtx, m.store, m.batcher, m.Clock)
	}
	cancelEnsure()
	if err != nil {
		return fmt.Errorf("platform accounts and keys: %w", err)
	}
	m.Gateway = gateway.New(gateway.Config{Trades: m.Trades, Identity: m.Identity, Keys: keys, Clock: m.Clock,
		Logger: m.Logger, BaseURL: m.URL})
	m.Notify = notify.New(notify.Config{Store: m.store, Clock: m.Clock, Logger: m.Logger, Client: m.HTTPClient,
		AlipaySigner: keys.SignNotification})
	ctx, cancel := context.WithCancel(context.Background())
	m.stopWorkers = cancel
	for _, run := range []func(context.Context){m.Trades.Run, m.Notify.Run, m.Identity.Run, keys.Run} {
		m.workers.Add(1)
		go func() {
			defer m.workers.Done()
			run(ctx)
		}()
	}
	return nil
}
