package http

import (
	"fmt"
	"log/slog"
	nethttp "net/http"
	"strconv"

	"zhifu/checkout"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/trade"
)

// tradeListLimitDefault is the page size of GET /v1/trades without ?limit=.
const tradeListLimitDefault = 20

// tradeRoutes registers trades, refunds, payment codes and bills.
func (s *Server) tradeRoutes(mux *nethttp.ServeMux) {
	s.handleFunc(mux, "POST /v1/trades", s.merchant(s.handleCreateTrade))
	s.handleFunc(mux, "GET /v1/trades", s.merchant(s.handleFindTrades))
	s.handleFunc(mux, "GET /v1/trades/{trade_no}", s.merchant(s.handleGetTrade))
	s.handleFunc(mux, "POST /v1/trades/{trade_no}/close", s.merchant(s.handleCloseTrade))
	s.handleFunc(mux, "POST /v1/trades/{trade_no}/collect", s.merchant(s.handleCollect))
	s.handleFunc(mux, "POST /v1/trades/{trade_no}/ship", s.merchant(s.handleShip))
	s.handleFunc(mux, "POST /v1/trades/{trade_no}/refunds", s.merchant(s.handleRefund))
	s.handleFunc(mux, "GET /v1/trades/{trade_no}/refunds/{out_request_no}", s.merchant(s.handleGetRefund))
	s.handleFunc(mux, "GET /v1/bills", s.merchant(s.handleBill))

	s.handleFunc(mux, "POST /v1/trades/{trade_no}/pay", s.user(s.handlePay))
	s.handleFunc(mux, "POST /v1/trades/{trade_no}/confirm", s.user(s.handleConfirm))
	s.handleFunc(mux, "POST /v1/paycodes", s.user(s.handleNewPayCode))
}

// writeTrade answers a move with the whole trade.
func writeTrade(w nethttp.ResponseWriter, status int, t *trade.Trade) error {
	writeJSON(w, status, t.View())
	return nil
}

// handleCreateTrade answers 201 with a new trade, and 200 with the trade
// already created under the same out_trade_no with the same parameters.
func (s *Server) handleCreateTrade(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	var req createTradeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	p, err := req.params()
	if err != nil {
		return err
	}
	t, created, err := s.svc.Trades.Create(r.Context(), m, p)
	if err != nil {
		return err
	}
	status := nethttp.StatusOK
	if created {
		status = nethttp.StatusCreated
	}
	return writeTrade(w, status, t)
}

// handleFindTrades answers ?out_trade_no= with that trade, and otherwise
// lists the merchant's trades, newest first.
func (s *Server) handleFindTrades(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	q := r.URL.Query()
	if q.Has("out_trade_no") {
		t, err := s.svc.Trades.QueryByOutTradeNo(r.Context(), m, q.Get("out_trade_no"))
		if err != nil {
			return err
		}
		return writeTrade(w, nethttp.StatusOK, t)
	}
	limit := tradeListLimitDefault
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > trade.ListLimitMax || strconv.Itoa(n) != v {
			return invalidRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", trade.ListLimitMax))
		}
		limit = n
	}
	trades, more, err := s.svc.Trades.List(r.Context(), m, limit, q.Get("starting_after"))
	if err != nil {
		return err
	}
	resp := tradeListResponse{Data: make([]trade.View, len(trades)), HasMore: more}
	for i, t := range trades {
		resp.Data[i] = t.View()
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) handleGetTrade(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	t, err := s.svc.Trades.Query(r.Context(), m, r.PathValue("trade_no"))
	if err != nil {
		return err
	}
	return writeTrade(w, nethttp.StatusOK, t)
}

func (s *Server) handleCloseTrade(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	if err := decodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	t, err := s.svc.Trades.Close(r.Context(), m, r.PathValue("trade_no"))
	if err != nil {
		return err
	}
	return writeTrade(w, nethttp.StatusOK, t)
}

func (s *Server) handleCollect(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	var req collectRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	t, err := s.svc.Trades.Collect(r.Context(), m, r.PathValue("trade_no"), req.AuthCode)
	if err != nil {
		return err
	}
	return writeTrade(w, nethttp.StatusOK, t)
}

func (s *Server) handleShip(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	var req shipRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		return err
	}
	t, err := s.svc.Trades.Ship(r.Context(), m, r.PathValue("trade_no"),
		trade.ShipParams{LogisticsCompany: req.LogisticsCompany, TrackingNo: req.TrackingNo})
	if err != nil {
		return err
	}
	return writeTrade(w, nethttp.StatusOK, t)
}

// handleRefund answers 201 with a new refund, and 200 with the refund
// already made under the same out_request_no with the same amount.
func (s *Server) handleRefund(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	var req refundRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.RefundAmount, false, "refund_amount")
	if err != nil {
		return err
	}
	ref, created, err := s.svc.Trades.Refund(r.Context(), m, r.PathValue("trade_no"),
		trade.RefundParams{OutRequestNo: req.OutRequestNo, Amount: amount, Reason: req.Reason})
	if err != nil {
		return err
	}
	status := nethttp.StatusOK
	if created {
		status = nethttp.StatusCreated
	}
	writeJSON(w, status, ref.View())
	return nil
}

func (s *Server) handleGetRefund(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	ref, err := s.svc.Trades.RefundQuery(r.Context(), m, r.PathValue("trade_no"), r.PathValue("out_request_no"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, ref.View())
	return nil
}

// handleBill streams the day's CSV: ?type=trade (the default) or
// signcustomer. Everything that can be refused is refused before the first
// byte; a failure while streaming can no longer become an error response,
// so the connection is cut and the client sees a truncated body rather
// than a bill that looks complete.
func (s *Server) handleBill(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	return s.serveBill(w, r, m, r.URL.Query().Get("type"))
}

// serveBill streams merchant m's bill of type typ of ?date=.
func (s *Server) serveBill(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant, typ string) error {
	date := r.URL.Query().Get("date")
	bill, err := s.svc.Trades.NewBill(r.Context(), m, date, typ)
	if err != nil {
		return err
	}
	name := "bill"
	if bill.Type() != trade.BillTrade {
		name = "bill-" + bill.Type()
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s-%s.csv"`, name, m.MerchantID, date))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(nethttp.StatusOK)
	if err := bill.WriteCSV(r.Context(), w); err != nil {
		s.logger.Error("bill stream failed", slog.String("merchant_id", m.MerchantID), slog.Any("err", err))
		panic(nethttp.ErrAbortHandler)
	}
	return nil
}

func (s *Server) handlePay(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req payRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	t, err := s.svc.Checkout.Pay(r.Context(), u, r.PathValue("trade_no"),
		checkout.PayParams{Method: req.Method, CardID: req.CardID})
	if err != nil {
		return err
	}
	return writeTrade(w, nethttp.StatusOK, t)
}

func (s *Server) handleConfirm(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	if err := decodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	t, err := s.svc.Trades.Confirm(r.Context(), u, r.PathValue("trade_no"))
	if err != nil {
		return err
	}
	return writeTrade(w, nethttp.StatusOK, t)
}

func (s *Server) handleNewPayCode(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	if idempotency.Recovering(r.Context()) {
		// Each call makes a new code; the lost one expires by itself.
		return idempotency.AnswerLost()
	}
	if err := decodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	pc, err := s.svc.Trades.NewPayCode(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, payCodeResponse{AuthCode: pc.AuthCode,
		ExpiresAt: trade.FormatTime(pc.ExpiresAt), UserID: pc.UserID})
	return nil
}
