package trade

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"zhifu"
)

// Trades created through the Alipay-compatible gateway are reported in
// Alipay's asynchronous notification format: form fields, signed RSA2 by
// the notify worker when sent (sign and sign_type are added then and left
// out of the signed string, as Alipay does).

// beijing is UTC+8, the zone of Alipay's timestamps; China has no DST.
var beijing = time.FixedZone("CST", 8*3600)

func alipayTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(beijing).Format("2006-01-02 15:04:05")
}

// alipayNotificationBody returns the unsigned form, URL-encoded.
func alipayNotificationBody(id string, t *Trade, r *RefundRecord, now time.Time) string {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("notify_time", alipayTime(now))
	set("notify_type", NotifyType)
	set("notify_id", id)
	set("app_id", appIDOfMerchant(t.MerchantID))
	set("charset", "utf-8")
	set("version", "1.0")
	set("trade_no", t.TradeNo)
	set("out_trade_no", t.OutTradeNo)
	set("trade_status", string(t.Status))
	set("subject", t.Subject)
	set("total_amount", t.TotalAmount.String())
	set("seller_id", t.SellerID)
	set("buyer_id", t.BuyerID)
	set("gmt_create", alipayTime(t.CreatedAt))
	if !t.PaidAt.IsZero() {
		set("buyer_pay_amount", t.BuyerPayAmount.String())
		set("receipt_amount", t.BuyerPayAmount.String())
		set("invoice_amount", t.BuyerPayAmount.String())
		set("point_amount", zhifu.Amount(0).String())
		set("gmt_payment", alipayTime(t.PaidAt))
	}
	set("gmt_close", alipayTime(t.ClosedAt))
	if r != nil {
		set("out_biz_no", r.OutRequestNo)
		set("refund_fee", t.RefundedAmount.String())
		set("gmt_refund", alipayTime(r.CreatedAt))
	}
	return v.Encode()
}

// appIDOfMerchant derives the gateway app id from the merchant id
// ("m0000000007" → zhifu.AppIDOf(7)).
func appIDOfMerchant(merchantID string) string {
	n, err := strconv.ParseInt(strings.TrimPrefix(merchantID, "m"), 10, 64)
	if err != nil {
		return ""
	}
	return zhifu.AppIDOf(n)
}
