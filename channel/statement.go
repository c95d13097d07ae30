package channel

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"zhifu/bankapi"
)

// Limits of a statement sweep.
const (
	// sweepBatchMax bounds the transactions one sweep decides.
	sweepBatchMax = 2000
	// statementDaysMax bounds the days of statements one sweep reads.
	statementDaysMax = 31
	// statementTimeout bounds reading one day's statement, which at a
	// busy bank runs to millions of lines.
	statementTimeout = 2 * time.Minute
)

// sweepBank decides the bank's transactions past their deadline from its
// statements: one statement per day covers them all, where inquiring
// would cost a call each. A transaction the statement settles is resolved
// by it; one it does not show is asked about once more, and failed only
// if the bank says it never received it (no money moved).
func (s *Service) sweepBank(ctx context.Context, b *bank) error {
	now := s.now()
	due, err := queryTxns(ctx, s.cfg.Store.Reader(), `SELECT `+txnColumns+` FROM bank_txns
		WHERE bank = ? AND status = ? AND stage = ? AND next_at <= ? ORDER BY next_at LIMIT ?`,
		b.name, string(StatusProcessing), string(StageStatement), nanos(now), sweepBatchMax)
	if err != nil {
		return err
	}
	var txns []*BankTxn
	for _, t := range due {
		if s.markInflight(t.TxnID) {
			txns = append(txns, t)
		}
	}
	defer func() {
		for _, t := range txns {
			s.unmarkInflight(t.TxnID)
		}
	}()
	if len(txns) == 0 {
		return nil
	}
	lines, err := s.statementLines(ctx, b, txns, now)
	if err != nil || lines == nil {
		return err
	}
	for _, t := range txns {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if l, ok := lines[t.TxnID]; ok && lineMatches(t, l) {
			if st, ok := FromStatement(l); ok {
				if err := s.apply(ctx, t, st, ByStatement); err != nil {
					return err
				}
				continue
			}
		}
		ok, probe := b.breaker.Allow(s.now())
		if !ok {
			return nil
		}
		if !s.takeBackground(b) {
			b.breaker.Cancel(probe)
			return nil
		}
		a := s.call(ctx, b, t, probe)
		if err := s.apply(ctx, t, AfterCall(t.rules(), a, s.now(), s.cfg.Policy), ByStatement); err != nil {
			return err
		}
	}
	return nil
}

// statementLines reads the statements of every Beijing day from the
// oldest transaction's to today's and keeps the lines of txns. It returns
// nil, nil when the bank's breaker or bucket says not now.
func (s *Service) statementLines(ctx context.Context, b *bank, txns []*BankTxn, now time.Time) (map[string]bankapi.StatementLine, error) {
	want := make(map[string]bool, len(txns))
	first := now
	for _, t := range txns {
		want[t.TxnID] = true
		if t.CreatedAt.Before(first) {
			first = t.CreatedAt
		}
	}
	days := statementDays(first, now)
	lines := make(map[string]bankapi.StatementLine, len(txns))
	for _, day := range days {
		ok, probe := b.breaker.Allow(s.now())
		if !ok {
			return nil, nil
		}
		if !s.takeBackground(b) {
			b.breaker.Cancel(probe)
			return nil, nil
		}
		cctx, cancel := context.WithTimeout(ctx, statementTimeout)
		b.calls.Add(1)
		start := s.now()
		st, err := b.client.Statement(cctx, day)
		b.calls.Add(-1)
		cancel()
		end := s.now()
		b.breaker.Done(end, probe, callOutcome(err), end.Sub(start))
		if err != nil {
			return nil, fmt.Errorf("statement %s of %s: %w", day, b.name, err)
		}
		for _, l := range st.Lines {
			if want[l.RequestID] {
				lines[l.RequestID] = l
			}
		}
	}
	s.cfg.Logger.Debug("channel: statements read", slog.String("bank", b.name), slog.Int("days", len(days)),
		slog.Int("txns", len(txns)), slog.Int("found", len(lines)))
	return lines, nil
}

// statementDays lists the Beijing dates from first's to now's, at most
// statementDaysMax of them (the latest).
func statementDays(first, now time.Time) []string {
	day := func(t time.Time) time.Time {
		y, m, d := t.In(beijing).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, beijing)
	}
	last := day(now)
	from := day(first)
	if earliest := last.AddDate(0, 0, -(statementDaysMax - 1)); from.Before(earliest) {
		from = earliest
	}
	var out []string
	for d := from; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out
}

// lineMatches reports whether a statement line is t's.
func lineMatches(t *BankTxn, l bankapi.StatementLine) bool {
	kind := bankapi.KindDebit
	if t.Kind == KindWithdrawal {
		kind = bankapi.KindCredit
	}
	return l.Kind == kind && l.Amount == int64(t.Amount)
}
