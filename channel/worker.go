package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"zhifu"
	"zhifu/bankapi"
)

// Run runs the channels' workers until ctx ends: for every bank a pool of
// callers (at most CallsInFlightMax calls in flight, a quarter of them kept
// for payments), and one poller that hands them due work, claims queued
// withdrawals at the bank's pace, and starts statement sweeps; and the
// call log, which writes the record of every call a second later. Nothing the
// workers know lives only in memory: every transaction's next step is in
// its row, so a restart resumes where the last run stopped.
func (s *Service) Run(ctx context.Context) {
	if err := s.Resume(ctx); err != nil {
		s.cfg.Logger.Error("channel: resume", slog.Any("err", err))
	}
	var wg sync.WaitGroup
	for _, b := range s.order {
		urgentOnly := max(1, s.cfg.CallsInFlightMax/4)
		for i := range s.cfg.CallsInFlightMax {
			wg.Go(func() { s.caller(ctx, b, i < urgentOnly) })
		}
	}
	wg.Go(func() { s.refresher(ctx) })
	// The call log outlives the callers, to write their last records.
	logCtx, stopLog := context.WithCancel(context.Background())
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		s.calls.Run(logCtx)
	}()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			s.sweeps.Wait()
			stopLog()
			<-logDone
			return
		case <-tick.C:
		case <-s.kick:
		}
		s.poll(ctx)
	}
}

// Calls returns the log of the service's calls to banks.
func (s *Service) Calls() *CallLog { return s.calls }

// Resume reads what the workers must know from the database: the queue
// lengths and the operator's announcements.
func (s *Service) Resume(ctx context.Context) error {
	return errors.Join(s.countQueues(ctx), s.loadAnnouncements(ctx))
}

// refresher re-reads announcements, queue lengths and the banks' own
// maintenance notices now and then, for several nodes on one database.
func (s *Service) refresher(ctx context.Context) {
	tick := time.NewTicker(refreshInterval)
	defer tick.Stop()
	for {
		if err := s.RefreshMaintenance(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("channel: maintenance notices", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.Resume(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("channel: refresh", slog.Any("err", err))
		}
	}
}

func (s *Service) countQueues(ctx context.Context) error {
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT bank, count(*) FROM bank_txns WHERE status = ? GROUP BY bank`,
		string(StatusQueued))
	if err != nil {
		return fmt.Errorf("channel: count queues: %w", err)
	}
	defer rows.Close()
	counts := make(map[string]int64)
	for rows.Next() {
		var bank string
		var n int64
		if err := rows.Scan(&bank, &n); err != nil {
			return fmt.Errorf("channel: count queues: %w", err)
		}
		counts[bank] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("channel: count queues: %w", err)
	}
	for _, b := range s.order {
		b.queued.Store(counts[b.name])
	}
	return nil
}

// dispatch hands a job to the bank's payment callers. If they are all busy
// and their queue is full the job is dropped: the row is due, and the
// poller hands it out again.
func (s *Service) dispatch(b *bank, j job) {
	if !s.markInflight(j.txnID) {
		b.breaker.Cancel(j.probe)
		return
	}
	select {
	case b.urgent <- j:
	default:
		s.unmarkInflight(j.txnID)
		b.breaker.Cancel(j.probe)
	}
	s.quiet.Store(false)
}

// caller makes the calls of one bank's jobs, payments first.
func (s *Service) caller(ctx context.Context, b *bank, urgentOnly bool) {
	jobs := b.jobs
	if urgentOnly {
		jobs = nil
	}
	for {
		var j job
		select {
		case j = <-b.urgent:
		default:
			select {
			case j = <-b.urgent:
			case j = <-jobs:
			case <-ctx.Done():
				return
			}
		}
		s.work(ctx, b, j)
		s.unmarkInflight(j.txnID)
	}
}

// poll hands out what is due at every bank.
func (s *Service) poll(ctx context.Context) {
	now := s.now()
	busy := false
	for _, b := range s.order {
		if ctx.Err() != nil {
			return
		}
		n, err := s.pollBank(ctx, b, now)
		if err != nil {
			s.cfg.Logger.Error("channel: poll", slog.String("bank", b.name), slog.Any("err", err))
			busy = true
		}
		busy = busy || n > 0
	}
	if !busy {
		s.quiet.Store(true)
	}
}

// pollBank hands out one bank's due transactions and claims its queued
// withdrawals, as far as its breaker and background bucket allow; it
// returns how much it handed out or started.
func (s *Service) pollBank(ctx context.Context, b *bank, now time.Time) (int, error) {
	if !s.leads(b) {
		return 0, nil // another node does this bank's background work (pace.go)
	}
	if err := s.recover(ctx, b, now); err != nil {
		return 0, err
	}
	br := b.breaker.State(now)
	if br == Open {
		return 0, nil
	}
	if _, ok := s.maintenanceAt(b, now); ok {
		// Every call would be refused: wait for the window to end.
		return 0, nil
	}
	room := min(cap(b.jobs)-len(b.jobs), int(b.bg.Tokens(now)))
	handed := 0
	if room > 0 {
		due, err := queryTxns(ctx, s.cfg.Store.Reader(), `SELECT `+txnColumns+` FROM bank_txns
			WHERE bank = ? AND status = ? AND next_at <= ? ORDER BY next_at LIMIT ?`,
			b.name, string(StatusProcessing), nanos(now), room+s.cfg.CallsInFlightMax)
		if err != nil {
			return 0, fmt.Errorf("due transactions: %w", err)
		}
		sweep := false
		for _, t := range due {
			if handed >= room {
				break
			}
			if t.Stage == StageStatement {
				sweep = true
				continue
			}
			if !s.markInflight(t.TxnID) {
				continue
			}
			b.jobs <- job{txnID: t.TxnID, t: t} // room was counted above, and only this goroutine fills jobs
			handed++
		}
		if sweep && b.sweep.CompareAndSwap(false, true) {
			handed++
			s.sweeps.Go(func() {
				defer b.sweep.Store(false)
				if err := s.sweepBank(ctx, b); err != nil && ctx.Err() == nil {
					s.cfg.Logger.Warn("channel: statement sweep", slog.String("bank", b.name), slog.Any("err", err))
				}
			})
		}
	}
	if br == HalfOpen && handed == 0 && s.startProbe(b) {
		handed++
	}
	n, err := s.claimPayouts(ctx, b, now)
	return handed + n, err
}

// claimPayouts moves withdrawals from the front of the bank's queue to its
// callers: never more than the background bucket has tokens for, never
// while the bank is in maintenance, one at a time while its breaker
// probes.
//
// The queue's length in memory spares the database a claim when the queue
// is empty. It can be off for a moment (the refresher's count races with
// the acceptances and claims counted meanwhile), so a queue that looks
// empty is counted again every queueRecheckInterval of clock time, and a
// claim that finds fewer than it asked for knows the queue is empty.
func (s *Service) claimPayouts(ctx context.Context, b *bank, now time.Time) (int, error) {
	if ok, err := s.queueNotEmpty(ctx, b, now); !ok || err != nil {
		return 0, err
	}
	n := min(cap(b.jobs)-len(b.jobs), int(b.bg.Tokens(now))-len(b.jobs), claimBatchMax)
	if b.breaker.State(now) == HalfOpen {
		n = min(n, 1)
	}
	if n <= 0 {
		return 0, nil
	}
	op := &claimOp{bank: b.name, n: n, now: now, deadline: now.Add(s.cfg.Policy.Deadline)}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	err := s.cfg.Batcher.DoBulk(octx, op)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("claim payouts: %w", err)
	}
	if len(op.txns) < n {
		b.queued.Store(0)
	} else {
		b.queued.Add(-int64(len(op.txns)))
	}
	for _, t := range op.txns {
		if s.markInflight(t.TxnID) {
			b.jobs <- job{txnID: t.TxnID, t: t}
		}
	}
	return len(op.txns), nil
}

// queueNotEmpty reports whether the bank's withdrawal queue may hold
// something: its length in memory says so, or, at most every
// queueRecheckInterval, a count in the database.
func (s *Service) queueNotEmpty(ctx context.Context, b *bank, now time.Time) (bool, error) {
	q := b.queued.Load()
	if q > 0 {
		return true, nil
	}
	if since := now.Sub(b.queueChecked); since >= 0 && since < queueRecheckInterval {
		return false, nil
	}
	b.queueChecked = now
	var n int64
	if err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT count(*) FROM bank_txns WHERE bank = ? AND status = ?`,
		b.name, string(StatusQueued)).Scan(&n); err != nil {
		return false, fmt.Errorf("count queue: %w", err)
	}
	if n > 0 {
		b.queued.CompareAndSwap(q, n)
	}
	return n > 0, nil
}

// work makes the one call a job's transaction needs now and saves what it
// came to.
func (s *Service) work(ctx context.Context, b *bank, j job) {
	if j.probeOnly {
		s.probe(ctx, b)
		return
	}
	probe := j.probe
	if !j.admitted {
		var ok bool
		if ok, probe = b.breaker.Allow(s.now()); !ok {
			return
		}
		if !s.takeBackground(b) {
			b.breaker.Cancel(probe)
			return
		}
	}
	t := j.t
	if t == nil {
		var err error
		if t, err = loadTxn(ctx, s.cfg.Store.Reader(), j.txnID, false); err != nil || t == nil {
			b.breaker.Cancel(probe)
			if err != nil && ctx.Err() == nil {
				s.cfg.Logger.Error("channel: load", slog.String("txn_id", j.txnID), slog.Any("err", err))
			}
			return
		}
	}
	if t.Status != StatusProcessing || t.Stage == StageStatement {
		b.breaker.Cancel(probe)
		return
	}
	if now := s.now(); t.Kind == KindTopup && t.Stage == StageSend && !now.Before(t.Deadline) {
		// A debit not sent by its deadline (the bank was down or in
		// maintenance all along) is never sent: the person asked for it
		// long ago. The statement decides what an earlier attempt did.
		b.breaker.Cancel(probe)
		st := Step{Stage: StageStatement, NextAt: now, Attempts: t.Attempts}
		if err := s.apply(ctx, t, st, ByStatement); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("channel: apply", slog.String("txn_id", t.TxnID), slog.Any("err", err))
		}
		return
	}
	a := s.call(ctx, b, t, probe)
	if ctx.Err() != nil {
		return
	}
	by := ByInquiry
	if t.Stage == StageSend {
		by = ByAnswer
	}
	if err := s.apply(ctx, t, AfterCall(t.rules(), a, s.now(), s.cfg.Policy), by); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("channel: apply", slog.String("txn_id", t.TxnID), slog.Any("err", err))
	}
}

// takeBackground takes a token for background work: from the background
// share, and from the bank's bucket only above the reserve kept for
// payments.
func (s *Service) takeBackground(b *bank) bool {
	now := s.now()
	return b.bg.Take(now) && b.bucket.TakeAbove(now, backgroundReserve*float64(burstOf(b.bucket.Rate())))
}

// call sends t's debit or credit (StageSend) or inquires about it, and
// reports the outcome to the breaker.
func (s *Service) call(ctx context.Context, b *bank, t *BankTxn, probe bool) Answer {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	b.calls.Add(1)
	defer b.calls.Add(-1)
	start := s.now()
	var txn bankapi.Transaction
	var err error
	switch {
	case t.Stage != StageSend:
		txn, err = b.client.Inquire(cctx, t.TxnID)
	case t.Kind == KindTopup:
		txn, err = b.client.Debit(cctx, s.request(b, t))
	default:
		txn, err = b.client.Credit(cctx, s.request(b, t))
	}
	a := Classify(txn, err)
	if a.Kind == Decided || a.Kind == Accepted {
		if !sameTxn(t, txn) {
			// The bank's answer names another transaction or amount: not
			// believed, and the row waits for a person to look.
			s.cfg.Logger.Error("channel: bank answer does not match", slog.String("txn_id", t.TxnID),
				slog.String("bank", b.name), slog.Int64("amount", txn.Amount), slog.String("kind", txn.Kind))
			a = Answer{Kind: Unknown, Reason: "MISMATCH"}
		}
	}
	end := s.now()
	b.breaker.Done(end, probe, answerOutcome(a), end.Sub(start))
	return a
}

func (s *Service) request(b *bank, t *BankTxn) bankapi.TxnRequest {
	return bankapi.TxnRequest{RequestID: t.TxnID, CardToken: t.CardToken, Amount: int64(t.Amount),
		CallbackURL: s.callbackURL(b)}
}

// sameTxn reports whether the bank's transaction is t.
func sameTxn(t *BankTxn, txn bankapi.Transaction) bool {
	kind := bankapi.KindDebit
	if t.Kind.Payout() {
		kind = bankapi.KindCredit
	}
	return txn.RequestID == t.TxnID && txn.Bank == t.Bank && txn.Kind == kind && txn.Amount == int64(t.Amount)
}

// HandleCallback applies a bank's callback: header is its Bank-Signature
// and body the signed transaction. It returns once the outcome is durable
// (or was already), so the bank may be answered 2xx; a callback for a
// transaction the platform does not know is acknowledged and logged.
func (s *Service) HandleCallback(ctx context.Context, bankName, header string, body []byte) error {
	b := s.banks[bankName]
	if b == nil {
		return zhifu.Errorf(zhifu.NotFound, "no bank %q", truncate(bankName, 16))
	}
	txn, err := b.client.VerifyCallback(header, body)
	if err != nil {
		return &zhifu.Error{Code: zhifu.InvalidSignature, Message: "bad or missing " + bankapi.SignatureHeader}
	}
	if txn.Status != bankapi.StatusSuccess && txn.Status != bankapi.StatusFailed {
		return nil
	}
	t, err := loadTxn(ctx, s.cfg.Store.Reader(), txn.RequestID, false)
	switch {
	case err != nil:
		return err
	case t == nil:
		s.cfg.Logger.Warn("channel: callback for an unknown transaction", slog.String("bank", b.name),
			slog.String("request_id", truncate(txn.RequestID, 64)))
		return nil
	case t.Status.Final():
		return nil // a duplicate, or the answer or an inquiry came first
	case !sameTxn(t, txn):
		s.cfg.Logger.Error("channel: callback does not match", slog.String("txn_id", t.TxnID), slog.String("bank", b.name))
		return nil
	}
	return s.apply(ctx, t, AfterCall(t.rules(), Answer{Kind: Decided, Txn: txn}, s.now(), s.cfg.Policy), ByCallback)
}
