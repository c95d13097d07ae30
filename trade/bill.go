package trade

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// BillLinesMax bounds one day's bill. A merchant with more asks for it in
// another form (LIMIT_EXCEEDED), rather than the server building an
// unbounded answer.
const BillLinesMax = 100_000

// billHeader is Alipay's trade-bill column order (交易明细), so merchants'
// existing reconciliation scripts read it.
var billHeader = []string{"支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间",
	"门店编号", "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）",
	"集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
	"卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注"}

// billTimeLayout is how Alipay bills write times (in UTC+8).
const billTimeLayout = "2006-01-02 15:04:05"

// Bill types: the two bills of alipay.data.dataservice.bill.downloadurl.query.
const (
	// BillTrade is the trade bill (交易明细): the day's trades and refunds.
	BillTrade = "trade"
	// BillSignCustomer is the account bill (账务明细): every movement of the
	// merchant's wallet that day, with the balance after it.
	BillSignCustomer = "signcustomer"
)

// Bill is one merchant's bill of one day, checked and counted, ready to
// write: as the daily bill job stored it, or, for a day it has not
// written (today's, or one it has not reached), built from the records.
type Bill struct {
	s          *Service
	merchantID string
	userID     string
	wallet     int64 // the merchant's wallet account
	date, typ  string
	from, to   time.Time // the day in UTC+8: [from, to)
	Lines      int
	// Stored says the bill is the one the daily job wrote, served as it is.
	Stored bool
	// seqs bound the account bill's ledger rows: [seqFrom, seqTo).
	seqFrom, seqTo int64
}

// NewBill prepares merchant m's bill of type typ (BillTrade when empty)
// for date (YYYY-MM-DD). The day is a day in China (UTC+8, Asia/Shanghai
// time, as Alipay's bills and its merchants count days), not a UTC day. A
// trade appears on the day it was paid, a refund on the day it was made, a
// wallet movement on the day it was committed.
func (s *Service) NewBill(ctx context.Context, m *identity.Merchant, date, typ string) (*Bill, error) {
	day, err := time.ParseInLocation("2006-01-02", date, chinaTime)
	if err != nil || day.Format("2006-01-02") != date {
		return nil, invalid("date", "date must be a day written YYYY-MM-DD")
	}
	if typ == "" {
		typ = BillTrade
	}
	if typ != BillTrade && typ != BillSignCustomer {
		return nil, invalid("type", "type must be %s or %s", BillTrade, BillSignCustomer)
	}
	num, ok := zhifu.ParseUserID(m.UserID)
	if !ok {
		return nil, fmt.Errorf("trade: merchant %s has no wallet", m.MerchantID)
	}
	b := &Bill{s: s, merchantID: m.MerchantID, userID: m.UserID, wallet: zhifu.WalletAccountID(num), date: date, typ: typ,
		from: day, to: day.AddDate(0, 0, 1)}
	q := s.cfg.Store.Reader()
	var lines int64
	err = q.QueryRow(ctx, `SELECT lines FROM bills WHERE merchant_id = ? AND bill_date = ? AND bill_type = ?`,
		b.merchantID, date, typ).Scan(&lines)
	switch {
	case err == nil:
		b.Lines, b.Stored = int(lines), true
		return b, nil
	case !errors.Is(err, ledger.ErrNoRows):
		return nil, fmt.Errorf("trade: stored bill: %w", err)
	}
	if typ == BillSignCustomer {
		lines, err = b.countAccountLines(ctx)
	} else {
		lines, err = b.countTradeLines(ctx)
	}
	if err != nil {
		return nil, err
	}
	if lines > BillLinesMax {
		return nil, zhifu.Errorf(zhifu.LimitExceeded, "the bill of %s has %d lines, more than %d", date,
			lines, BillLinesMax)
	}
	b.Lines = int(lines)
	return b, nil
}

// Date and Type say which bill b is.
func (b *Bill) Date() string { return b.date }

// Type is BillTrade or BillSignCustomer.
func (b *Bill) Type() string { return b.typ }

func (b *Bill) countTradeLines(ctx context.Context) (int64, error) {
	var trades, refunds int64
	q := b.s.cfg.Store.Reader()
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM trades WHERE `+billTradesWhere, b.tradeArgs()...).Scan(&trades); err != nil {
		return 0, fmt.Errorf("trade: count bill trades: %w", err)
	}
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM refunds r JOIN trades t ON t.trade_no = r.trade_no
		WHERE `+billRefundsWhere, b.refundArgs()...).Scan(&refunds); err != nil {
		return 0, fmt.Errorf("trade: count bill refunds: %w", err)
	}
	return trades + refunds, nil
}

// billTradesWhere finds trades paid in [from, to). created_at narrows the
// search to the (merchant_id, created_at) index: a trade is paid before it
// closes, at most TimeoutExpressMax after it was created. It states the
// index's predicate, created_at > 0 (true of every trade), so that both
// databases may use it (migration 0027).
const billTradesWhere = `merchant_id = ? AND created_at > 0 AND created_at >= ? AND created_at < ?
	AND paid_at >= ? AND paid_at < ?`

func (b *Bill) tradeArgs() []any {
	return []any{b.merchantID, b.from.Add(-TimeoutExpressMax).UnixNano(), b.to.UnixNano(),
		b.from.UnixNano(), b.to.UnixNano()}
}

const billRefundsWhere = `r.created_at >= ? AND r.created_at < ? AND t.merchant_id = ?`

func (b *Bill) refundArgs() []any {
	return []any{b.from.UnixNano(), b.to.UnixNano(), b.merchantID}
}

// WriteCSV streams the bill: the stored one as it was written, else the
// lines built from the records (see writeTradeLines and
// writeAccountLines), never more than BillLinesMax.
func (b *Bill) WriteCSV(ctx context.Context, w io.Writer) error {
	if b.Stored {
		return b.writeStored(ctx, w)
	}
	cw := csv.NewWriter(w)
	if err := b.writeRecords(ctx, cw); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// recordWriter takes a bill's records one at a time: a csv.Writer, or the
// daily job's writer of stored parts.
type recordWriter interface {
	Write(record []string) error
}

// writeRecords writes the header and the lines built from the records.
func (b *Bill) writeRecords(ctx context.Context, cw recordWriter) error {
	if b.typ == BillSignCustomer {
		if err := cw.Write(accountBillHeader); err != nil {
			return err
		}
		return b.writeAccountLines(ctx, cw)
	}
	if err := cw.Write(billHeader); err != nil {
		return err
	}
	return b.writeTradeLines(ctx, cw)
}

// writeTradeLines writes trade lines in order of payment, then refund
// lines in order of refund: at most Lines plus what arrived since NewBill
// counted, and never more than BillLinesMax.
func (b *Bill) writeTradeLines(ctx context.Context, cw recordWriter) error {
	q := b.s.cfg.Store.Reader()
	rows, err := q.Query(ctx, `SELECT `+tradeColumns+` FROM trades WHERE `+billTradesWhere+
		` ORDER BY paid_at, trade_no LIMIT ?`, append(b.tradeArgs(), BillLinesMax)...)
	if err != nil {
		return fmt.Errorf("trade: bill trades: %w", err)
	}
	written, err := writeLines(rows, cw, BillLinesMax, func(r ledger.Rows) ([]string, error) {
		t, err := scanTrade(r)
		if err != nil {
			return nil, err
		}
		return billLine(t, "交易", t.PaidAt, t.TotalAmount, "", ""), nil
	})
	if err != nil {
		return fmt.Errorf("trade: bill trades: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT r.out_request_no, r.refund_amount, r.reason, r.created_at, `+
		prefixed("t.", tradeColumns)+` FROM refunds r JOIN trades t ON t.trade_no = r.trade_no
		WHERE `+billRefundsWhere+` ORDER BY r.created_at, r.trade_no, r.out_request_no LIMIT ?`,
		append(b.refundArgs(), BillLinesMax-written)...)
	if err != nil {
		return fmt.Errorf("trade: bill refunds: %w", err)
	}
	if _, err := writeLines(rows, cw, BillLinesMax-written, scanRefundLine); err != nil {
		return fmt.Errorf("trade: bill refunds: %w", err)
	}
	return nil
}

func scanRefundLine(r ledger.Rows) ([]string, error) {
	var reqNo, reason string
	var amount, created int64
	t, err := scanTrade(prefixRow{r, []any{&reqNo, &amount, &reason, &created}})
	if err != nil {
		return nil, err
	}
	// Refund lines carry negative amounts, as in Alipay's bills.
	return billLine(t, "退款", fromNanos(created), -zhifu.Amount(amount), reqNo, reason), nil
}

// prefixRow scans some leading columns into head, then the rest as asked.
type prefixRow struct {
	ledger.Row
	head []any
}

func (p prefixRow) Scan(dest ...any) error { return p.Row.Scan(append(p.head, dest...)...) }

func writeLines(rows ledger.Rows, cw recordWriter, max int, line func(ledger.Rows) ([]string, error)) (int, error) {
	defer rows.Close()
	n := 0
	for n < max && rows.Next() {
		rec, err := line(rows)
		if err != nil {
			return n, err
		}
		if err := cw.Write(rec); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// billLine is one line in billHeader's order. Columns for things zhifu does
// not have (stores, operators, red packets, coupons, fees) are empty or
// zero, as Alipay writes them for a plain online trade.
func billLine(t *Trade, kind string, done time.Time, amount zhifu.Amount, reqNo, remark string) []string {
	zero := zhifu.Amount(0).String()
	discount := t.DiscountAmount
	if amount < 0 {
		discount = 0
	}
	return []string{t.TradeNo, t.OutTradeNo, kind, cellText(t.Subject), billTime(t.CreatedAt), billTime(done),
		"", "", "", "", t.BuyerID, amount.String(), amount.String(), zero,
		zero, discount.String(), zero, zero, "", zero,
		zero, reqNo, zero, zero, cellText(remark)}
}

// cellText defuses free text that a spreadsheet would run as a formula
// (CSV injection): a leading =, +, -, @, tab or CR gets a quote before it.
func cellText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func billTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(chinaTime).Format(billTimeLayout)
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(prefix, columns string) string {
	out := []byte(prefix)
	for i := 0; i < len(columns); i++ {
		c := columns[i]
		out = append(out, c)
		if c == ',' {
			// Skip the spacing after the comma, then qualify the next name.
			for i+1 < len(columns) && (columns[i+1] == ' ' || columns[i+1] == '\n' || columns[i+1] == '\t') {
				i++
			}
			out = append(out, ' ')
			out = append(out, prefix...)
		}
	}
	return string(out)
}
