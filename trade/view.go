package trade

import (
	"encoding/json"
	"fmt"
	"time"

	"zhifu"
)

// View is a trade as the API shows it (API.md, "The trade"): amounts as
// two-decimal strings, times in RFC 3339 UTC or null. The HTTP responses and
// the notifications both use it, so a merchant sees one shape. Fields after
// closed_at are extensions.
type View struct {
	TradeNo        string  `json:"trade_no"`
	OutTradeNo     string  `json:"out_trade_no"`
	MerchantID     string  `json:"merchant_id"`
	SellerID       string  `json:"seller_id"`
	BuyerID        *string `json:"buyer_id"` // null until named or paid
	Mode           Mode    `json:"mode"`
	Subject        string  `json:"subject"`
	TotalAmount    string  `json:"total_amount"`
	BuyerPayAmount string  `json:"buyer_pay_amount"`
	DiscountAmount string  `json:"discount_amount"`
	// CampaignLabel is what the buyer was told the discount is, when a
	// campaign paid one.
	CampaignLabel    *string `json:"campaign_label,omitempty"`
	RefundedAmount   string  `json:"refunded_amount"`
	Status           Status  `json:"status"`
	CreatedAt        *string `json:"created_at"`
	PaidAt           *string `json:"paid_at"`
	ShippedAt        *string `json:"shipped_at"`
	FinishedAt       *string `json:"finished_at"`
	ClosedAt         *string `json:"closed_at"`
	Currency         string  `json:"currency"`
	LogisticsCompany *string `json:"logistics_company"`
	TrackingNo       *string `json:"tracking_no"`
	// TimeExpire is when an unpaid trade closes by itself (null once paid
	// or closed); ConfirmDue when a shipped escrow trade finishes by itself.
	TimeExpire *string `json:"time_expire"`
	ConfirmDue *string `json:"confirm_due"`
	// Payment is present on the answer to a card payment only: the
	// trade stays WAIT_BUYER_PAY while the bank works.
	Payment *PaymentView `json:"payment,omitempty"`
}

// PaymentView is the card part of a payment still with the bank.
type PaymentView struct {
	Status        string `json:"status"` // PROCESSING, SUCCESS or FAILED
	PaymentID     string `json:"payment_id"`
	Bank          string `json:"bank"`
	CardAmount    string `json:"card_amount"`
	BalanceAmount string `json:"balance_amount"`
}

// View returns the trade's API form.
func (t *Trade) View() View {
	v := View{
		TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, MerchantID: t.MerchantID, SellerID: t.SellerID,
		BuyerID: optString(t.BuyerID), Mode: t.Mode, Subject: t.Subject,
		TotalAmount: t.TotalAmount.String(), BuyerPayAmount: t.BuyerPayAmount.String(),
		DiscountAmount: t.DiscountAmount.String(), CampaignLabel: optString(t.CampaignLabel),
		RefundedAmount: t.RefundedAmount.String(),
		Status:         t.Status,
		CreatedAt:      optTime(t.CreatedAt), PaidAt: optTime(t.PaidAt), ShippedAt: optTime(t.ShippedAt),
		FinishedAt: optTime(t.FinishedAt), ClosedAt: optTime(t.ClosedAt),
		Currency:         string(zhifu.CNY),
		LogisticsCompany: optString(t.LogisticsCompany), TrackingNo: optString(t.TrackingNo),
	}
	if t.Status == WaitBuyerPay {
		v.TimeExpire = optTime(t.CloseDue)
	}
	if t.Status == WaitBuyerConfirmGoods {
		v.ConfirmDue = optTime(t.ConfirmDue)
	}
	if p := t.Payment; p != nil {
		v.Payment = &PaymentView{Status: p.Status, PaymentID: p.PaymentID, Bank: p.Bank,
			CardAmount: p.CardAmount.String(), BalanceAmount: p.BalanceAmount.String()}
	}
	return v
}

// RefundView is a refund as the API shows it: API.md's out_request_no,
// refund_amount and status, and the rest as extensions.
type RefundView struct {
	OutRequestNo string  `json:"out_request_no"`
	RefundAmount string  `json:"refund_amount"`
	Status       string  `json:"status"`
	TradeNo      string  `json:"trade_no"`
	Reason       string  `json:"reason"`
	Currency     string  `json:"currency"`
	CreatedAt    *string `json:"created_at"`
}

// View returns the refund's API form.
func (r *RefundRecord) View() RefundView {
	return RefundView{
		OutRequestNo: r.OutRequestNo, RefundAmount: r.RefundAmount.String(), Status: r.Status,
		TradeNo: r.TradeNo, Reason: r.Reason, Currency: string(zhifu.CNY), CreatedAt: optTime(r.CreatedAt),
	}
}

// FormatTime writes an API time: RFC 3339 in UTC, to the second.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := FormatTime(t)
	return &s
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// NotifyType is the notify_type of every trade notification.
const NotifyType = "trade_status_sync"

// notification is the body API.md gives for a merchant notification. A
// refund's notification also carries the refund, an extension; so are
// event_time, when the change happened, and sequence, the trade's
// notifications numbered 1, 2, 3… in the order of its changes.
type notification struct {
	NotifyID   string      `json:"notify_id"`
	NotifyType string      `json:"notify_type"`
	EventTime  string      `json:"event_time"`
	Sequence   int64       `json:"sequence"`
	Trade      View        `json:"trade"`
	Refund     *RefundView `json:"refund,omitempty"`
}

func notificationBody(id string, t *Trade, r *RefundRecord, at time.Time, seq int64) (string, error) {
	n := notification{NotifyID: id, NotifyType: NotifyType, EventTime: FormatTime(at), Sequence: seq, Trade: t.View()}
	if r != nil {
		rv := r.View()
		n.Refund = &rv
	}
	b, err := json.Marshal(n)
	if err != nil {
		return "", fmt.Errorf("trade: notification body: %w", err)
	}
	return string(b), nil
}
