package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	nethttp "net/http"
	"time"

	"zhifu/trade"
)

// Request bodies of the trade routes. Amounts stay raw JSON so that a JSON
// number is refused as INVALID_AMOUNT, as API.md asks, rather than as a
// type error.

type createTradeRequest struct {
	OutTradeNo     string          `json:"out_trade_no"`
	Subject        string          `json:"subject"`
	TotalAmount    json.RawMessage `json:"total_amount"`
	Currency       string          `json:"currency"`
	Mode           string          `json:"mode"`
	BuyerID        string          `json:"buyer_id"`
	TimeoutExpress string          `json:"timeout_express"`
	ConfirmTimeout string          `json:"confirm_timeout"`
	NotifyURL      string          `json:"notify_url"`
}

// params checks what the JSON alone can say is wrong; the service checks
// the rest.
func (req *createTradeRequest) params() (trade.CreateParams, error) {
	amount, err := parseTransferAmount(req.TotalAmount, false, "total_amount")
	if err != nil {
		return trade.CreateParams{}, err
	}
	if req.Currency != "" && req.Currency != "CNY" {
		return trade.CreateParams{}, invalidRequest("currency", `trades are in "CNY" only`)
	}
	timeout, err := parseTradeDuration(req.TimeoutExpress, "timeout_express")
	if err != nil {
		return trade.CreateParams{}, err
	}
	confirm, err := parseTradeDuration(req.ConfirmTimeout, "confirm_timeout")
	if err != nil {
		return trade.CreateParams{}, err
	}
	return trade.CreateParams{
		OutTradeNo: req.OutTradeNo, Subject: req.Subject, TotalAmount: amount, Mode: trade.Mode(req.Mode),
		BuyerID: req.BuyerID, TimeoutExpress: timeout, ConfirmTimeout: confirm, NotifyURL: req.NotifyURL,
	}, nil
}

// parseTradeDuration reads "90s", "30m", "2h" or "10d"; "" is 0, the
// default. The range is the service's to check.
func parseTradeDuration(s, param string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, ok := trade.ParseDuration(s)
	if !ok {
		return 0, invalidRequest(param, param+` must be a whole number and a unit s, m, h or d, like "30m"`)
	}
	return d, nil
}

type payRequest struct {
	Method string `json:"method"`
	CardID string `json:"card_id"`
}

type collectRequest struct {
	AuthCode string `json:"auth_code"`
}

type shipRequest struct {
	LogisticsCompany string `json:"logistics_company"`
	TrackingNo       string `json:"tracking_no"`
}

type refundRequest struct {
	OutRequestNo string          `json:"out_request_no"`
	RefundAmount json.RawMessage `json:"refund_amount"`
	Reason       string          `json:"reason"`
}

type payCodeResponse struct {
	AuthCode  string `json:"auth_code"`
	ExpiresAt string `json:"expires_at"`
	UserID    string `json:"user_id"`
}

type tradeListResponse struct {
	Data    []trade.View `json:"data"`
	HasMore bool         `json:"has_more"`
}

// decodeOptionalJSON is decodeJSON for moves whose body may be empty
// (close, confirm): no body, or an empty object, asks for nothing.
func decodeOptionalJSON(r *nethttp.Request, v any) error {
	var first [1]byte
	n, err := io.ReadFull(r.Body, first[:])
	if n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return nil
	}
	if err != nil {
		return jsonError(err)
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(first[:n]), r.Body), r.Body}
	return decodeJSON(r, v)
}
