package http

import (
	"bytes"
	"fmt"
	nethttp "net/http"

	"zhifu"
	"zhifu/report"
)

// reportRoutes registers the operators' reports, read from the store the
// server runs on.
func (s *Server) reportRoutes(mux *nethttp.ServeMux) {
	reports := report.New(s.store, s.clock)
	s.handleFunc(mux, "GET /v1/admin/reports/banks", s.admin(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		return s.handleBanksReport(w, r, reports)
	}))
}

// handleBanksReport answers the banks' monthly report as JSON (the
// default), CSV or an HTML page. The report is small (a few lines per
// bank), so it is built whole before the first byte: a failure is still an
// error response.
func (s *Server) handleBanksReport(w nethttp.ResponseWriter, r *nethttp.Request, reports *report.Service) error {
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" && format != "html" {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "format", Message: "format must be json, csv or html"}
	}
	month := q.Get("month")
	m, err := reports.Banks(r.Context(), month)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	h := w.Header()
	switch format {
	case "csv":
		err = m.WriteCSV(&b)
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="banks-%s.csv"`, month))
	case "html":
		err = m.WriteHTML(&b)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", report.CSP)
		h.Set("Referrer-Policy", "no-referrer")
	default:
		err = m.WriteJSON(&b)
		h.Set("Content-Type", "application/json")
	}
	if err != nil {
		return fmt.Errorf("banks report: %w", err)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(nethttp.StatusOK)
	w.Write(b.Bytes())
	return nil
}
