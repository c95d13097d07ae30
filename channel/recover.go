package channel

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"zhifu/ledger"
)

// A bank coming back. While a bank is down or congested its transactions'
// calls fail and each waits longer before the next (Policy.delay, up to
// minutes); the breaker stops calls altogether. When the bank is back
// those waits are the outage's, not the bank's: the poller notices the
// bank healthy again and makes its waiting transactions due at once, and
// its bucket paces them out as it paces everything.

// Limits of a recovery.
const (
	// spellCheckInterval is how often, in clock time, the poller judges a
	// bank's health in full when its breaker has not changed state: health
	// moves by whole seconds of the window.
	spellCheckInterval = bucketWidth
	// healthSpan is how far back the window judges: a transaction whose
	// call failed that long before a spell of bad health was noticed may
	// have been one of the failures that made it.
	healthSpan = windowBuckets * bucketWidth
	// retryNowMax bounds the transactions one recovery makes due at once;
	// any beyond keep their schedule.
	retryNowMax = 10_000
	// probeID names the health probe among the bank's jobs.
	probeID = "probe"
)

// spell follows one bank's spells of bad health (down, congested or in
// maintenance). Only the poller touches it.
type spell struct {
	since   time.Time    // when the current spell was noticed; zero while healthy
	checked time.Time    // clock time of the last full judgement
	breaker BreakerState // the breaker's state then
}

// observe judges the bank at now and reports, once a spell ends, when it
// began. A full judgement (the window's percentiles) is made when the
// breaker changed state or spellCheckInterval passed since the last.
func (sp *spell) observe(now time.Time, br BreakerState, state func() string) (since time.Time, ended bool) {
	if d := now.Sub(sp.checked); br == sp.breaker && !sp.checked.IsZero() && d >= 0 && d < spellCheckInterval {
		return time.Time{}, false
	}
	sp.checked, sp.breaker = now, br
	if state() != StateHealthy {
		if sp.since.IsZero() {
			sp.since = now
		}
		return time.Time{}, false
	}
	since, ended = sp.since, !sp.since.IsZero()
	sp.since = time.Time{}
	return since, ended
}

// recover makes b's waiting transactions due now if a spell of bad health
// just ended.
func (s *Service) recover(ctx context.Context, b *bank, now time.Time) error {
	since, ended := b.spell.observe(now, b.breaker.State(now), func() string { return s.health(b, now).State })
	if !ended {
		return nil
	}
	op := &retryNowOp{bank: b.name, since: since.Add(-healthSpan), now: now}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.cfg.Batcher.DoBulk(octx, op); err != nil {
		return fmt.Errorf("retry after recovery: %w", err)
	}
	s.cfg.Logger.Info("channel: bank healthy again; its waiting transactions are asked about now",
		slog.String("bank", b.name), slog.Duration("spell", now.Sub(since)), slog.Int64("transactions", op.n))
	return nil
}

// retryNowOp makes due now the bank's transactions waiting to be sent or
// inquired about that were last touched since the spell began (less the
// window's span), at most retryNowMax of them, soonest first. Those
// waiting for the statement keep their schedule: one statement covers them
// all at the deadline, and reading it early would not settle them.
type retryNowOp struct {
	bank       string
	since, now time.Time
	n          int64
}

func (o *retryNowOp) Keys() []string { return []string{"retrynow:" + o.bank} }

func (o *retryNowOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.n = 0
	return nil, nil
}

func (o *retryNowOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	n, err := tx.Exec(ctx, `UPDATE bank_txns SET next_at = ? WHERE seq IN (SELECT seq FROM bank_txns
		WHERE bank = ? AND status = ? AND stage IN (?, ?) AND next_at > ? AND updated_at >= ?
		ORDER BY next_at LIMIT ?)`,
		nanos(o.now), o.bank, string(StatusProcessing), string(StageSend), string(StageWait), nanos(o.now),
		nanos(o.since), retryNowMax)
	if err != nil {
		return fmt.Errorf("channel: retry now at %s: %w", o.bank, err)
	}
	o.n = n
	return nil
}

// startProbe hands the bank's callers a health probe, when its breaker is
// half-open and nothing else is going to the bank: without one a bank
// whose transactions all wait out their backoff would stay half-open,
// however healthy, until a payment came. At most one probe is out at a
// time.
func (s *Service) startProbe(b *bank) bool {
	if !b.probing.CompareAndSwap(false, true) {
		return false
	}
	select {
	case b.jobs <- job{txnID: probeID + ":" + b.name, probeOnly: true}:
		return true
	default:
		b.probing.Store(false)
		return false
	}
}

// probe makes the health probe's call, as a breaker probe.
func (s *Service) probe(ctx context.Context, b *bank) {
	defer b.probing.Store(false)
	ok, probe := b.breaker.Allow(s.now())
	if !ok {
		return
	}
	if !s.takeBackground(b) {
		b.breaker.Cancel(probe)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	b.calls.Add(1)
	defer b.calls.Add(-1)
	start := s.now()
	err := b.client.Probe(cctx)
	if ctx.Err() != nil {
		b.breaker.Cancel(probe)
		return
	}
	b.breaker.Done(s.now(), probe, callOutcome(err), s.now().Sub(start))
}
