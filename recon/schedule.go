package recon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// The daily schedule: each bank's next day to reconcile, due once its
// statement is published (the day's end plus PublishDelay). A scheduled
// run's finishOp moves the bank on to the following day in the run's own
// last transaction, so a restart finds either the day still due (and runs
// it again, which changes nothing that was done) or the next one.

// dueAt is when day's statements are published.
func (s *Service) dueAt(day string) time.Time {
	_, end := dayBounds(day)
	return end.Add(s.cfg.PublishDelay)
}

// ensureSchedule gives every bank a schedule row, from today, the first
// time the platform runs with it.
func (s *Service) ensureSchedule(ctx context.Context) error {
	now := s.now()
	today := Day(now)
	return s.do(ctx, &execOp{key: "recon-schedule", run: func(ctx context.Context, tx ledger.Tx) error {
		for _, bank := range s.cfg.Channels.Banks() {
			if _, err := tx.Exec(ctx, `INSERT INTO recon_schedule (bank, next_day, due_at, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (bank) DO NOTHING`, bank, today, toNanos(s.dueAt(today)), toNanos(now)); err != nil {
				return fmt.Errorf("recon: schedule of %s: %w", bank, err)
			}
		}
		return nil
	}})
}

// runDue starts the earliest scheduled run that is due, unless a
// scheduled run of this process is still going.
func (s *Service) runDue(ctx context.Context) {
	if !s.scheduling.CompareAndSwap(false, true) {
		return
	}
	var bank, day string
	err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT bank, next_day FROM recon_schedule WHERE due_at <= ?
		ORDER BY due_at, bank LIMIT 1`, toNanos(s.now())).Scan(&bank, &day)
	if err != nil {
		s.scheduling.Store(false)
		if !errors.Is(err, ledger.ErrNoRows) && ctx.Err() == nil {
			s.cfg.Logger.Error("recon: schedule", slog.Any("err", err))
		}
		return
	}
	s.runs.Go(func() {
		defer s.scheduling.Store(false)
		_, err := s.Reconcile(ctx, Request{Bank: bank, Day: day, StartedBy: Scheduler, scheduled: true})
		var ze *zhifu.Error
		if err == nil || !errors.As(err, &ze) {
			return // done, or failed and put off by its finishOp
		}
		// Not begun: the bank is gone, busy, or another node runs the day.
		s.cfg.Logger.Warn("recon: scheduled run put off", slog.String("bank", bank), slog.String("day", day), slog.Any("err", err))
		retry := toNanos(s.now().Add(scheduleRetry))
		err = s.do(ctx, &execOp{key: "recon-schedule", run: func(ctx context.Context, tx ledger.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE recon_schedule SET due_at = ?, updated_at = ? WHERE bank = ? AND next_day = ?`,
				retry, toNanos(s.now()), bank, day)
			return err
		}})
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("recon: schedule", slog.Any("err", err))
		}
	})
}

// execOp runs statements in a batch transaction.
type execOp struct {
	key string
	run func(context.Context, ledger.Tx) error
}

func (o *execOp) Keys() []string { return []string{o.key} }

func (o *execOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *execOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	return o.run(ctx, tx)
}
