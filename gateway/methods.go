package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/trade"
)

// biz is the union of the biz_content fields the supported methods read.
// Amounts may come as strings (as the SDKs send them) or JSON numbers.
type biz struct {
	OutTradeNo     string      `json:"out_trade_no"`
	TradeNo        string      `json:"trade_no"`
	TotalAmount    json.Number `json:"total_amount"`
	Subject        string      `json:"subject"`
	BuyerID        string      `json:"buyer_id"`
	TimeoutExpress string      `json:"timeout_express"`
	Scene          string      `json:"scene"`
	AuthCode       string      `json:"auth_code"`
	RefundAmount   json.Number `json:"refund_amount"`
	RefundReason   string      `json:"refund_reason"`
	OutRequestNo   string      `json:"out_request_no"`
	BillType       string      `json:"bill_type"`
	BillDate       string      `json:"bill_date"`
}

func parseBiz(c *Call) (*biz, *Error) {
	var b biz
	dec := json.NewDecoder(bytes.NewReader(c.Biz))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return nil, errorf(CodeInvalidArguments, "isv.invalid-parameter", "biz_content does not match the method's fields")
	}
	return &b, nil
}

func amount(n json.Number, name string) (zhifu.Amount, *Error) {
	a, err := zhifu.ParseAmount(n.String(), name)
	if err != nil {
		return 0, errorf(CodeBusinessFailed, "ACQ.INVALID_PARAMETER", "%s must be yuan with at most two decimals", name)
	}
	return a, nil
}

// timeout reads Alipay's timeout_express: 1m..15d in m, h or d, or "1c"
// for the end of today (Beijing time).
func timeout(s string, now time.Time) (time.Duration, *Error) {
	if s == "" {
		return 0, nil
	}
	if s == "1c" {
		y, mo, d := now.In(beijing).Date()
		return time.Date(y, mo, d+1, 0, 0, 0, 0, beijing).Sub(now), nil
	}
	d, ok := trade.ParseDuration(s)
	if !ok {
		return 0, errorf(CodeBusinessFailed, "ACQ.INVALID_PARAMETER", "timeout_express must look like 90m, 2h, 1d or 1c")
	}
	return d, nil
}

// create answers alipay.trade.create: an instant trade, as Alipay's are.
func (s *Service) create(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	t, e := s.createTrade(ctx, m, c)
	if e != nil {
		return nil, e
	}
	return map[string]any{"trade_no": t.TradeNo, "out_trade_no": t.OutTradeNo}, nil
}

func (s *Service) createTrade(ctx context.Context, m *identity.Merchant, c *Call) (*trade.Trade, *Error) {
	b, e := parseBiz(c)
	if e != nil {
		return nil, e
	}
	total, e := amount(b.TotalAmount, "total_amount")
	if e != nil {
		return nil, e
	}
	to, e := timeout(b.TimeoutExpress, s.cfg.Clock.Now())
	if e != nil {
		return nil, e
	}
	t, _, err := s.cfg.Trades.Create(ctx, m, trade.CreateParams{OutTradeNo: b.OutTradeNo, Subject: b.Subject,
		TotalAmount: total, Mode: trade.Instant, BuyerID: b.BuyerID, TimeoutExpress: to,
		NotifyURL: c.NotifyURL, Source: trade.SourceGateway})
	if err != nil {
		return nil, fromZhifu(err)
	}
	return t, nil
}

// precreate answers alipay.trade.precreate: the trade, and the cashier
// page's URL as the QR code a buyer scans.
func (s *Service) precreate(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	t, e := s.createTrade(ctx, m, c)
	if e != nil {
		return nil, e
	}
	return map[string]any{"out_trade_no": t.OutTradeNo, "qr_code": s.cfg.BaseURL() + "/cashier/" + t.TradeNo}, nil
}

// pay answers alipay.trade.pay with scene bar_code: create the trade and
// collect it with the buyer's payment code (付款码) in one call.
func (s *Service) pay(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	b, e := parseBiz(c)
	if e != nil {
		return nil, e
	}
	if b.Scene != "bar_code" {
		return nil, errorf(CodeBusinessFailed, "ACQ.INVALID_PARAMETER", "only scene bar_code is supported")
	}
	t, e := s.createTrade(ctx, m, c)
	if e != nil {
		return nil, e
	}
	t, err := s.cfg.Trades.Collect(ctx, m, t.TradeNo, b.AuthCode)
	if err != nil {
		return nil, fromZhifu(err)
	}
	f := tradeFields(t)
	f["gmt_payment"] = FormatTime(t.PaidAt)
	f["fund_bill_list"] = fundBills(t)
	return f, nil
}

// fundBills say which funds paid trade t: the buyer's balance, and a
// campaign's discount.
func fundBills(t *trade.Trade) []map[string]string {
	out := []map[string]string{{"fund_channel": "ALIPAYACCOUNT", "amount": t.BuyerPayAmount.String()}}
	if t.DiscountAmount > 0 {
		out = append(out, map[string]string{"fund_channel": "DISCOUNT", "amount": t.DiscountAmount.String()})
	}
	return out
}

// lookup finds the trade a call names by trade_no or out_trade_no.
func (s *Service) lookup(ctx context.Context, m *identity.Merchant, b *biz) (*trade.Trade, *Error) {
	var t *trade.Trade
	var err error
	switch {
	case b.TradeNo != "":
		t, err = s.cfg.Trades.Query(ctx, m, b.TradeNo)
	case b.OutTradeNo != "":
		t, err = s.cfg.Trades.QueryByOutTradeNo(ctx, m, b.OutTradeNo)
	default:
		return nil, errorf(CodeMissingArguments, "isv.missing-parameter", "trade_no or out_trade_no is required")
	}
	if err != nil {
		return nil, fromZhifu(err)
	}
	if b.TradeNo != "" && b.OutTradeNo != "" && t.OutTradeNo != b.OutTradeNo {
		return nil, errorf(CodeBusinessFailed, "ACQ.TRADE_NOT_EXIST", "trade_no and out_trade_no name different trades")
	}
	return t, nil
}

// target parses a call that names an existing trade and finds the trade.
func (s *Service) target(ctx context.Context, m *identity.Merchant, c *Call) (*biz, *trade.Trade, *Error) {
	b, e := parseBiz(c)
	if e != nil {
		return nil, nil, e
	}
	t, e := s.lookup(ctx, m, b)
	return b, t, e
}

// tradeFields are the fields query and pay share.
func tradeFields(t *trade.Trade) map[string]any {
	f := map[string]any{
		"trade_no": t.TradeNo, "out_trade_no": t.OutTradeNo, "trade_status": string(t.Status),
		"total_amount": t.TotalAmount.String(), "buyer_pay_amount": t.BuyerPayAmount.String(),
		"receipt_amount": t.Paid().String(), "invoice_amount": t.BuyerPayAmount.String(),
		"point_amount": "0.00", "buyer_user_id": t.BuyerID,
		// A campaign's discount is the platform's (Alipay's discount_amount),
		// never the merchant's (mdiscount_amount): the seller receives the
		// whole total.
		"discount_amount": t.DiscountAmount.String(), "mdiscount_amount": "0.00",
	}
	if !t.PaidAt.IsZero() {
		f["send_pay_date"] = FormatTime(t.PaidAt)
	}
	return f
}

func (s *Service) query(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	_, t, e := s.target(ctx, m, c)
	if e != nil {
		return nil, e
	}
	return tradeFields(t), nil
}

func (s *Service) close(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	_, t, e := s.target(ctx, m, c)
	if e != nil {
		return nil, e
	}
	if t, err := s.cfg.Trades.Close(ctx, m, t.TradeNo); err != nil {
		return nil, fromZhifu(err)
	} else {
		return map[string]any{"trade_no": t.TradeNo, "out_trade_no": t.OutTradeNo}, nil
	}
}

// cancelRequestNo is the out_request_no of the refund a cancel makes.
const cancelRequestNo = "cancel"

// cancel answers alipay.trade.cancel: an unpaid trade is closed, a paid one
// refunded in full; either way the buyer keeps nothing owed.
func (s *Service) cancel(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	_, t, e := s.target(ctx, m, c)
	if e != nil {
		return nil, e
	}
	out := map[string]any{"trade_no": t.TradeNo, "out_trade_no": t.OutTradeNo, "retry_flag": "N"}
	switch {
	case t.Status == trade.WaitBuyerPay:
		if _, err := s.cfg.Trades.Close(ctx, m, t.TradeNo); err != nil {
			return nil, fromZhifu(err)
		}
		out["action"] = "close"
	case t.Status == trade.Closed && t.RefundedAmount == 0:
		out["action"] = "close"
	case t.Status == trade.Closed || t.Held() > 0:
		left := t.Held()
		if left > 0 {
			_, _, err := s.cfg.Trades.Refund(ctx, m, t.TradeNo, trade.RefundParams{OutRequestNo: cancelRequestNo,
				Amount: left, Reason: "cancelled"})
			if err != nil {
				return nil, fromZhifu(err)
			}
		}
		out["action"] = "refund"
	default:
		return nil, errorf(CodeBusinessFailed, "ACQ.TRADE_STATUS_ERROR", "a %s trade cannot be cancelled", t.Status)
	}
	return out, nil
}

// refund answers alipay.trade.refund. Without out_request_no the refund is
// keyed by the out_trade_no, as a single full refund would be.
func (s *Service) refund(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	b, t, e := s.target(ctx, m, c)
	if e != nil {
		return nil, e
	}
	amt, e := amount(b.RefundAmount, "refund_amount")
	if e != nil {
		return nil, e
	}
	reqNo := b.OutRequestNo
	if reqNo == "" {
		reqNo = t.OutTradeNo
	}
	_, created, err := s.cfg.Trades.Refund(ctx, m, t.TradeNo, trade.RefundParams{OutRequestNo: reqNo, Amount: amt,
		Reason: truncate(b.RefundReason, 256)})
	if err != nil {
		return nil, fromZhifu(err)
	}
	if t, err = s.cfg.Trades.Query(ctx, m, t.TradeNo); err != nil {
		return nil, fromZhifu(err)
	}
	change := "N"
	if created {
		change = "Y"
	}
	return map[string]any{"trade_no": t.TradeNo, "out_trade_no": t.OutTradeNo, "buyer_user_id": t.BuyerID,
		"fund_change": change, "refund_fee": t.RefundedAmount.String(),
		"gmt_refund_pay": FormatTime(s.cfg.Clock.Now())}, nil
}

func (s *Service) refundQuery(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	b, t, e := s.target(ctx, m, c)
	if e != nil {
		return nil, e
	}
	reqNo := b.OutRequestNo
	if reqNo == "" {
		reqNo = t.OutTradeNo
	}
	out := map[string]any{"trade_no": t.TradeNo, "out_trade_no": t.OutTradeNo, "out_request_no": reqNo,
		"total_amount": t.TotalAmount.String()}
	r, err := s.cfg.Trades.RefundQuery(ctx, m, t.TradeNo, reqNo)
	if zhifu.ErrorCode(err) == zhifu.NotFound {
		// Alipay answers success without refund_status for a refund it
		// never received.
		return out, nil
	}
	if err != nil {
		return nil, fromZhifu(err)
	}
	out["refund_amount"] = r.RefundAmount.String()
	out["gmt_refund_pay"] = FormatTime(r.CreatedAt)
	if r.Status == trade.RefundSuccess {
		out["refund_status"] = "REFUND_SUCCESS"
	}
	return out, nil
}

// billURL answers alipay.data.dataservice.bill.downloadurl.query with a
// signed link to the day's bill, valid for billURLTTL: bill_type trade,
// the trade bill (交易明细), or signcustomer, the account bill (账务明细)
// of the merchant's wallet. Both are CSV in Alipay's column order; a
// finished day's bills are the ones the daily bill job wrote.
func (s *Service) billURL(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error) {
	b, e := parseBiz(c)
	if e != nil {
		return nil, e
	}
	if b.BillType != "trade" && b.BillType != "signcustomer" {
		return nil, errorf(CodeInvalidArguments, "isv.invalid-parameter", "bill_type must be trade or signcustomer")
	}
	if _, err := time.Parse("2006-01-02", b.BillDate); err != nil || strings.Count(b.BillDate, "-") != 2 {
		return nil, errorf(CodeInvalidArguments, "isv.invalid-parameter", "bill_date must be yyyy-MM-dd")
	}
	link := s.BillLink(m.MerchantID, b.BillDate, b.BillType, s.cfg.Clock.Now().Add(billURLTTL))
	return map[string]any{"bill_download_url": link}, nil
}
