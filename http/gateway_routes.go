package http

import (
	"log/slog"
	nethttp "net/http"

	"zhifu"
	"zhifu/gateway"
)

// gatewayPath is the Alipay-compatible gateway's one endpoint.
const gatewayPath = "/gateway.do"

// gatewayRoutes registers the Alipay-compatible gateway, the signed bill
// download links it hands out, and the cashier page its QR codes open.
func (s *Server) gatewayRoutes(mux *nethttp.ServeMux) {
	s.handleFunc(mux, "GET "+gatewayPath, s.handleGateway)
	s.handleFunc(mux, "POST "+gatewayPath, s.handleGateway)
	s.handleFunc(mux, "GET /v1/bills/download", s.api(s.handleBillDownload))
	s.handleFunc(mux, "GET /cashier/{trade_no}", s.handleCashier)
	s.handleFunc(mux, "POST /cashier/{trade_no}", s.handleCashierPay)
	s.handleFunc(mux, "POST /v1/admin/gateway/keys/rotate", s.admin(once(s.handleRotateKeys)))
}

// handleRotateKeys retires the platform's gateway key pair and makes a new
// one. Merchants must then configure the new public key.
func (s *Server) handleRotateKeys(w nethttp.ResponseWriter, r *nethttp.Request) error {
	keys := s.svc.Gateway.Keys()
	if err := keys.Rotate(r.Context()); err != nil {
		return err
	}
	s.logger.Info("gateway key rotated", slog.String("key_id", keys.KeyID()))
	writeJSON(w, nethttp.StatusOK, map[string]string{"key_id": keys.KeyID(), "alipay_public_key": keys.PublicKey()})
	return nil
}

// handleGateway answers in Alipay's format even for a malformed request:
// Alipay SDKs read only that format. Parameters come from the query string
// and, on POST, the form body, as Alipay's gateway takes them.
func (s *Server) handleGateway(w nethttp.ResponseWriter, r *nethttp.Request) {
	r.Body = nethttp.MaxBytesReader(w, r.Body, gateway.BodyBytesMax)
	body := s.svc.Gateway.Handle(r.Context(), gateway.ReadRequest(r))
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Write(body)
}

// handleBillDownload serves a bill through a link from
// alipay.data.dataservice.bill.downloadurl.query: the link's signature is
// the credential, as Alipay's download links are.
func (s *Server) handleBillDownload(w nethttp.ResponseWriter, r *nethttp.Request) error {
	merchantID, date, billType, ok := s.svc.Gateway.CheckBillLink(r.URL.Query())
	if !ok {
		return zhifu.Errorf(zhifu.Unauthorized, "the download link is invalid or has expired")
	}
	m, err := s.svc.Identity.MerchantByID(r.Context(), merchantID)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("date") != date {
		return zhifu.Errorf(zhifu.Unauthorized, "the download link is invalid or has expired")
	}
	return s.serveBill(w, r, m, billType)
}
