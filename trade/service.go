package trade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"zhifu"
	"zhifu/egress"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/notify"
)

// Config is what the service needs.
type Config struct {
	Store    ledger.Store
	Batcher  *ledger.Batcher
	Clock    zhifu.Clock
	Logger   *slog.Logger
	Identity *identity.Service
	// Egress judges the notify_url a trade is created with (nil: only the
	// internet is admitted); the notify worker checks it again when it
	// connects.
	Egress *egress.Guard
}

// Service creates and moves trades. Every change is a ledger.Op run by the
// batcher: the trade row, its ledger transfer and the merchant's
// notification commit in one transaction or not at all. Its methods are
// the trade API in plain Go, for the HTTP routes, the Alipay-compatible
// gateway and package checkout alike; refusals are *zhifu.Error with the
// API's codes.
type Service struct {
	cfg      Config
	ledgerID uint32 // CNY: trades are in yuan for now
	// paying orders concurrent balance payments of one trade.
	paying herd
}

// New returns the trade service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	l, _ := zhifu.LedgerOf(zhifu.CNY)
	return &Service{cfg: cfg, ledgerID: l}
}

// moveOp is every change to an existing trade: it locks the trade row,
// asks decide (which applies one of the pure rules in rules.go), submits
// the transfer the rule asks for, and in Finish saves the trade, the new
// refund and the notification once the transfer is known to have gone
// through.
type moveOp struct {
	svc     *Service
	tradeNo string
	keys    []string
	now     time.Time
	// decide runs under the trade's lock and may read more rows through q.
	// It returns change{} when there is nothing to do (a timer that is no
	// longer due).
	decide func(ctx context.Context, q ledger.Querier, t *Trade) (change, error)
	// after runs in Finish once the trade is saved (a payment code is
	// marked used there).
	after func(ctx context.Context, q ledger.Querier) error

	// recoverable marks a move that a request recovering its lost answer
	// (idempotency.Recovering) may find already made by itself: the
	// state table's refusal is then answered with the trade as it stands.
	recoverable bool

	// The outcome, reset by every Prepare because a batch may run again.
	old *Trade
	ch  change
	// budgetShort says the ledger refused a discount for want of budget,
	// and with it the payment: the caller pays again without one.
	budgetShort bool
}

func (o *moveOp) Keys() []string { return o.keys }

// Applied says whether the move changed the trade, rather than recording a
// refusal (ledger.Applier).
func (o *moveOp) Applied() bool { return o.ch.refusal == nil && o.ch.trade != nil }

// Reads names the locked read of the trade Prepare starts with
// (ledger.Prefetcher).
func (o *moveOp) Reads() []ledger.Read {
	return []ledger.Read{{Query: lockTradeSQL, Args: []any{o.tradeNo}}}
}

func (o *moveOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.old, o.ch, o.budgetShort = nil, change{}, false
	t, err := loadTrade(ctx, tx, o.tradeNo, true)
	if err != nil {
		return nil, err
	}
	if t == nil {
		o.ch = refuse(zhifu.NotFound, "no trade %s", o.tradeNo)
		return nil, nil
	}
	ch, err := o.decide(ctx, tx, t)
	if err != nil {
		return nil, err
	}
	if ch.fault != nil {
		return nil, ch.fault
	}
	o.old, o.ch = t, ch
	if ch.transfer != nil && ch.refusal == nil {
		if ch.extra != nil {
			return []ledger.Transfer{*ch.extra, *ch.transfer}, nil
		}
		return []ledger.Transfer{*ch.transfer}, nil
	}
	return nil, nil
}

func (o *moveOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.ch.transfer != nil && o.ch.refusal == nil {
		r := results[len(results)-1]
		if o.ch.extra != nil && results[0] != ledger.TransferOK && results[0] != ledger.TransferLinkedEventFailed {
			r = results[0] // the chain failed on the discount or the budget's share
		}
		if o.ch.discounted != nil {
			if err := o.ch.discounted(ctx, tx, r == ledger.TransferOK); err != nil {
				return err
			}
			if results[0] == ledger.TransferExceedsCredits {
				o.ch, o.budgetShort = change{}, true
				return nil
			}
		}
		switch {
		case r == ledger.TransferOK:
		case o.ch.shortfall != "" && (r == ledger.TransferExceedsCredits || r == ledger.TransferDebitAccountNotFound):
			// Nothing moved and nothing is written: the trade stays as it was.
			whose := "the buyer's balance"
			if o.ch.shortfall == zhifu.BalanceNotEnough {
				whose = "the seller's balance"
			}
			o.ch = change{refusal: zhifu.Errorf(o.ch.shortfall, "%s does not cover %s", whose,
				zhifu.Amount(o.ch.transfer.Amount))}
			return nil
		default:
			// Exists would mean the money moved before without the row
			// saying so: the rows and the ledger disagree, a bug. Anything
			// else is a missing platform account. Neither may be papered
			// over by writing the row.
			return fmt.Errorf("trade %s: transfer %s: %s", o.tradeNo, o.ch.transfer.ID, r)
		}
	}
	if o.ch.trade == nil {
		return nil
	}
	if err := saveTrade(ctx, tx, o.old, o.ch.trade); err != nil {
		return err
	}
	if o.ch.refund != nil {
		if err := insertRefund(ctx, tx, o.ch.refund); err != nil {
			return err
		}
	}
	if o.after != nil && o.ch.refusal == nil {
		if err := o.after(ctx, tx); err != nil {
			return err
		}
	}
	return o.svc.notify(ctx, tx, o.ch.trade, o.ch.refund, o.now)
}

// do runs op through the batcher and returns the refusal it recorded, if
// any.
func (s *Service) do(ctx context.Context, op *moveOp) error {
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return err
	}
	if op.ch.refusal == nil {
		return nil
	}
	if op.recoverable {
		if t, err := recovered(ctx, op.old, op.ch.refusal); err == nil {
			op.ch = change{trade: t}
			return nil
		}
	}
	return op.ch.refusal
}

// recovered answers a move refused by the state table as made, with trade
// t as it stands, when the request is recovering the lost answer of an
// earlier run of itself that committed (idempotency.Recovering): that run
// made the move the table now refuses as already made. Otherwise it
// returns refusal.
func recovered(ctx context.Context, t *Trade, refusal error) (*Trade, error) {
	var e *zhifu.Error
	if t == nil || !idempotency.Recovering(ctx) || !errors.As(refusal, &e) {
		return nil, refusal
	}
	switch e.Code {
	case zhifu.TradeHasSuccess, zhifu.TradeHasClose, zhifu.TradeStatusError:
		return t, nil
	}
	return nil, refusal
}

// merchantOwns refuses a trade of another merchant as if it did not exist.
func merchantOwns(t *Trade, merchantID string) *zhifu.Error {
	if t == nil || t.MerchantID != merchantID {
		return zhifu.Errorf(zhifu.NotFound, "no trade %s", tradeNoOf(t))
	}
	return nil
}

func tradeNoOf(t *Trade) string {
	if t == nil {
		return ""
	}
	return t.TradeNo
}

// notify writes the merchant's notification of t (and of refund r) to the
// outbox inside the op's transaction, numbered after the trade's previous
// notification: the op holds the trade's row locked, so the numbers follow
// the changes, without gaps.
func (s *Service) notify(ctx context.Context, q ledger.Querier, t *Trade, r *RefundRecord, now time.Time) error {
	if t.NotifyURL == "" {
		return nil // nobody to tell
	}
	seq := t.notifySeq // numbered by saveTrade, under the trade's lock
	if seq < 1 {
		panic(fmt.Sprintf("trade: %s notified without a sequence", t.TradeNo))
	}
	var err error
	msg := notify.Message{NotifyID: newNotifyID(now), MerchantID: t.MerchantID, URL: t.NotifyURL, TradeNo: t.TradeNo, Sequence: seq}
	if t.Source == SourceGateway {
		msg.Format, msg.Body = notify.FormatAlipay, alipayNotificationBody(msg.NotifyID, t, r, now)
	} else {
		msg.Format = notify.FormatZhifu
		if msg.Body, err = notificationBody(msg.NotifyID, t, r, now, seq); err != nil {
			return err
		}
	}
	return notify.Enqueue(ctx, q, msg, now)
}

// checkTradeNo refuses a malformed trade_no as not found, without asking
// the database.
func checkTradeNo(tradeNo string) error {
	if !ValidTradeNo(tradeNo) {
		return zhifu.Errorf(zhifu.NotFound, "no trade %q", truncate(tradeNo, TradeNoLen+8))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
