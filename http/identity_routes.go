package http

import nethttp "net/http"

// identityRoutes registers users, sessions and merchants.
func (s *Server) identityRoutes(mux *nethttp.ServeMux) {}
