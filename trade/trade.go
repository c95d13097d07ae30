package trade

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// Trade is one row of the trades table: an order a merchant created and
// the money that moved for it. Times are UTC; the zero time means "not yet".
type Trade struct {
	TradeNo        string
	OutTradeNo     string
	MerchantID     string
	SellerID       string // the user whose wallet the merchant's money goes to
	BuyerID        string // named at creation, or whoever paid; "" until then
	Mode           Mode
	Subject        string
	TotalAmount    zhifu.Amount
	BuyerPayAmount zhifu.Amount // what the buyer paid: the total less the discount
	DiscountAmount zhifu.Amount // what a campaign's budget paid
	// CampaignID, CampaignLabel and BudgetAccount name the campaign that
	// paid the discount, the label the buyer saw and its budget account.
	CampaignID     string
	CampaignLabel  string
	BudgetAccount  int64
	RefundedAmount zhifu.Amount
	Status         Status
	// NotifyURL is where the trade's notifications go: the one the merchant
	// gave with the trade, else the merchant's own when the trade was
	// created ("" for neither: nobody is told). Fixing it at creation
	// spares every later move a lookup.
	NotifyURL        string
	TimeoutExpress   time.Duration
	ConfirmTimeout   time.Duration
	ParamsHash       string
	Source           string // "api" or "gateway"
	LogisticsCompany string
	TrackingNo       string
	RefundsOpen      int // refunds still in flight; they pause the confirm timer
	// Payment is the card payment a pay request started: set on that
	// request's answer only, and never stored (the top-up it names is).
	Payment    *CardPayment
	CreatedAt  time.Time
	PaidAt     time.Time
	ShippedAt  time.Time
	FinishedAt time.Time
	ClosedAt   time.Time
	// CloseDue is when an unpaid trade closes by itself.
	CloseDue time.Time
	// ConfirmDue is when a trade finishes by itself: a shipped escrow trade
	// confirm_timeout after shipping, an instant trade when its refund
	// window ends. One column serves both so one index finds both.
	ConfirmDue time.Time
	// notifySeq is the sequence of the trade's last notification (0: none
	// yet); saveTrade gives a move that notifies the next one.
	notifySeq int64
}

// RefundRecord is one row of the refunds table: a refund made.
type RefundRecord struct {
	TradeNo      string
	OutRequestNo string
	RefundAmount zhifu.Amount
	Reason       string
	Status       string // RefundSuccess; PROCESSING is for card refunds, later
	CreatedAt    time.Time
}

// RefundSuccess is the status of a refund whose money has reached the
// buyer's wallet.
const RefundSuccess = "SUCCESS"

// Paid is what the trade was paid, by the buyer and a campaign's discount
// together, and can be refunded in total.
func (t *Trade) Paid() zhifu.Amount { return t.BuyerPayAmount + t.DiscountAmount }

// Held is the trade's share of the pooled escrow account: what was paid
// less what was refunded, while the trade waits for confirmation.
func (t *Trade) Held() zhifu.Amount { return t.Paid() - t.RefundedAmount }

const tradeColumns = `trade_no, out_trade_no, merchant_id, seller_id, buyer_id, mode, subject,
	total_amount, buyer_pay_amount, discount_amount, refunded_amount, status, notify_url,
	timeout_express, confirm_timeout, params_hash, source, logistics_company, tracking_no,
	refunds_open, created_at, paid_at, shipped_at, finished_at, closed_at, close_due, confirm_due,
	campaign_id, campaign_label, budget_account, notify_seq`

// scanTrade reads tradeColumns. Numbers are scanned into plain int64 so
// both drivers take them the same way.
func scanTrade(row ledger.Row) (*Trade, error) {
	var t Trade
	var mode, status string
	var total, buyerPay, discount, refunded, timeout, confirm, open int64
	var created, paid, shipped, finished, closed, closeDue, confirmDue, budget int64
	err := row.Scan(&t.TradeNo, &t.OutTradeNo, &t.MerchantID, &t.SellerID, &t.BuyerID, &mode, &t.Subject,
		&total, &buyerPay, &discount, &refunded, &status, &t.NotifyURL,
		&timeout, &confirm, &t.ParamsHash, &t.Source, &t.LogisticsCompany, &t.TrackingNo,
		&open, &created, &paid, &shipped, &finished, &closed, &closeDue, &confirmDue,
		&t.CampaignID, &t.CampaignLabel, &budget, &t.notifySeq)
	if err != nil {
		return nil, err
	}
	t.Mode, t.Status = Mode(mode), Status(status)
	t.TotalAmount, t.BuyerPayAmount = zhifu.Amount(total), zhifu.Amount(buyerPay)
	t.DiscountAmount, t.RefundedAmount = zhifu.Amount(discount), zhifu.Amount(refunded)
	t.TimeoutExpress, t.ConfirmTimeout = time.Duration(timeout)*time.Second, time.Duration(confirm)*time.Second
	t.RefundsOpen, t.BudgetAccount = int(open), budget
	t.CreatedAt, t.PaidAt, t.ShippedAt = fromNanos(created), fromNanos(paid), fromNanos(shipped)
	t.FinishedAt, t.ClosedAt = fromNanos(finished), fromNanos(closed)
	t.CloseDue, t.ConfirmDue = fromNanos(closeDue), fromNanos(confirmDue)
	return &t, nil
}

// loadTrade reads one trade by trade_no; lock adds FOR UPDATE, which holds
// the row until the transaction ends on PostgreSQL. A missing trade is
// (nil, nil).
// loadTradeSQL reads a trade by trade_no; lockTradeSQL also locks it.
const (
	loadTradeSQL = `SELECT ` + tradeColumns + ` FROM trades WHERE trade_no = ?`
	lockTradeSQL = loadTradeSQL + ` FOR UPDATE`
)

func loadTrade(ctx context.Context, q ledger.Querier, tradeNo string, lock bool) (*Trade, error) {
	query := loadTradeSQL
	if lock {
		query = lockTradeSQL
	}
	t, err := scanTrade(q.QueryRow(ctx, query, tradeNo))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trade: load %s: %w", tradeNo, err)
	}
	return t, nil
}

// insertTrade writes a new trade. Its op has looked the merchant's
// out_trade_no up first (createOp): if another process took it since, the
// insert changes no row, and the Write's count error, an ErrConflict,
// makes the store run the transaction again, where the look-up finds it.
// Any other conflict, such as a repeated trade_no, is an error. A Write,
// so that on PostgreSQL the insert rides with the batch's other writes.
func insertTrade(ctx context.Context, q ledger.Querier, t *Trade) error {
	err := q.Write(ctx, 1, `INSERT INTO trades (`+tradeColumns+`) VALUES
		(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (merchant_id, out_trade_no) DO NOTHING`,
		t.TradeNo, t.OutTradeNo, t.MerchantID, t.SellerID, t.BuyerID, string(t.Mode), t.Subject,
		int64(t.TotalAmount), int64(t.BuyerPayAmount), int64(t.DiscountAmount), int64(t.RefundedAmount),
		string(t.Status), t.NotifyURL, int64(t.TimeoutExpress/time.Second), int64(t.ConfirmTimeout/time.Second),
		t.ParamsHash, t.Source, t.LogisticsCompany, t.TrackingNo, int64(t.RefundsOpen),
		nanos(t.CreatedAt), nanos(t.PaidAt), nanos(t.ShippedAt), nanos(t.FinishedAt), nanos(t.ClosedAt),
		nanos(t.CloseDue), nanos(t.ConfirmDue), t.CampaignID, t.CampaignLabel, t.BudgetAccount, t.notifySeq)
	if err != nil {
		return fmt.Errorf("trade: insert %s: %w", t.TradeNo, err)
	}
	return nil
}

// saveTrade writes what a move changed. The WHERE clause repeats the status
// and refunded amount the op read under its lock: if they changed, someone
// moved the trade without that lock, and the op fails rather than overwrite
// them (the batcher then runs it again, alone, on fresh rows). A trade with
// somebody to tell is told of every move: saveTrade numbers that
// notification, the next after old's, and the caller enqueues it (notify).
func saveTrade(ctx context.Context, q ledger.Querier, old, t *Trade) error {
	if old.Status.Final() && t.Status != old.Status {
		// The state table never moves a final trade; a rule that did is a
		// bug, and saving it could pay a finished trade twice.
		panic(fmt.Sprintf("trade: %s would leave final status %s for %s", t.TradeNo, old.Status, t.Status))
	}
	if t.NotifyURL != "" {
		t.notifySeq = old.notifySeq + 1
	}
	// A Write: on PostgreSQL the update rides with the batch's other
	// writes, and a row count other than 1 fails the batch there.
	err := q.Write(ctx, 1, `UPDATE trades SET status = ?, buyer_id = ?, buyer_pay_amount = ?,
		refunded_amount = ?, logistics_company = ?, tracking_no = ?, refunds_open = ?, paid_at = ?,
		shipped_at = ?, finished_at = ?, closed_at = ?, confirm_due = ?, discount_amount = ?, campaign_id = ?,
		campaign_label = ?, budget_account = ?, notify_seq = ?
		WHERE trade_no = ? AND status = ? AND refunded_amount = ?`,
		string(t.Status), t.BuyerID, int64(t.BuyerPayAmount), int64(t.RefundedAmount),
		t.LogisticsCompany, t.TrackingNo, int64(t.RefundsOpen), nanos(t.PaidAt), nanos(t.ShippedAt),
		nanos(t.FinishedAt), nanos(t.ClosedAt), nanos(t.ConfirmDue), int64(t.DiscountAmount), t.CampaignID,
		t.CampaignLabel, t.BudgetAccount, t.notifySeq,
		t.TradeNo, string(old.Status), int64(old.RefundedAmount))
	if err != nil {
		return fmt.Errorf("trade: update %s: %w", t.TradeNo, err)
	}
	return nil
}

const refundColumns = `trade_no, out_request_no, refund_amount, reason, status, created_at`

// loadRefund reads one refund; a missing one is (nil, nil).
func loadRefund(ctx context.Context, q ledger.Querier, tradeNo, outRequestNo string) (*RefundRecord, error) {
	var r RefundRecord
	var amount, created int64
	err := q.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE trade_no = ? AND out_request_no = ?`,
		tradeNo, outRequestNo).Scan(&r.TradeNo, &r.OutRequestNo, &amount, &r.Reason, &r.Status, &created)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trade: load refund %s/%s: %w", tradeNo, outRequestNo, err)
	}
	r.RefundAmount, r.CreatedAt = zhifu.Amount(amount), fromNanos(created)
	return &r, nil
}

func insertRefund(ctx context.Context, q ledger.Querier, r *RefundRecord) error {
	err := q.Write(ctx, 1, `INSERT INTO refunds (`+refundColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		r.TradeNo, r.OutRequestNo, int64(r.RefundAmount), r.Reason, r.Status, nanos(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("trade: insert refund %s/%s: %w", r.TradeNo, r.OutRequestNo, err)
	}
	return nil
}

// nanos stores a time as unix nanoseconds, the zero time as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
