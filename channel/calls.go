package channel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/ledger"
)

// Limits of the call records.
const (
	// callBufferMax bounds the records waiting in memory to be written; a
	// record that finds the buffer full is dropped and counted.
	callBufferMax = 16384
	// callBatchMax bounds the records of one multi-row INSERT (eight
	// parameters each, well below either database's parameter limit).
	callBatchMax = 1000
	// callFlushInterval is how often the buffer is written (real time): at
	// most this much of the records is lost in a crash.
	callFlushInterval = time.Second
	// CallRetentionMonths is how long call records are kept: a year, and the
	// month before it, for a report that compares a month with the same
	// month a year ago.
	CallRetentionMonths = 13
	// callPruneInterval is how often old records are deleted (real time),
	// and callPruneRowsMax how many at most per delete; callPruneRoundsMax
	// deletes at most run back to back.
	callPruneInterval  = time.Minute
	callPruneRowsMax   = 5000
	callPruneRoundsMax = 20
	// callCodeLenMax bounds the code kept from a bank's answer.
	callCodeLenMax = 64
)

// CallKind is what a call asked the bank.
type CallKind string

// The kinds of call.
const (
	CallDebit       CallKind = "debit"
	CallCredit      CallKind = "credit"
	CallInquiry     CallKind = "inquiry"
	CallStatement   CallKind = "statement"
	CallVerify      CallKind = "verify"
	CallProbe       CallKind = "probe"
	CallMaintenance CallKind = "maintenance"
)

// Outcomes of a call. OK is the bank answering for itself, as the breaker
// counts health: a success, an acceptance, or a refusal for the request's
// own sake (insufficient funds, unknown request, invalid card). Refused is
// an answer that the bank failed or would not work (busy, down, in
// maintenance, its own error); Timeout and Transport are no answer.
const (
	CallOK        = "ok"
	CallRefused   = "refused"
	CallTimeout   = "timeout"
	CallTransport = "transport"
)

// Call is the record of one call to a bank.
type Call struct {
	Bank      string
	Kind      CallKind
	TxnID     string        // the bank transaction the call was about; "" for none
	StartedAt time.Time     // on the service's clock
	Latency   time.Duration // real time on the wire
	Outcome   string        // CallOK, CallRefused, CallTimeout or CallTransport
	Code      string        // the bank's code or failure reason, if any
}

// CallLog records the platform's calls to banks in the bank_calls table,
// cheaply: a call adds its record to a bounded buffer in memory, and every
// callFlushInterval the buffer is written as one multi-row INSERT riding
// the ledger batcher's next batch (Batcher.Ride), with no commit of its own.
// The records are for reports: a crash loses what was still buffered (about
// a second's worth), which the report tolerates; the calls' business
// effects are in bank_txns, durable before each call. Records older than
// CallRetentionMonths are deleted in bounded batches in the background
// lane.
type CallLog struct {
	batcher *ledger.Batcher
	clock   zhifu.Clock
	logger  *slog.Logger

	mu  sync.Mutex
	buf []Call

	full    chan struct{} // a batch's worth is buffered
	dropped atomic.Int64
	written atomic.Int64
}

// NewCallLog returns a log writing through b.
func NewCallLog(b *ledger.Batcher, clock zhifu.Clock, logger *slog.Logger) *CallLog {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &CallLog{batcher: b, clock: clock, logger: logger, full: make(chan struct{}, 1)}
}

// Add buffers one record. It never blocks: with the buffer full the
// record is dropped and counted in Dropped.
func (l *CallLog) Add(c Call) {
	if len(c.Code) > callCodeLenMax {
		c.Code = c.Code[:callCodeLenMax]
	}
	l.mu.Lock()
	if len(l.buf) >= callBufferMax {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.buf = append(l.buf, c)
	n := len(l.buf)
	l.mu.Unlock()
	if n == callBatchMax {
		select {
		case l.full <- struct{}{}:
		default:
		}
	}
}

// Dropped and Written count the records lost to a full buffer or a failed
// write, and those written.
func (l *CallLog) Dropped() int64 { return l.dropped.Load() }

// Written counts the records committed.
func (l *CallLog) Written() int64 { return l.written.Load() }

// Run writes the buffer every callFlushInterval, or sooner when a batch's
// worth is waiting, and prunes old records every callPruneInterval, until
// ctx ends; then it writes what is left.
func (l *CallLog) Run(ctx context.Context) {
	flush := time.NewTicker(callFlushInterval)
	defer flush.Stop()
	prune := time.NewTicker(callPruneInterval)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := l.Flush(context.Background()); err != nil {
				l.logger.Warn("channel: call records", slog.Any("err", err))
			}
			return
		case <-flush.C:
		case <-l.full:
		case <-prune.C:
			if _, err := l.Prune(ctx); err != nil && ctx.Err() == nil {
				l.logger.Warn("channel: prune call records", slog.Any("err", err))
			}
			continue
		}
		if err := l.Flush(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn("channel: call records", slog.Any("err", err))
		}
	}
}

// Flush writes everything buffered now and returns once it is durable (or
// the write failed, or ctx ended). Each batch of at most callBatchMax
// records is one INSERT riding the batcher.
func (l *CallLog) Flush(ctx context.Context) error {
	l.mu.Lock()
	buf := l.buf
	l.buf = nil
	l.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for len(buf) > 0 {
		n := min(len(buf), callBatchMax)
		batch := buf[:n:n]
		buf = buf[n:]
		wg.Add(1)
		ok := l.batcher.Ride(&insertCallsOp{calls: batch}, func(err error) {
			defer wg.Done()
			if err != nil {
				l.dropped.Add(int64(len(batch)))
				mu.Lock()
				errs = append(errs, fmt.Errorf("write call records: %w", err))
				mu.Unlock()
				return
			}
			l.written.Add(int64(len(batch)))
		})
		if !ok {
			wg.Done()
			l.dropped.Add(int64(len(batch)))
			mu.Lock()
			errs = append(errs, fmt.Errorf("write call records: the batcher took no more riders"))
			mu.Unlock()
		}
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// Prune deletes records older than CallRetentionMonths, at most
// callPruneRowsMax per delete and callPruneRoundsMax deletes, and returns
// how many it deleted.
func (l *CallLog) Prune(ctx context.Context) (int64, error) {
	before := l.clock.Now().AddDate(0, -CallRetentionMonths, 0)
	var total int64
	for range callPruneRoundsMax {
		op := &pruneCallsOp{before: before}
		if err := l.batcher.DoBulk(ctx, op); err != nil {
			return total, fmt.Errorf("prune call records: %w", err)
		}
		total += op.n
		if op.n < callPruneRowsMax {
			break
		}
	}
	return total, nil
}

// insertCallsOp writes one batch of records as one multi-row INSERT.
type insertCallsOp struct{ calls []Call }

func (o *insertCallsOp) Keys() []string { return nil }

func (o *insertCallsOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	return nil, nil
}

func (o *insertCallsOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	return InsertCalls(ctx, tx, o.calls)
}

// InsertCalls writes records in one INSERT; CallLog uses it for each batch,
// and tests that make a month of records use it directly.
func InsertCalls(ctx context.Context, q ledger.Querier, calls []Call) error {
	if len(calls) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO bank_calls (bank, kind, txn_id, started_at, latency, outcome, code) VALUES `)
	args := make([]any, 0, 7*len(calls))
	for i, c := range calls {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, c.Bank, string(c.Kind), c.TxnID, nanos(c.StartedAt), int64(c.Latency), c.Outcome, c.Code)
	}
	if _, err := q.Exec(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("channel: insert call records: %w", err)
	}
	return nil
}

// pruneCallsOp deletes one bounded batch of old records.
type pruneCallsOp struct {
	before time.Time
	n      int64
}

func (o *pruneCallsOp) Keys() []string { return []string{"bank_calls:prune"} }

func (o *pruneCallsOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.n = 0
	return nil, nil
}

func (o *pruneCallsOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	n, err := tx.Exec(ctx, `DELETE FROM bank_calls WHERE seq IN (SELECT seq FROM bank_calls
		WHERE started_at < ? ORDER BY started_at LIMIT ?)`, nanos(o.before), callPruneRowsMax)
	if err != nil {
		return fmt.Errorf("channel: prune call records: %w", err)
	}
	o.n = n
	return nil
}

// recordedBank is a bank whose every call is recorded in a CallLog. A
// call's start is the service's clock time, which places it in a day and a
// minute; its latency is real time on the wire, measured on the monotonic
// clock, so that a clock set by hand (or stepped by NTP) never shows as a
// slow bank.
type recordedBank struct {
	Bank
	name  string
	log   *CallLog
	clock zhifu.Clock
}

// started is when a call began: on the service's clock, and on the
// monotonic clock for its latency.
type started struct {
	at   time.Time
	wall time.Time
}

func (r *recordedBank) start() started { return started{at: r.clock.Now(), wall: time.Now()} }

func (r *recordedBank) record(kind CallKind, txnID string, start started, ok bool, code string, err error) {
	if errors.Is(err, context.Canceled) {
		return // the platform gave up (shutting down): nothing learnt of the bank
	}
	c := Call{Bank: r.name, Kind: kind, TxnID: txnID, StartedAt: start.at, Latency: time.Since(start.wall),
		Outcome: CallOK, Code: code}
	if !ok {
		c.Outcome = failedOutcome(err)
	}
	r.log.Add(c)
}

// failedOutcome says how a call that did not count as healthy failed.
func failedOutcome(err error) string {
	var e *bankapi.APIError
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &e):
		return CallRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CallTimeout
	}
	return CallTransport
}

// errorCode is the bank's code in err, or "" when it did not answer.
func errorCode(err error) string {
	var e *bankapi.APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CallOutcome is how a debit, credit or inquiry answered with txn and err
// is recorded: its outcome, as the breaker counts health (see
// Answer.Healthy), and the bank's code or failure reason.
func CallOutcome(txn bankapi.Transaction, err error) (outcome, code string) {
	a := Classify(txn, err)
	code = a.Reason
	if a.Kind == Decided && txn.Status == bankapi.StatusFailed {
		code = txn.Reason
	}
	if code == "no answer" {
		code = ""
	}
	if a.Healthy() {
		return CallOK, code
	}
	return failedOutcome(err), code
}

func (r *recordedBank) txnCall(kind CallKind, txnID string, start started, txn bankapi.Transaction, err error) {
	outcome, code := CallOutcome(txn, err)
	r.record(kind, txnID, start, outcome == CallOK, code, err)
}

func (r *recordedBank) Debit(ctx context.Context, req bankapi.TxnRequest) (bankapi.Transaction, error) {
	start := r.start()
	txn, err := r.Bank.Debit(ctx, req)
	r.txnCall(CallDebit, req.RequestID, start, txn, err)
	return txn, err
}

func (r *recordedBank) Credit(ctx context.Context, req bankapi.TxnRequest) (bankapi.Transaction, error) {
	start := r.start()
	txn, err := r.Bank.Credit(ctx, req)
	r.txnCall(CallCredit, req.RequestID, start, txn, err)
	return txn, err
}

func (r *recordedBank) Inquire(ctx context.Context, requestID string) (bankapi.Transaction, error) {
	start := r.start()
	txn, err := r.Bank.Inquire(ctx, requestID)
	r.txnCall(CallInquiry, requestID, start, txn, err)
	return txn, err
}

func (r *recordedBank) VerifyCard(ctx context.Context, cardNo, holder string) (bankapi.Card, error) {
	start := r.start()
	card, err := r.Bank.VerifyCard(ctx, cardNo, holder)
	r.record(CallVerify, "", start, callOutcome(err) == Success, errorCode(err), err)
	return card, err
}

func (r *recordedBank) Statement(ctx context.Context, date string) (bankapi.Statement, error) {
	start := r.start()
	st, err := r.Bank.Statement(ctx, date)
	r.record(CallStatement, "", start, callOutcome(err) == Success, errorCode(err), err)
	return st, err
}

// OpenStatement is recorded when the statement starts to arrive: its
// latency is the bank's time to answer, not the reading of the day.
func (r *recordedBank) OpenStatement(ctx context.Context, date string) (io.ReadCloser, error) {
	start := r.start()
	body, err := r.Bank.OpenStatement(ctx, date)
	r.record(CallStatement, "", start, callOutcome(err) == Success, errorCode(err), err)
	return body, err
}

func (r *recordedBank) Maintenance(ctx context.Context) (bankapi.MaintenanceNotice, error) {
	start := r.start()
	n, err := r.Bank.Maintenance(ctx)
	r.record(CallMaintenance, "", start, callOutcome(err) == Success, errorCode(err), err)
	return n, err
}

func (r *recordedBank) Probe(ctx context.Context) error {
	start := r.start()
	err := r.Bank.Probe(ctx)
	r.record(CallProbe, "", start, callOutcome(err) == Success, errorCode(err), err)
	return err
}
