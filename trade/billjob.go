package trade

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// Limits of the daily bill job.
const (
	// billPartLinesMax bounds the lines of one stored part of a bill, so
	// writing or serving a bill of BillLinesMax lines never holds more
	// than a part in memory or in one transaction.
	billPartLinesMax = 2000
	// billMerchantsPerRunMax bounds the merchants (two bills each) one run
	// of the job writes.
	billMerchantsPerRunMax = 50
	// billCatchUpDays is how many finished days back the job looks for
	// bills not yet written, after the platform was down for a while.
	billCatchUpDays = 7
	// billJobInterval is how often the job runs (real time; the clock
	// decides which days are finished).
	billJobInterval = 10 * time.Second
	// billRunTimeout bounds one run.
	billRunTimeout = 5 * time.Minute
)

// RunBills runs the daily bill job until ctx ends: every billJobInterval,
// one bounded run of WriteBills.
func (s *Service) RunBills(ctx context.Context) {
	tick := time.NewTicker(billJobInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, billRunTimeout)
		if _, err := s.WriteBills(rctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("trade: daily bills", slog.Any("err", err))
		}
		cancel()
	}
}

// WriteBills writes the bills of finished days (the last billCatchUpDays
// days in China before today) that are not written yet: the trade and the
// account bill of every merchant that existed by the day's end, the oldest
// day first, at most billMerchantsPerRunMax merchants per run. A bill
// already written is left as it is, so runs may repeat and several
// processes may run the job at once. It returns how many bills it wrote.
func (s *Service) WriteBills(ctx context.Context) (int, error) {
	now := s.cfg.Clock.Now()
	y, mo, d := now.In(chinaTime).Date()
	today := time.Date(y, mo, d, 0, 0, 0, 0, chinaTime)
	budget, written := billMerchantsPerRunMax, 0
	for back := billCatchUpDays; back >= 1 && budget > 0; back-- {
		day := today.AddDate(0, 0, -back)
		n, took, err := s.writeDayBills(ctx, day, budget, now)
		written += n
		budget -= took
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// writeDayBills writes one day's bills for at most budget merchants after
// the day's cursor and moves the cursor; it returns the bills written and
// the merchants taken.
func (s *Service) writeDayBills(ctx context.Context, day time.Time, budget int, now time.Time) (int, int, error) {
	date := day.Format("2006-01-02")
	q := s.cfg.Store.Reader()
	var next, doneAt int64
	err := q.QueryRow(ctx, `SELECT next_num, done_at FROM bill_days WHERE bill_date = ?`, date).Scan(&next, &doneAt)
	switch {
	case errors.Is(err, ledger.ErrNoRows):
	case err != nil:
		return 0, 0, fmt.Errorf("trade: bill day %s: %w", date, err)
	case doneAt != 0:
		return 0, 0, nil
	}
	ms, last, err := merchantsAfter(ctx, q, next, day.AddDate(0, 0, 1), budget)
	if err != nil {
		return 0, 0, err
	}
	written := 0
	for _, m := range ms {
		for _, typ := range []string{BillTrade, BillSignCustomer} {
			ok, err := s.storeBill(ctx, m, date, typ, now)
			if err != nil {
				return written, len(ms), err
			}
			if ok {
				written++
			}
		}
	}
	op := &billDayOp{date: date, next: max(next, last)}
	if len(ms) < budget {
		op.doneAt = now.UnixNano()
	}
	if err := s.cfg.Batcher.DoBulk(ctx, op); err != nil {
		return written, len(ms), fmt.Errorf("trade: bill day %s: %w", date, err)
	}
	return written, len(ms), nil
}

// merchantsAfter reads up to n merchants numbered above num and created
// before end, in number order, and the last one's number.
func merchantsAfter(ctx context.Context, q ledger.Querier, num int64, end time.Time, n int) ([]*identity.Merchant, int64, error) {
	rows, err := q.Query(ctx, `SELECT num, merchant_id, user_id FROM merchants WHERE num > ? AND created_at < ?
		ORDER BY num LIMIT ?`, num, end.UnixNano(), n)
	if err != nil {
		return nil, 0, fmt.Errorf("trade: bill merchants: %w", err)
	}
	defer rows.Close()
	var out []*identity.Merchant
	last := num
	for rows.Next() {
		m := &identity.Merchant{}
		if err := rows.Scan(&m.Num, &m.MerchantID, &m.UserID); err != nil {
			return nil, 0, fmt.Errorf("trade: bill merchants: %w", err)
		}
		out = append(out, m)
		last = m.Num
	}
	return out, last, rows.Err()
}

// storeBill writes one bill, part by part, unless it is written already;
// it reports whether it wrote it. A bill too long to keep (over
// BillLinesMax lines) is logged and skipped: it can be had no other way
// either.
func (s *Service) storeBill(ctx context.Context, m *identity.Merchant, date, typ string, now time.Time) (bool, error) {
	b, err := s.NewBill(ctx, m, date, typ)
	if zhifu.ErrorCode(err) == zhifu.LimitExceeded {
		s.cfg.Logger.Error("trade: bill too long to write", slog.String("merchant_id", m.MerchantID),
			slog.String("date", date), slog.String("type", typ), slog.Any("err", err))
		return false, nil
	}
	if err != nil || b.Stored {
		return false, err
	}
	pw := &partWriter{ctx: ctx, s: s, key: billKey{m.MerchantID, date, typ}}
	pw.cw = csv.NewWriter(&pw.buf)
	if err := b.writeRecords(ctx, pw); err != nil {
		return false, err
	}
	return pw.finish(now)
}

// writeStored streams a stored bill's parts in order.
func (b *Bill) writeStored(ctx context.Context, w io.Writer) error {
	rows, err := b.s.cfg.Store.Reader().Query(ctx, `SELECT body FROM bill_parts
		WHERE merchant_id = ? AND bill_date = ? AND bill_type = ? ORDER BY part`, b.merchantID, b.date, b.typ)
	if err != nil {
		return fmt.Errorf("trade: stored bill: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return fmt.Errorf("trade: stored bill: %w", err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			return err
		}
	}
	return rows.Err()
}

type billKey struct{ merchantID, date, typ string }

func (k billKey) String() string { return "bill:" + k.merchantID + ":" + k.date + ":" + k.typ }

// partWriter takes a bill's records and stores them in parts of
// billPartLinesMax lines, each part in its own write; finish writes the
// last part with the bills row that says the bill is whole.
type partWriter struct {
	ctx   context.Context
	s     *Service
	key   billKey
	buf   bytes.Buffer
	cw    *csv.Writer
	lines int // in the part being filled
	total int // records, the header included
	part  int
}

func (p *partWriter) Write(rec []string) error {
	if err := p.cw.Write(rec); err != nil {
		return err
	}
	p.lines++
	p.total++
	if p.lines < billPartLinesMax {
		return nil
	}
	p.cw.Flush()
	op := &billPartOp{key: p.key, part: p.part, body: p.buf.String()}
	if err := p.s.cfg.Batcher.DoBulk(p.ctx, op); err != nil {
		return fmt.Errorf("trade: write bill part: %w", err)
	}
	p.part++
	p.buf.Reset()
	p.lines = 0
	return nil
}

func (p *partWriter) finish(now time.Time) (bool, error) {
	p.cw.Flush()
	if err := p.cw.Error(); err != nil {
		return false, err
	}
	op := &billDoneOp{billPartOp: billPartOp{key: p.key, part: p.part, body: p.buf.String()},
		lines: p.total - 1, now: now}
	if p.lines == 0 && p.part > 0 {
		op.part-- // the last part was full: nothing more to write
		op.empty = true
	}
	if err := p.s.cfg.Batcher.DoBulk(p.ctx, op); err != nil {
		return false, fmt.Errorf("trade: write bill: %w", err)
	}
	return !op.existed, nil
}

// billPartOp writes one part, replacing what an interrupted earlier
// attempt may have left under its number.
type billPartOp struct {
	key  billKey
	part int
	body string
}

func (o *billPartOp) Keys() []string { return []string{o.key.String()} }

func (o *billPartOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *billPartOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	_, err := tx.Exec(ctx, `INSERT INTO bill_parts (merchant_id, bill_date, bill_type, part, body)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (merchant_id, bill_date, bill_type, part) DO UPDATE SET body = excluded.body`,
		o.key.merchantID, o.key.date, o.key.typ, o.part, o.body)
	return err
}

// billDoneOp writes a bill's last part and its bills row, unless the bill
// was finished meanwhile (by another process), and drops any part past the
// last that an interrupted earlier attempt left.
type billDoneOp struct {
	billPartOp
	empty   bool // the last part is written already
	lines   int
	now     time.Time
	existed bool
}

func (o *billDoneOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.existed = false
	return nil, nil
}

func (o *billDoneOp) Finish(ctx context.Context, tx ledger.Tx, r []ledger.TransferResult) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM bills WHERE merchant_id = ? AND bill_date = ? AND bill_type = ?`,
		o.key.merchantID, o.key.date, o.key.typ).Scan(&one)
	switch {
	case err == nil:
		o.existed = true
		return nil
	case !errors.Is(err, ledger.ErrNoRows):
		return err
	}
	if !o.empty {
		if err := o.billPartOp.Finish(ctx, tx, r); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM bill_parts WHERE merchant_id = ? AND bill_date = ? AND bill_type = ?
		AND part > ?`, o.key.merchantID, o.key.date, o.key.typ, o.part); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO bills (merchant_id, bill_date, bill_type, lines, parts, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, o.key.merchantID, o.key.date, o.key.typ, o.lines, o.part+1, o.now.UnixNano())
	return err
}

// billDayOp moves a day's cursor forward (never back) and marks the day
// done.
type billDayOp struct {
	date   string
	next   int64
	doneAt int64
}

func (o *billDayOp) Keys() []string { return []string{"billday:" + o.date} }

func (o *billDayOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *billDayOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	_, err := tx.Exec(ctx, `INSERT INTO bill_days (bill_date, next_num, done_at) VALUES (?, ?, ?)
		ON CONFLICT (bill_date) DO UPDATE SET
		next_num = CASE WHEN excluded.next_num > bill_days.next_num THEN excluded.next_num ELSE bill_days.next_num END,
		done_at = CASE WHEN bill_days.done_at <> 0 THEN bill_days.done_at ELSE excluded.done_at END`,
		o.date, o.next, o.doneAt)
	return err
}
