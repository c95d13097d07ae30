package recon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zhifu/ledger"
)

// The ops of a run's life: taking the lease of a bank's day with the run's
// row, renewing it with the run's progress, and letting it go with the
// run's result.

// startOp takes the lease of run's bank and day, if it is free, expired,
// or this node's own (left by this node's previous process: the node's
// current runs are kept apart in memory), marks runs of that day still
// RUNNING as INTERRUPTED (their process is gone), and records run.
type startOp struct {
	run     *Run
	expires time.Time

	taken bool
	other string // the run holding the lease, when not taken
}

func (o *startOp) Keys() []string { return []string{"recon-lease:" + o.run.Bank + ":" + o.run.Day} }

func (o *startOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.taken, o.other = false, ""
	return nil, nil
}

func (o *startOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	r := o.run
	now := toNanos(r.StartedAt)
	n, err := tx.Exec(ctx, `INSERT INTO recon_leases (bank, day, holder, run_id, expires_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (bank, day) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id,
			expires_at = excluded.expires_at
		WHERE recon_leases.expires_at <= ? OR recon_leases.holder = ?`,
		r.Bank, r.Day, r.Node, r.RunID, toNanos(o.expires), now, r.Node)
	if err != nil {
		return fmt.Errorf("recon: lease %s %s: %w", r.Bank, r.Day, err)
	}
	if n == 0 {
		err := tx.QueryRow(ctx, `SELECT run_id FROM recon_leases WHERE bank = ? AND day = ?`, r.Bank, r.Day).Scan(&o.other)
		if err != nil && !errors.Is(err, ledger.ErrNoRows) {
			return fmt.Errorf("recon: lease %s %s: %w", r.Bank, r.Day, err)
		}
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE recon_runs SET state = ?, error = ?, updated_at = ?, finished_at = ?
		WHERE bank = ? AND day = ? AND state = ?`, Interrupted, "its process stopped before it finished", now, now,
		r.Bank, r.Day, Running); err != nil {
		return fmt.Errorf("recon: interrupted runs: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO recon_runs (`+runColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.RunID, r.Bank, r.Day, r.Source, r.File, r.StartedBy, r.Node, r.State, r.Phase, r.LinesTotal, r.LinesDone,
		r.Records, r.Changes, summaryJSON(r.Summary), r.Opening, r.Closing, r.Error, now, now, int64(0))
	if err != nil {
		return fmt.Errorf("recon: insert run: %w", err)
	}
	o.taken = true
	return nil
}

// progressOp writes a run's progress and renews its lease; lost reports
// that the lease is no longer the run's (it expired and another took it).
type progressOp struct {
	run     *Run // RunID, Bank, Day and the progress fields
	now     time.Time
	expires time.Time
	lost    bool
}

func (o *progressOp) Keys() []string { return []string{"recon-lease:" + o.run.Bank + ":" + o.run.Day} }

func (o *progressOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.lost = false
	return nil, nil
}

func (o *progressOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	r := o.run
	n, err := tx.Exec(ctx, `UPDATE recon_leases SET expires_at = ? WHERE bank = ? AND day = ? AND run_id = ?`,
		toNanos(o.expires), r.Bank, r.Day, r.RunID)
	if err != nil {
		return fmt.Errorf("recon: renew lease: %w", err)
	}
	if n == 0 {
		o.lost = true
		return nil
	}
	_, err = tx.Exec(ctx, `UPDATE recon_runs SET phase = ?, lines_total = ?, lines_done = ?, records = ?, updated_at = ?
		WHERE run_id = ? AND state = ?`, r.Phase, r.LinesTotal, r.LinesDone, r.Records, toNanos(o.now), r.RunID, Running)
	if err != nil {
		return fmt.Errorf("recon: progress: %w", err)
	}
	return nil
}

// finishOp records a run's end, lets its lease go, and for a scheduled run
// moves the bank's schedule on (DONE) or puts it off (FAILED), so that the
// day is neither skipped nor run twice.
type finishOp struct {
	run       *Run
	scheduled bool
	next      string    // the day after, for a scheduled run that is done
	nextDue   time.Time // when that day is due
	retryAt   time.Time // when a scheduled run that failed is tried again
}

func (o *finishOp) Keys() []string { return []string{"recon-lease:" + o.run.Bank + ":" + o.run.Day} }

func (o *finishOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *finishOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	r := o.run
	now := toNanos(r.FinishedAt)
	_, err := tx.Exec(ctx, `UPDATE recon_runs SET state = ?, phase = ?, lines_total = ?, lines_done = ?, records = ?,
		changes = ?, summary = ?, opening = ?, closing = ?, error = ?, updated_at = ?, finished_at = ? WHERE run_id = ?`,
		r.State, r.Phase, r.LinesTotal, r.LinesDone, r.Records, r.Changes, summaryJSON(r.Summary), r.Opening, r.Closing,
		clip(r.Error, textLenMax), now, now, r.RunID)
	if err != nil {
		return fmt.Errorf("recon: finish run: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM recon_leases WHERE bank = ? AND day = ? AND run_id = ?`,
		r.Bank, r.Day, r.RunID); err != nil {
		return fmt.Errorf("recon: release lease: %w", err)
	}
	if !o.scheduled {
		return nil
	}
	if r.State == Done {
		_, err = tx.Exec(ctx, `UPDATE recon_schedule SET next_day = ?, due_at = ?, updated_at = ? WHERE bank = ? AND next_day = ?`,
			o.next, toNanos(o.nextDue), now, r.Bank, r.Day)
	} else {
		_, err = tx.Exec(ctx, `UPDATE recon_schedule SET due_at = ?, updated_at = ? WHERE bank = ? AND next_day = ?`,
			toNanos(o.retryAt), now, r.Bank, r.Day)
	}
	if err != nil {
		return fmt.Errorf("recon: schedule of %s: %w", r.Bank, err)
	}
	return nil
}
