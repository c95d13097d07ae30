package trade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"zhifu/ledger"
)

// The timers keep no state of their own: each is a query for trades whose
// due time (a column written with the trade) has passed, and each due trade
// is moved by the same kind of op as the API's, which checks again under
// the trade's lock. A restart therefore loses nothing, and a trade moved by
// a request (or another node) meanwhile is simply skipped. With several
// nodes on one database, Run runs on one of them at a time, under a node
// lease (package node); should two overlap for a moment while the lease is
// handed over, that recheck still moves each trade once.
const (
	// tickInterval is how often Run looks for due trades (real time).
	tickInterval = 200 * time.Millisecond
	// dueBatchMax bounds the trades of one kind moved per tick, so one tick
	// is one or a few batches and never a flood.
	dueBatchMax = 500
)

// timer is one kind of due trade: which ones the query finds and what the
// op does with each, given the time.
type timer struct {
	name  string
	query string
	rule  func(s *Service, t *Trade, now time.Time) change
}

var timers = []timer{
	{
		name: "close",
		query: `SELECT trade_no FROM trades WHERE status = 'WAIT_BUYER_PAY' AND close_due <= ?
			ORDER BY close_due LIMIT ?`,
		rule: func(s *Service, t *Trade, now time.Time) change {
			if t.Status != WaitBuyerPay || now.Before(t.CloseDue) {
				return change{}
			}
			return closeChange(t, now)
		},
	},
	{
		// An open refund pauses the confirm timer (API.md).
		name: "confirm",
		query: `SELECT trade_no FROM trades WHERE status = 'WAIT_BUYER_CONFIRM_GOODS' AND confirm_due <= ?
			AND refunds_open = 0 ORDER BY confirm_due LIMIT ?`,
		rule: func(s *Service, t *Trade, now time.Time) change {
			if t.Status != WaitBuyerConfirmGoods || now.Before(t.ConfirmDue) || t.RefundsOpen > 0 {
				return change{}
			}
			return confirmChange(t, now, s.ledgerID)
		},
	},
	{
		name: "refund_window",
		query: `SELECT trade_no FROM trades WHERE status = 'TRADE_SUCCESS' AND confirm_due <= ?
			AND refunds_open = 0 ORDER BY confirm_due LIMIT ?`,
		rule: func(s *Service, t *Trade, now time.Time) change {
			if t.Status != Success || now.Before(t.ConfirmDue) || t.RefundsOpen > 0 {
				return change{}
			}
			return windowEndChange(t, now)
		},
	},
}

// Run runs the trade timers (closing unpaid trades, finishing shipped
// escrow trades and instant trades past their refund window) until ctx
// ends.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("trade timers", slog.Any("err", err))
		}
	}
}

// RunDue moves every kind of due trade once, at most dueBatchMax of each,
// as of the clock's now, and returns how many trades it moved.
func (s *Service) RunDue(ctx context.Context) (int, error) {
	now := s.cfg.Clock.Now()
	moved := 0
	var errs []error
	for _, tm := range timers {
		n, err := s.runTimer(ctx, tm, now)
		moved += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tm.name, err))
		}
	}
	return moved, errors.Join(errs...)
}

// runTimer submits one op per due trade, all at once so the batcher
// commits them together, and waits for them.
func (s *Service) runTimer(ctx context.Context, tm timer, now time.Time) (int, error) {
	due, err := s.dueTrades(ctx, tm.query, now)
	if err != nil {
		return 0, err
	}
	ops := make([]*moveOp, len(due))
	errs := make([]error, len(due))
	var wg sync.WaitGroup
	for i, no := range due {
		op := &moveOp{svc: s, tradeNo: no, keys: []string{"trade:" + no}, now: now}
		op.decide = func(_ context.Context, _ ledger.Querier, t *Trade) (change, error) {
			return tm.rule(s, t, now), nil
		}
		ops[i] = op
		wg.Go(func() { errs[i] = s.do(ctx, op) })
	}
	wg.Wait()
	moved := 0
	for i, op := range ops {
		if errs[i] == nil && op.ch.trade != nil {
			moved++
		}
	}
	return moved, errors.Join(errs...)
}

func (s *Service) dueTrades(ctx context.Context, query string, now time.Time) ([]string, error) {
	rows, err := s.cfg.Store.Reader().Query(ctx, query, now.UnixNano(), dueBatchMax)
	if err != nil {
		return nil, fmt.Errorf("due trades: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var no string
		if err := rows.Scan(&no); err != nil {
			return nil, fmt.Errorf("due trades: %w", err)
		}
		out = append(out, no)
	}
	return out, rows.Err()
}
