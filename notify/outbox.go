package notify

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"zhifu/egress"
	"zhifu/ledger"
)

// Formats of a notification body.
const (
	// FormatZhifu is API.md's JSON {"notify_id","notify_type","trade":{…}},
	// signed with the merchant's secret in the Zhifu-Signature header.
	FormatZhifu = "zhifu"
	// FormatAlipay is Alipay's form-encoded asynchronous notification,
	// RSA2-signed with the platform key when it is sent.
	FormatAlipay = "alipay"
)

// Message is one notification to deliver.
type Message struct {
	NotifyID   string // unique; the merchant may see it more than once
	MerchantID string
	URL        string
	Format     string
	Body       string // FormatZhifu: the JSON body; FormatAlipay: the unsigned form fields, URL-encoded
	// TradeNo and Sequence order a trade's notifications 1, 2, 3… without
	// gaps, numbered in the transaction that enqueues them under the
	// trade's lock: the trade service keeps the last number on the trade's
	// row; NextSequence reads it from the outbox instead. A message with no
	// TradeNo is not ordered.
	TradeNo  string
	Sequence int64
}

// NextSequence returns the sequence number of tradeNo's next notification:
// 1 for its first, then one more than the last enqueued. q is the
// transaction of the status change, which holds the trade's row locked, so
// two changes of one trade never read the same number, and the numbers
// have no gaps. A unique index refuses a number given twice.
func NextSequence(ctx context.Context, q ledger.Querier, tradeNo string) (int64, error) {
	var last int64
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(sequence), 0) FROM notifications
		WHERE trade_no = ? AND trade_no <> ''`, tradeNo).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("notify: next sequence: %w", err)
	}
	return last + 1, nil
}

// Enqueue writes msg to the outbox inside the caller's transaction (q is the
// ledger.Tx of the op that made the change), due at once. It commits or
// vanishes with the change it reports. A message with no URL is not written.
func Enqueue(ctx context.Context, q ledger.Querier, msg Message, now time.Time) error {
	if msg.URL == "" {
		return nil
	}
	if (msg.TradeNo == "") != (msg.Sequence == 0) || msg.Sequence < 0 {
		return fmt.Errorf("notify: enqueue %s: trade %q with sequence %d", msg.NotifyID, msg.TradeNo, msg.Sequence)
	}
	err := q.Write(ctx, -1, `INSERT INTO notifications (notify_id, merchant_id, url, format, body, status,
		attempts, next_attempt_at, created_at, trade_no, sequence, destination)
		VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)
		ON CONFLICT (notify_id) DO NOTHING`,
		msg.NotifyID, msg.MerchantID, msg.URL, msg.Format, msg.Body, now.UnixNano(), now.UnixNano(),
		msg.TradeNo, msg.Sequence, destination(msg.URL))
	if err != nil {
		return fmt.Errorf("notify: enqueue: %w", err)
	}
	return nil
}

// destination is the host:port of notify URL raw, by which concurrent
// deliveries are bounded; an unparsable URL (refused when saved, so never
// seen) is its own destination.
func destination(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return egress.Destination(u)
}
