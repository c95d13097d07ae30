package notify

import (
	"context"
	"fmt"
	"time"

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
}

// Enqueue writes msg to the outbox inside the caller's transaction (q is the
// ledger.Tx of the op that made the change), due at once. It commits or
// vanishes with the change it reports. A message with no URL is not written.
func Enqueue(ctx context.Context, q ledger.Querier, msg Message, now time.Time) error {
	if msg.URL == "" {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO notifications (notify_id, merchant_id, url, format, body, status,
		attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)
		ON CONFLICT (notify_id) DO NOTHING`,
		msg.NotifyID, msg.MerchantID, msg.URL, msg.Format, msg.Body, now.UnixNano(), now.UnixNano())
	if err != nil {
		return fmt.Errorf("notify: enqueue: %w", err)
	}
	return nil
}
