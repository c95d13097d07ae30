package recon

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/channel"
	"zhifu/ledger"
)

// matcher merges a day's two sorted sides and acts on what the rules find.
// Groups that need the platform's full record (a difference, or a line
// whose request is not among the day's records) wait in pending and are
// looked up channel.LoadTxnsMax at a time, by the txn_id index.
type matcher struct {
	svc      *Service
	run      *Run
	a        *applier
	sum      map[Class]Tally
	from, to int64 // the day, unix nanoseconds

	pending   []pendingGroup
	confirms  []string // records the statement does not show, to ask the bank about
	inquiries int64
}

type pendingGroup struct {
	id    string
	lines []Line
}

func (m *matcher) merge(ctx context.Context, lines *sorter[Line], recs []*sorter[Record], p *progress) error {
	lm, err := lines.merged()
	if err != nil {
		return err
	}
	defer lm.close()
	rm, err := mergeAll(recs)
	if err != nil {
		return err
	}
	defer rm.close()
	group := make([]Line, 0, 4)
	var done int64
	for {
		lp, rp := lm.peek(), rm.peek()
		var id string
		switch {
		case lp == nil && rp == nil:
			return m.flush(ctx)
		case lp == nil:
			id = rp.TxnID
		case rp == nil || lp.RequestID <= rp.TxnID:
			id = lp.RequestID
		default:
			id = rp.TxnID
		}
		group = group[:0]
		for lp := lm.peek(); lp != nil && lp.RequestID == id; lp = lm.peek() {
			l, _, err := lm.next()
			if err != nil {
				return err
			}
			if len(group) == groupLinesMax {
				return fmt.Errorf("recon: request %s has more than %d lines in the statement", clip(id, 64), groupLinesMax)
			}
			group = append(group, l)
		}
		var rec *Record
		if rp := rm.peek(); rp != nil && rp.TxnID == id {
			r, _, err := rm.next()
			if err != nil {
				return err
			}
			rec = &r
		}
		if err := m.group(ctx, id, group, rec); err != nil {
			return err
		}
		done += int64(len(group))
		p.linesDone.Store(done)
		if done&0xfff == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
}

// group decides one request id: at once when the day's record and the
// statement agree, later (pending) when the full record is needed.
func (m *matcher) group(ctx context.Context, id string, lines []Line, rec *Record) error {
	day := m.run.Day
	if rec != nil && len(lines) == 0 {
		f := recordOnly(day, rec)
		if f.Do != DoConfirm {
			m.tally(f)
			return nil
		}
		if len(m.confirms) == confirmMax {
			return fmt.Errorf("recon: more than %d of the day's transactions are not in the statement: is it %s's of %s, and whole?",
				confirmMax, m.run.Bank, day)
		}
		m.confirms = append(m.confirms, rec.TxnID)
		return nil
	}
	if rec != nil && len(lines) == 1 && m.agree(&lines[0], rec) {
		// Nearly every line of a day: one line, its record, agreeing.
		t := m.sum[Matched]
		t.Lines++
		t.Records++
		t.Amount += lines[0].Amount
		m.sum[Matched] = t
		return nil
	}
	if rec != nil {
		fs := Classify(day, lines, rec)
		if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Do != DoNothing }) {
			for _, f := range fs {
				m.tally(f)
			}
			return nil
		}
	}
	m.pending = append(m.pending, pendingGroup{id: id, lines: slices.Clone(lines)})
	if len(m.pending) == channel.LoadTxnsMax {
		return m.flush(ctx)
	}
	return nil
}

// agree reports whether the one line of a request and the day's record of
// it are a plain match (what Classify would find matched, and nothing
// else), without the rules' allocations.
func (m *matcher) agree(l *Line, rec *Record) bool {
	return l.moved() && rec.Status == channel.StatusSuccess && rec.ResolvedBy != channel.ByRecon &&
		l.Kind == lineKind(rec.Kind) && l.Amount == rec.Amount && (rec.BankTxnID == "" || rec.BankTxnID == l.BankTxnID) &&
		l.SettledAt >= m.from && l.SettledAt < m.to && rec.SettledAt >= m.from && rec.SettledAt < m.to
}

// flush looks up the pending groups' records and acts on them.
func (m *matcher) flush(ctx context.Context) error {
	if len(m.pending) == 0 {
		return nil
	}
	ids := make([]string, len(m.pending))
	for i, g := range m.pending {
		ids[i] = g.id
	}
	txns, err := channel.LoadTxns(ctx, m.svc.cfg.Store.Reader(), ids)
	if err != nil {
		return err
	}
	for _, g := range m.pending {
		t := txns[g.id]
		if t != nil && t.Bank != m.run.Bank {
			t = nil // another bank's request id: not this statement's business
		}
		for _, f := range Classify(m.run.Day, g.lines, recordOf(t)) {
			m.tally(f)
			if err := m.a.act(ctx, m.run, f, t); err != nil {
				return err
			}
		}
	}
	m.pending = m.pending[:0]
	return nil
}

// confirm asks the bank about each record of the day the statement does
// not show, and acts on the answer. A bank that does not answer fails the
// run: nothing is moved on a guess.
func (m *matcher) confirm(ctx context.Context) error {
	for start := 0; start < len(m.confirms); start += channel.LoadTxnsMax {
		ids := m.confirms[start:min(start+channel.LoadTxnsMax, len(m.confirms))]
		txns, err := channel.LoadTxns(ctx, m.svc.cfg.Store.Reader(), ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			t := txns[id]
			if t == nil {
				return fmt.Errorf("recon: transaction %s vanished", id)
			}
			ans, err := m.svc.cfg.Channels.Inquire(ctx, m.run.Bank, id)
			m.inquiries++
			notFound := bankapi.IsNotFound(err)
			if err != nil && !notFound {
				return fmt.Errorf("recon: ask %s about %s: %w", m.run.Bank, id, err)
			}
			f := AfterInquiry(m.run.Day, recordOf(t), ans, notFound)
			m.tally(f)
			if err := m.a.act(ctx, m.run, f, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *matcher) tally(f Finding) {
	t := m.sum[f.Class]
	switch {
	case f.Line != nil:
		t.Lines++
		t.Amount += f.Line.Amount
	case f.Rec != nil:
		t.Amount += f.Rec.Amount
	}
	if f.Counted {
		t.Records++
	}
	m.sum[f.Class] = t
}

// applier commits a run's repairs, at most cap(slots) at once, so the
// batcher gathers them into few transactions.
type applier struct {
	svc    *Service
	slots  chan struct{}
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	errOnce sync.Once
	err     error

	repaired, opened, settled, closed, suspense atomic.Int64
}

// submit commits op in the background and then runs after.
func (a *applier) submit(ctx context.Context, op ledger.Op, after func()) error {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	a.wg.Go(func() {
		defer func() { <-a.slots }()
		if err := a.svc.do(ctx, op); err != nil {
			a.errOnce.Do(func() {
				a.err = fmt.Errorf("recon: repair: %w", err)
				a.cancel(a.err)
			})
			return
		}
		after()
	})
	return nil
}

// wait waits for the repairs submitted and returns the first failure.
func (a *applier) wait() error {
	a.wg.Wait()
	return a.err
}

// act turns a finding into its op: t is the platform's transaction (nil
// when it has none).
func (a *applier) act(ctx context.Context, run *Run, f Finding, t *channel.BankTxn) error {
	s := a.svc
	switch f.Do {
	case DoNothing, DoConfirm:
		return nil
	case DoSettle:
		st := s.cfg.Channels.Settle(t, f.Succeed, f.Line.BankTxnID, "STATEMENT_FAILED")
		if f.Class == Matched {
			return a.submit(ctx, st, func() {
				if st.Changed() {
					a.settled.Add(1)
					st.Committed()
				}
			})
		}
		what := "credited the top-up from the statement"
		if t.Kind.Payout() {
			what = "marked the payout paid from the statement"
		}
		op := &itemOp{it: s.newItem(run, f, t, Repaired, what), sub: st, closeOverdue: true}
		return a.submit(ctx, op, func() {
			if op.applied {
				a.repaired.Add(1)
				st.Committed()
			}
		})
	case DoCredit:
		it := s.newItem(run, f, t, Repaired, "credited the wallet with the top-up the bank took")
		it.Books = f.Line.Amount
		wallet, err := walletOf(t.UserID)
		if err != nil {
			return err
		}
		settlement, err := settlementOf(run.Bank)
		if err != nil {
			return err
		}
		op := &itemOp{it: it, closeOverdue: true,
			transfers: []ledger.Transfer{s.transfer("rc:"+it.ItemID+":credit", settlement, wallet, f.Line.Amount)}}
		return a.submit(ctx, op, func() {
			if op.applied {
				a.repaired.Add(1)
			}
		})
	case DoReturn:
		it := s.newItem(run, f, t, Repaired, "returning the second debit to the card")
		it.Books = f.Line.Amount
		settlement, err := settlementOf(run.Bank)
		if err != nil {
			return err
		}
		ret := s.cfg.Channels.ReturnOp(channel.CardReturn{ID: zhifu.KeyedID("WX", run.Bank, f.Key), Source: t,
			Amount: zhifu.Amount(f.Line.Amount), From: settlement, Reason: "DUPLICATE_DEBIT"})
		it.Repair += " (refund payout " + zhifu.KeyedID("WX", run.Bank, f.Key) + ")"
		op := &itemOp{it: it, sub: ret}
		return a.submit(ctx, op, func() {
			if op.applied {
				a.repaired.Add(1)
				ret.Committed()
			}
		})
	case DoReview:
		it := s.newItem(run, f, t, Open, "")
		it.Books = f.Suspense
		if channel.Kind(it.Kind).Payout() {
			it.Books = -f.Suspense
		}
		op := &itemOp{it: it, closeOverdue: t != nil}
		if f.Suspense != 0 {
			settlement, err := settlementOf(run.Bank)
			if err != nil {
				return err
			}
			debit, credit, amount := settlement, zhifu.SuspenseAccountID, f.Suspense
			if amount < 0 {
				debit, credit, amount = credit, debit, -amount
			}
			op.transfers = []ledger.Transfer{s.transfer("rc:"+it.ItemID+":suspense", debit, credit, amount)}
		}
		return a.submit(ctx, op, func() {
			if op.applied {
				a.opened.Add(1)
				a.suspense.Add(f.Suspense)
			}
		})
	}
	return fmt.Errorf("recon: finding %+v has no action", f)
}

// newItem makes the review item of a finding.
func (s *Service) newItem(run *Run, f Finding, t *channel.BankTxn, status, repair string) *Item {
	now := s.now()
	it := &Item{ItemID: ItemID(run.Bank, f.Key), Bank: run.Bank, Key: f.Key, Day: run.Day, RunID: run.RunID,
		Class: f.Class, Status: status, Suspense: f.Suspense, Repair: repair, Detail: f.Detail, BankAmount: f.BankAmount,
		CreatedAt: now, UpdatedAt: now}
	if l := f.Line; l != nil {
		it.RequestID, it.BankTxnID, it.BankAmount = l.RequestID, l.BankTxnID, l.Amount
		it.Kind = string(channel.KindTopup)
		if l.Kind == bankapi.KindCredit {
			it.Kind = string(channel.KindWithdrawal)
		}
	}
	if t != nil {
		it.TxnID, it.Kind, it.UserID, it.OurAmount = t.TxnID, string(t.Kind), t.UserID, int64(t.Amount)
		if it.RequestID == "" {
			it.RequestID, it.BankTxnID = t.TxnID, f.BankTxnID
		}
	}
	if status == Repaired {
		it.ResolvedAt = now
	}
	return it
}

func walletOf(userID string) (int64, error) {
	num, ok := zhifu.ParseUserID(userID)
	if !ok {
		return 0, fmt.Errorf("recon: %q is not a user id", userID)
	}
	return zhifu.WalletAccountID(num), nil
}

func settlementOf(bank string) (int64, error) {
	i, ok := zhifu.BankIndex(bank)
	if !ok {
		return 0, fmt.Errorf("recon: unknown bank %q", bank)
	}
	return zhifu.BankSettlementAccountID(i), nil
}

// subOp is a channel op an item's op commits with its own rows.
type subOp interface {
	ledger.Op
	// Moves reports, after Prepare, whether the op is going to change
	// anything.
	Moves() bool
}

// itemOp records a review item with the transfers and the channel op of
// its repair, in one transaction, once: an item already recorded (a run
// again) does nothing, and neither does one whose channel op finds there
// is nothing left to do (a callback decided the transaction first).
type itemOp struct {
	it           *Item
	transfers    []ledger.Transfer
	sub          subOp
	closeOverdue bool // close the transaction's overdue item, which this one takes over
	// onlyAlone: record it only if its transaction has no item yet (an
	// overdue transaction that a run already made an item of).
	onlyAlone bool

	subPrepared bool
	nSub        int
	applied     bool
}

func (o *itemOp) Keys() []string {
	keys := []string{"recon-item:" + o.it.ItemID}
	if o.it.TxnID != "" {
		keys = append(keys, "recon-txn:"+o.it.TxnID)
	}
	if o.sub != nil {
		keys = append(keys, o.sub.Keys()...)
	}
	return keys
}

func (o *itemOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.subPrepared, o.nSub, o.applied = false, 0, false
	existing, err := loadItem(ctx, tx, o.it.ItemID, true)
	if err != nil || existing != nil {
		return nil, err
	}
	if o.onlyAlone {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM recon_items WHERE txn_id = ?`, o.it.TxnID).Scan(&n); err != nil {
			return nil, fmt.Errorf("recon: items of %s: %w", o.it.TxnID, err)
		}
		if n > 0 {
			return nil, nil
		}
	}
	var trs []ledger.Transfer
	if o.sub != nil {
		if trs, err = o.sub.Prepare(ctx, tx); err != nil {
			return nil, err
		}
		o.subPrepared = true
		if !o.sub.Moves() {
			return nil, nil
		}
		o.nSub = len(trs)
	}
	o.applied = true
	return append(trs, o.transfers...), nil
}

func (o *itemOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.subPrepared {
		if err := o.sub.Finish(ctx, tx, results[:min(o.nSub, len(results))]); err != nil {
			return err
		}
	}
	if !o.applied {
		return nil
	}
	for i, r := range results[o.nSub:] {
		if r != ledger.TransferOK && r != ledger.TransferExists {
			return fmt.Errorf("recon: item %s: transfer %s: %s", o.it.ItemID, o.transfers[i].ID, r)
		}
	}
	if err := insertItem(ctx, tx, o.it); err != nil {
		return err
	}
	if o.closeOverdue && o.it.TxnID != "" {
		if _, err := tx.Exec(ctx, `UPDATE recon_items SET status = ?, detail = ?, updated_at = ?
			WHERE txn_id = ? AND class = ? AND status = ? AND item_id <> ?`, Closed, "taken over by item "+o.it.ItemID,
			toNanos(o.it.CreatedAt), o.it.TxnID, string(Overdue), Open, o.it.ItemID); err != nil {
			return fmt.Errorf("recon: close overdue item of %s: %w", o.it.TxnID, err)
		}
	}
	return nil
}

// Applied reports whether the op recorded its item (ledger.Applier).
func (o *itemOp) Applied() bool { return o.applied }
