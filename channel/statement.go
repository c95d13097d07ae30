package channel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/ledger"
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
		err := readStatement(cctx, b.client, day, func(l bankapi.StatementLine) {
			if want[l.RequestID] {
				lines[l.RequestID] = l
			}
		})
		b.calls.Add(-1)
		cancel()
		end := s.now()
		b.breaker.Done(end, probe, callOutcome(err), end.Sub(start))
		if err != nil {
			return nil, fmt.Errorf("statement %s of %s: %w", day, b.name, err)
		}
	}
	s.cfg.Logger.Debug("channel: statements read", slog.String("bank", b.name), slog.Int("days", len(days)),
		slog.Int("txns", len(txns)), slog.Int("found", len(lines)))
	return lines, nil
}

// readStatement streams the statement of day through fn, a line at a
// time: a day at a busy bank runs to millions of lines, of which a sweep
// wants a few. A statement cut short is an error, and fn may then have seen
// part of it (the lines it saw are the bank's all the same).
func readStatement(ctx context.Context, c Bank, day string, fn func(bankapi.StatementLine)) error {
	body, err := c.OpenStatement(ctx, day)
	if err != nil {
		return err
	}
	defer body.Close()
	sr, err := bankapi.NewStatementReader(body)
	if err != nil {
		return err
	}
	for {
		l, ok, err := sr.Next()
		if err != nil || !ok {
			return err
		}
		fn(l)
	}
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
	if t.Kind.Payout() {
		kind = bankapi.KindCredit
	}
	return l.Kind == kind && l.Amount == int64(t.Amount)
}

// What reconciliation (package recon) needs of the channels: the banks'
// statements and inquiries, the platform's records of a day, and the ops
// that settle a transaction or send money back to a card. Reconciliation
// makes a handful of calls a day per bank, so it takes a background token
// like the sweeps but does not wait for the breaker: a bank that does not
// answer fails the run, which is tried again later.

// ByRecon is resolved_by of a transaction a reconciliation run decided
// from the bank's statement.
const ByRecon = "recon"

// reconTokenWait bounds the wait for a background token (real time).
const (
	reconTokenWait = 10 * time.Second
	reconTokenPoll = 20 * time.Millisecond
)

// reconBank returns the bank's channel once a background token is had.
func (s *Service) reconBank(ctx context.Context, name string) (*bank, error) {
	b, err := s.bankOf(name, "bank")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(reconTokenWait)
	for !s.takeBackground(b) {
		if time.Now().After(deadline) {
			return nil, zhifu.Errorf(zhifu.SystemBusy, "%s: no capacity left for reconciliation now", name)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(reconTokenPoll):
		}
	}
	return b, nil
}

// OpenStatement starts reading the bank's statement of date (YYYY-MM-DD,
// Beijing) for a bankapi.StatementReader; the caller closes it. The call
// counts in the bank's health like any other.
func (s *Service) OpenStatement(ctx context.Context, bankName, date string) (io.ReadCloser, error) {
	b, err := s.reconBank(ctx, bankName)
	if err != nil {
		return nil, err
	}
	start := s.now()
	body, err := b.client.OpenStatement(ctx, date)
	b.window.Record(s.now(), callOutcome(err), s.now().Sub(start))
	if err != nil {
		return nil, fmt.Errorf("statement %s of %s: %w", date, bankName, err)
	}
	return body, nil
}

// Inquire asks the bank about one request, for reconciliation.
func (s *Service) Inquire(ctx context.Context, bankName, requestID string) (bankapi.Transaction, error) {
	b, err := s.reconBank(ctx, bankName)
	if err != nil {
		return bankapi.Transaction{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	b.calls.Add(1)
	defer b.calls.Add(-1)
	start := s.now()
	txn, err := b.client.Inquire(cctx, requestID)
	b.window.Record(s.now(), answerOutcome(Classify(txn, err)), s.now().Sub(start))
	return txn, err
}

// Settled is what reconciliation compares of one of the platform's bank
// transactions.
type Settled struct {
	TxnID      string
	Kind       Kind
	Status     Status
	Amount     zhifu.Amount
	BankTxnID  string
	ResolvedBy string
	SettledAt  time.Time
}

// EachSettled calls fn with every transaction of the bank decided in
// [from, to) by the platform's clock, in no particular order, reading them
// as it goes (the index on bank and settled_at).
func EachSettled(ctx context.Context, q ledger.Querier, bankName string, from, to time.Time, fn func(Settled) error) error {
	rows, err := q.Query(ctx, `SELECT txn_id, kind, status, amount, bank_txn_id, resolved_by, settled_at
		FROM bank_txns WHERE bank = ? AND settled_at >= ? AND settled_at < ?`, bankName, nanos(from), nanos(to))
	if err != nil {
		return fmt.Errorf("channel: settled of %s: %w", bankName, err)
	}
	defer rows.Close()
	for rows.Next() {
		var x Settled
		var kind, status string
		var amount, settled int64
		if err := rows.Scan(&x.TxnID, &kind, &status, &amount, &x.BankTxnID, &x.ResolvedBy, &settled); err != nil {
			return fmt.Errorf("channel: settled of %s: %w", bankName, err)
		}
		x.Kind, x.Status, x.Amount = Kind(kind), Status(status), zhifu.Amount(amount)
		x.SettledAt = fromNanos(settled)
		if err := fn(x); err != nil {
			return err
		}
	}
	return rows.Err()
}

// LoadTxnsMax bounds the ids of one LoadTxns: small enough that both
// databases look each one up by the txn_id index.
const LoadTxnsMax = 500

// LoadTxns reads the transactions with the given ids (at most
// LoadTxnsMax); unknown ids are absent from the answer.
func LoadTxns(ctx context.Context, q ledger.Querier, ids []string) (map[string]*BankTxn, error) {
	if len(ids) > LoadTxnsMax {
		return nil, fmt.Errorf("channel: %d transactions asked for at once, at most %d", len(ids), LoadTxnsMax)
	}
	out := make(map[string]*BankTxn, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	marks := strings.Repeat(", ?", len(ids))[2:]
	txns, err := queryTxns(ctx, q, `SELECT `+txnColumns+` FROM bank_txns WHERE txn_id IN (`+marks+`)`, args...)
	if err != nil {
		return nil, err
	}
	for _, t := range txns {
		out[t.TxnID] = t
	}
	return out, nil
}

// LoadTxn reads one transaction, nil if there is none; lock holds it to
// the end of q's transaction (PostgreSQL).
func LoadTxn(ctx context.Context, q ledger.Querier, txnID string, lock bool) (*BankTxn, error) {
	return loadTxn(ctx, q, txnID, lock)
}

// Settlement decides a transaction by reconciliation, exactly as a
// callback or the statement sweep would (the same op, the same transfer
// ids), so whichever comes first wins and the others find it final. It is
// a ledger.Op for a caller to commit with its own rows; Committed keeps the
// channel's counters once it has.
type Settlement struct {
	op *resolveOp
}

// Settle returns the op that decides t: succeed (the bank moved the money)
// or not, with the bank's reference.
func (s *Service) Settle(t *BankTxn, succeed bool, bankTxnID, reason string) *Settlement {
	st := Step{Resolve: Fail, BankTxnID: bankTxnID, Reason: reason}
	if succeed {
		st.Resolve = Succeed
	}
	return &Settlement{op: &resolveOp{svc: s, txnID: t.TxnID, tradeNo: t.TradeNo, step: st, by: ByRecon, now: s.now()}}
}

func (x *Settlement) Keys() []string { return x.op.Keys() }

func (x *Settlement) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	return x.op.Prepare(ctx, tx)
}

func (x *Settlement) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	return x.op.Finish(ctx, tx, results)
}

// Moves reports, after Prepare, whether the op is going to move the
// transaction (false: it is final already, by whatever came first).
func (x *Settlement) Moves() bool { return x.op.t != nil }

// Changed reports, after the op committed, whether it moved the
// transaction.
func (x *Settlement) Changed() bool { return x.op.changed }

// Committed keeps the queue counts after the op's transaction committed.
func (x *Settlement) Committed() {
	if x.op.changed {
		x.op.svc.resolved(x.op)
	}
}

// CardReturn is money the platform holds for a user that goes back to the
// card of one of their top-ups: the bank charged the card twice, or an
// operator decided so. It is paid as a refund payout (a withdrawal row of
// method refund, recorded before the bank hears of it), from the user's
// frozen account, into which the money moves from From in the same
// transaction; the payout worker sends the bank's credit.
type CardReturn struct {
	ID     string // the payout's request id, derived by the caller so a repeat finds it
	Source *BankTxn
	Amount zhifu.Amount
	From   int64 // the ledger account the money comes from
	Reason string
}

// ReturnOp returns the op that records r.
func (s *Service) ReturnOp(r CardReturn) *ReturnOp { return &ReturnOp{svc: s, r: r} }

// ReturnOp records a CardReturn: a ledger.Op.
type ReturnOp struct {
	svc      *Service
	r        CardReturn
	inserted bool
}

func (o *ReturnOp) Keys() []string { return []string{"banktxn:" + o.r.ID} }

func (o *ReturnOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.inserted = false
	r := o.r
	if r.Source == nil || r.Source.CardToken == "" || r.Amount <= 0 {
		return nil, fmt.Errorf("channel: return %s: no card to return %s to", r.ID, r.Amount)
	}
	if e, err := loadTxn(ctx, tx, r.ID, true); err != nil || e != nil {
		return nil, err
	}
	_, frozen, err := accountsOf(r.Source.UserID)
	if err != nil {
		return nil, err
	}
	o.inserted = true
	return []ledger.Transfer{o.svc.transfer(wdHoldID(r.ID), r.From, frozen, r.Amount, zhifu.TransferWithdraw)}, nil
}

func (o *ReturnOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if !o.inserted {
		return nil
	}
	if r := results[0]; r != ledger.TransferOK && r != ledger.TransferExists {
		return fmt.Errorf("channel: return %s: hold: %s", o.r.ID, r)
	}
	now := o.svc.now()
	src := o.r.Source
	return insertTxn(ctx, tx, &BankTxn{TxnID: o.r.ID, Kind: KindWithdrawal, Method: MethodRefund, UserID: src.UserID,
		Bank: src.Bank, CardID: src.CardID, CardToken: src.CardToken, Amount: o.r.Amount, SourceTxn: src.TxnID,
		Status: StatusQueued, Stage: StageQueued, Reason: o.r.Reason, CreatedAt: now, UpdatedAt: now})
}

// Moves reports, after Prepare, whether the op is going to record the
// payout (false: it is recorded already).
func (o *ReturnOp) Moves() bool { return o.inserted }

// Committed counts the payout in its bank's queue once the op's
// transaction committed.
func (o *ReturnOp) Committed() {
	if o.inserted {
		if b := o.svc.banks[o.r.Source.Bank]; b != nil {
			b.queued.Add(1)
		}
		o.svc.Kick()
	}
}
