package recon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/channel"
)

// Request asks for one run.
type Request struct {
	Bank string
	Day  string // YYYY-MM-DD, Beijing
	// File names a statement file in Config.FilesDir, for a bank that
	// sends files; "" reads the bank's statement endpoint.
	File string
	// StartedBy is the operator's id, or Scheduler.
	StartedBy string

	scheduled bool
}

// fileNameLenMax bounds a statement file's name.
const fileNameLenMax = 128

func (s *Service) check(req Request) error {
	known := false
	for _, b := range s.cfg.Channels.Banks() {
		known = known || b == req.Bank
	}
	if !known {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "bank",
			Message: fmt.Sprintf("unknown bank; one of %v", s.cfg.Channels.Banks())}
	}
	if d, err := time.Parse(time.DateOnly, req.Day); err != nil || d.Format(time.DateOnly) != req.Day {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "date", Message: "date must be YYYY-MM-DD"}
	}
	if req.File == "" {
		return nil
	}
	if s.cfg.FilesDir == "" || len(req.File) > fileNameLenMax || filepath.Base(req.File) != req.File ||
		req.File[0] == '.' || !printable(req.File) {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "file",
			Message: "file must name a statement file in the server's statements folder"}
	}
	if st, err := os.Stat(filepath.Join(s.cfg.FilesDir, req.File)); err != nil || !st.Mode().IsRegular() {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "file",
			Message: "no such statement file in the server's statements folder"}
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Start begins a run in the background and returns it, RUNNING. It is
// refused (CONTEXT_INCONSISTENT) while a run of the same bank and day is
// running anywhere, and SYSTEM_BUSY while this process runs runsMax runs
// or its background loop is not running.
func (s *Service) Start(ctx context.Context, req Request) (*Run, error) {
	base := s.base.Load()
	if base == nil || (*base).Err() != nil {
		return nil, zhifu.Errorf(zhifu.SystemBusy, "reconciliation is not running")
	}
	run, err := s.begin(ctx, req)
	if err != nil {
		return nil, err
	}
	started := *run
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		s.complete(*base, run, req)
	}()
	return &started, nil
}

// Reconcile runs one run to its end and returns it: DONE, or FAILED with
// the error.
func (s *Service) Reconcile(ctx context.Context, req Request) (*Run, error) {
	run, err := s.begin(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.complete(ctx, run, req)
}

// begin checks req, takes a slot and the day's lease, and records the run.
func (s *Service) begin(ctx context.Context, req Request) (*Run, error) {
	if err := s.check(req); err != nil {
		return nil, err
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return nil, zhifu.Errorf(zhifu.SystemBusy, "%d reconciliations are running; try again later", runsMax)
	}
	now := s.now()
	run := &Run{RunID: zhifu.NewID("RR", now), Bank: req.Bank, Day: req.Day, Source: SourceBank, File: req.File,
		StartedBy: req.StartedBy, Node: s.cfg.Node, State: Running, Phase: PhaseReading, StartedAt: now, UpdatedAt: now,
		Summary: Summary{Classes: map[Class]Tally{}}}
	if req.File != "" {
		run.Source = SourceFile
	}
	key := req.Bank + " " + req.Day
	s.mu.Lock()
	other, busy := s.running[key]
	if !busy {
		s.running[key] = run.RunID
	}
	s.mu.Unlock()
	if !busy {
		op := &startOp{run: run, expires: now.Add(leaseTTL)}
		err := s.do(ctx, op)
		switch {
		case err != nil:
			s.release(key)
			return nil, fmt.Errorf("recon: start: %w", err)
		case op.taken:
			return run, nil
		}
		s.release(key)
		other = op.other
	}
	return nil, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "date",
		Message: fmt.Sprintf("run %s of %s %s is running; wait for it", other, req.Bank, req.Day)}
}

func (s *Service) release(key string) {
	s.mu.Lock()
	delete(s.running, key)
	s.mu.Unlock()
	<-s.slots
}

// progress is a run's progress, written by the run and read by its
// heartbeat.
type progress struct {
	phase      atomic.Pointer[string]
	linesTotal atomic.Int64
	linesDone  atomic.Int64
	records    atomic.Int64
}

func (p *progress) setPhase(ph string) { p.phase.Store(&ph) }

// complete does the run and records its end.
func (s *Service) complete(ctx context.Context, run *Run, req Request) (*Run, error) {
	// Counted last, once the day is released: a test that waits for the
	// count may run the day again at once.
	defer s.ran.Add(1)
	defer s.release(req.Bank + " " + req.Day)
	ctx, cancel := context.WithTimeoutCause(ctx, runTimeout, errors.New("recon: the run took too long"))
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var p progress
	p.setPhase(PhaseReading)
	s.live.Store(run.RunID, &p)
	defer s.live.Delete(run.RunID)
	hctx, stopHeartbeat := context.WithCancel(ctx)
	var hb sync.WaitGroup
	hb.Go(func() { s.heartbeat(hctx, run, &p, stop) })
	err := s.execute(ctx, run, req, &p)
	stopHeartbeat()
	hb.Wait()

	run.Phase, run.LinesTotal, run.LinesDone, run.Records = *p.phase.Load(), p.linesTotal.Load(), p.linesDone.Load(), p.records.Load()
	run.FinishedAt, run.UpdatedAt = s.now(), s.now()
	run.State = Done
	if err != nil {
		run.State, run.Error = Failed, err.Error()
		if ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
			run.State, run.Error = Interrupted, "stopped: the server shut down"
		}
	}
	fin := &finishOp{run: run, scheduled: req.scheduled, retryAt: s.now().Add(scheduleRetry)}
	if req.scheduled {
		day, _ := time.ParseInLocation(time.DateOnly, req.Day, bankapi.Beijing)
		fin.next = day.AddDate(0, 0, 1).Format(time.DateOnly)
		fin.nextDue = s.dueAt(fin.next)
	}
	// The run's own context may be over (shut down, timed out); its end
	// is recorded all the same.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer fcancel()
	if ferr := s.do(fctx, fin); ferr != nil {
		s.cfg.Logger.Error("recon: run's end not recorded; its lease runs out", slog.String("run_id", run.RunID), slog.Any("err", ferr))
		return run, errors.Join(err, ferr)
	}
	log := s.cfg.Logger.With(slog.String("run_id", run.RunID), slog.String("bank", run.Bank), slog.String("day", run.Day))
	if err != nil {
		log.Error("recon: run failed", slog.String("state", run.State), slog.Any("err", err))
		return run, err
	}
	log.Info("recon: run done", slog.Int64("lines", run.LinesTotal), slog.Int64("records", run.Records),
		slog.Int64("changes", run.Changes), slog.Duration("took", run.Duration(s.now())))
	if _, err := s.CheckCustody(fctx, false); err != nil {
		log.Error("recon: custody check after the run", slog.Any("err", err))
	}
	return run, nil
}

// heartbeat writes the run's progress and renews its lease every
// heartbeatInterval; a lease lost (it ran out and another run took it)
// stops the run.
func (s *Service) heartbeat(ctx context.Context, run *Run, p *progress, stop context.CancelCauseFunc) {
	tick := time.NewTicker(heartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := s.now()
		snap := &Run{RunID: run.RunID, Bank: run.Bank, Day: run.Day, Phase: *p.phase.Load(),
			LinesTotal: p.linesTotal.Load(), LinesDone: p.linesDone.Load(), Records: p.records.Load()}
		op := &progressOp{run: snap, now: now, expires: now.Add(leaseTTL)}
		if err := s.do(ctx, op); err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("recon: progress not written", slog.String("run_id", run.RunID), slog.Any("err", err))
			}
			continue
		}
		if op.lost {
			s.cfg.Logger.Error("recon: lease lost; stopping the run", slog.String("run_id", run.RunID))
			stop(errLeaseLost)
			return
		}
	}
}

var errLeaseLost = errors.New("recon: the run's lease ran out and another run took the day")

// dayBounds returns the instants a Beijing day starts and ends.
func dayBounds(day string) (time.Time, time.Time) {
	d, _ := time.ParseInLocation(time.DateOnly, day, bankapi.Beijing)
	return d, d.AddDate(0, 0, 1)
}

// openStatement opens the run's statement.
func (s *Service) openStatement(ctx context.Context, req Request) (io.ReadCloser, error) {
	if req.File != "" {
		f, err := os.Open(filepath.Join(s.cfg.FilesDir, req.File))
		if err != nil {
			return nil, fmt.Errorf("recon: statement file: %w", err)
		}
		return f, nil
	}
	return s.cfg.Channels.OpenStatement(ctx, req.Bank, req.Day)
}

// execute is the run: read and sort both sides, merge and decide, ask the
// bank about what the statement does not show, hand over the overdue
// transactions; the repairs commit as they are found, a bounded number at
// a time.
func (s *Service) execute(ctx context.Context, run *Run, req Request, p *progress) error {
	if err := os.MkdirAll(s.cfg.TempDir, 0o700); err != nil {
		return fmt.Errorf("recon: temporary folder: %w", err)
	}
	lines := newSorter(lineCodec, s.cfg.TempDir)
	defer lines.close()
	recs := make([]*sorter[Record], readersMax)
	for i := range recs {
		recs[i] = newSorter(recordCodec, s.cfg.TempDir)
		defer recs[i].close()
	}
	log := s.cfg.Logger.With(slog.String("run_id", run.RunID))
	t0 := time.Now()
	if err := s.read(ctx, run, req, p, lines, recs); err != nil {
		return err
	}
	var records int64
	for _, r := range recs {
		records += r.n
	}
	log.Debug("recon: read and sorted", slog.Int64("lines", lines.n), slog.Int64("records", records),
		slog.Duration("took", time.Since(t0)))
	p.linesTotal.Store(lines.n)
	p.records.Store(records)
	p.linesDone.Store(0)
	p.setPhase(PhaseMatching)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a := &applier{svc: s, slots: make(chan struct{}, s.cfg.Workers), cancel: cancel}
	from, to := dayBounds(run.Day)
	m := &matcher{svc: s, run: run, a: a, sum: map[Class]Tally{}, from: from.UnixNano(), to: to.UnixNano()}
	err := m.merge(ctx, lines, recs, p)
	log.Debug("recon: merged", slog.Duration("took", time.Since(t0)))
	if err == nil {
		p.setPhase(PhaseConfirming)
		err = m.confirm(ctx)
	}
	if err == nil {
		log.Debug("recon: confirmed", slog.Int64("inquiries", m.inquiries), slog.Duration("took", time.Since(t0)))
		p.setPhase(PhaseOverdue)
		var c overdueCounts
		c, err = s.reviewOverdue(ctx, run.Bank, run.RunID)
		a.opened.Add(c.opened)
		a.closed.Add(c.closed)
	}
	if werr := a.wait(); err == nil {
		err = werr
	}
	log.Debug("recon: repairs committed", slog.Duration("took", time.Since(t0)))
	run.Summary = Summary{Classes: m.sum, Repaired: a.repaired.Load(), Opened: a.opened.Load(),
		Settled: a.settled.Load(), Closed: a.closed.Load(), Suspense: a.suspense.Load(), Inquiries: m.inquiries}
	run.Changes = run.Summary.Repaired + run.Summary.Opened + run.Summary.Settled + run.Summary.Closed
	if err != nil && context.Cause(ctx) != nil && !errors.Is(err, context.Cause(ctx)) {
		err = context.Cause(ctx)
	}
	return err
}

// readersMax is how many parts of the day's records are read at once,
// each by its own connection into its own sorter, beside the statement:
// the database's side is the slower.
const readersMax = 2

// read streams the statement and the day's records into their sorters,
// all at once, and checks that the statement adds up: its opening balance
// and its lines that moved money make its closing balance.
func (s *Service) read(ctx context.Context, run *Run, req Request, p *progress, lines *sorter[Line], recs []*sorter[Record]) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	ours := make([]error, len(recs))
	from, to := dayBounds(run.Day)
	part := to.Sub(from) / time.Duration(len(recs))
	for i, sorter := range recs {
		start, end := from.Add(time.Duration(i)*part), from.Add(time.Duration(i+1)*part)
		if i == len(recs)-1 {
			end = to
		}
		wg.Go(func() {
			ours[i] = channel.EachSettled(ctx, s.cfg.Store.Reader(), run.Bank, start, end, func(x channel.Settled) error {
				return sorter.add(Record{TxnID: x.TxnID, Kind: x.Kind, Status: x.Status, Amount: int64(x.Amount),
					BankTxnID: x.BankTxnID, ResolvedBy: x.ResolvedBy, SettledAt: nanos(x.SettledAt)})
			})
			if ours[i] != nil {
				cancel(ours[i])
			}
		})
	}
	theirs := s.readStatement(ctx, run, req, p, lines)
	if theirs != nil {
		cancel(theirs)
	}
	wg.Wait()
	return errors.Join(append(ours, theirs)...)
}

func (s *Service) readStatement(ctx context.Context, run *Run, req Request, p *progress, lines *sorter[Line]) error {
	body, err := s.openStatement(ctx, req)
	if err != nil {
		return err
	}
	defer body.Close()
	sr, err := bankapi.NewStatementReader(body)
	if err != nil {
		return err
	}
	var net int64
	for n := int64(1); ; n++ {
		l, ok, err := sr.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if l.Status == bankapi.StatusSuccess {
			net += effect(l.Kind, l.Amount)
		}
		if err := lines.add(Line{RequestID: l.RequestID, BankTxnID: l.BankTxnID, Kind: l.Kind, Amount: l.Amount,
			Status: l.Status, SettledAt: l.SettledAt.UnixNano(), No: n}); err != nil {
			return err
		}
		if n&0x3ff == 0 {
			p.linesDone.Store(n)
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
		}
	}
	run.Opening, _ = sr.Opening()
	run.Closing, _ = sr.Closing()
	if run.Opening+net != run.Closing {
		return fmt.Errorf("recon: the statement does not add up: opening %s and its lines %s make %s, not its closing %s",
			zhifu.Amount(run.Opening), zhifu.Amount(net), zhifu.Amount(run.Opening+net), zhifu.Amount(run.Closing))
	}
	return nil
}
