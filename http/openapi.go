package http

import (
	_ "embed"
	nethttp "net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of the whole public API
// (API.md, with zhifu's choices and extensions written into it). It is built
// into the binary, so the document a server serves is the one that was
// reviewed with its code; openapi_test.go checks that it lists exactly the
// routes the server registers.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the document. It needs no authentication: it
// describes the API, and holds nothing secret.
func (s *Server) handleOpenAPI(w nethttp.ResponseWriter, r *nethttp.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(openAPIDocument)
}
