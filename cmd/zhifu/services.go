package main

import (
	"context"

	"zhifu/identity"
	"zhifu/notify"
	"zhifu/trade"
	"zhifu/wallet"
)

// startServices builds the business services over the store and batcher
// and starts their background workers (trade timers, notification
// delivery). Close stops the workers before the batcher.
func (m *Main) startServices() error {
	m.Identity = identity.New(identity.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger})
	m.Wallet = wallet.New(wallet.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity})
	m.Trades = trade.New(trade.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity, Wallet: m.Wallet})
	m.Notify = notify.New(notify.Config{Store: m.store, Clock: m.Clock, Logger: m.Logger, Client: m.HTTPClient})
	ctx, cancel := context.WithCancel(context.Background())
	m.stopWorkers = cancel
	for _, run := range []func(context.Context){m.Trades.Run, m.Notify.Run} {
		m.workers.Add(1)
		go func() {
			defer m.workers.Done()
			run(ctx)
		}()
	}
	return nil
}
