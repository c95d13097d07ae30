package http

import nethttp "net/http"

// walletRoutes registers wallets, deposits, transfers and statements.
func (s *Server) walletRoutes(mux *nethttp.ServeMux) {}
