package http

import nethttp "net/http"

// tradeRoutes registers trades, refunds, payment codes and bills.
func (s *Server) tradeRoutes(mux *nethttp.ServeMux) {}
