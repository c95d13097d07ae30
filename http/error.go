package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	nethttp "net/http"

	"zhifu"
	"zhifu/ledger"
)

// Limits on what a request may send.
const (
	// bodyBytesMax bounds every request body (API.md: over 1 MiB is 413).
	bodyBytesMax = 1 << 20
	// retryAfterSeconds is what every 429 and 503 tells the client to wait.
	retryAfterSeconds = "1"
)

// statusOfCode is the one table from API error codes to HTTP status. Every
// code in zhifu/error.go has a row; a code missing here is answered as 500
// and caught by TestStatusOfEveryCode.
var statusOfCode = map[string]int{
	zhifu.InvalidRequest:        nethttp.StatusBadRequest,
	zhifu.InvalidAmount:         nethttp.StatusBadRequest,
	zhifu.BuyerBalanceNotEnough: nethttp.StatusBadRequest,
	zhifu.BalanceNotEnough:      nethttp.StatusBadRequest,
	zhifu.RefundAmountExceeded:  nethttp.StatusBadRequest,
	zhifu.LimitExceeded:         nethttp.StatusBadRequest,
	zhifu.LedgerRejected:        nethttp.StatusBadRequest,
	zhifu.Unauthorized:          nethttp.StatusUnauthorized,
	zhifu.InvalidSignature:      nethttp.StatusUnauthorized,
	zhifu.Forbidden:             nethttp.StatusForbidden,
	zhifu.NotFound:              nethttp.StatusNotFound,
	zhifu.CardNotFound:          nethttp.StatusNotFound,
	zhifu.ContextInconsistent:   nethttp.StatusConflict,
	zhifu.IdempotencyKeyInUse:   nethttp.StatusConflict,
	zhifu.TradeHasSuccess:       nethttp.StatusConflict,
	zhifu.TradeHasClose:         nethttp.StatusConflict,
	zhifu.TradeStatusError:      nethttp.StatusConflict,
	zhifu.RequestTooLarge:       nethttp.StatusRequestEntityTooLarge,
	zhifu.IdempotencyKeyReused:  nethttp.StatusUnprocessableEntity,
	zhifu.RateLimited:           nethttp.StatusTooManyRequests,
	zhifu.SystemError:           nethttp.StatusInternalServerError,
	zhifu.SystemBusy:            nethttp.StatusServiceUnavailable,
	zhifu.Maintenance:           nethttp.StatusServiceUnavailable,
	zhifu.ChannelUnavailable:    nethttp.StatusServiceUnavailable,
}

// StatusOf returns the HTTP status of an API error code; unknown codes are
// 500, because an error we cannot classify has an unknown outcome.
func StatusOf(code string) int {
	if s, ok := statusOfCode[code]; ok {
		return s
	}
	return nethttp.StatusInternalServerError
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param"` // "" when no one parameter is at fault
}

// writeError is the one place an error becomes a response. A *zhifu.Error is
// shown as it is; a few known infrastructure errors become their API codes;
// anything else is a 500 whose detail goes to the log, never to the client.
func (s *Server) writeError(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	e := s.apiError(r, err)
	status := StatusOf(e.Code)
	if status == nethttp.StatusTooManyRequests || status == nethttp.StatusServiceUnavailable {
		retry := retryAfterSeconds
		var rf *refusal
		if errors.As(err, &rf) {
			retry = retryAfterOf(rf.retry)
		}
		w.Header().Set("Retry-After", retry)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.code = e.Code // the limiter counts the request dropped if SYSTEM_BUSY
	}
	if status == nethttp.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="zhifu"`)
	}
	writeJSON(w, status, errorBody{Error: errorJSON{Code: e.Code, Message: e.Message, Param: e.Param}})
}

func (s *Server) apiError(r *nethttp.Request, err error) *zhifu.Error {
	var e *zhifu.Error
	var tooLarge *nethttp.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &tooLarge):
		return zhifu.Errorf(zhifu.RequestTooLarge, "request body is larger than %d bytes", bodyBytesMax)
	case errors.Is(err, ledger.ErrTooLarge):
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "transfers",
			Message: fmt.Sprintf("at most %d transfers per request", ledger.SubmissionTransfersMax)}
	case errors.Is(err, ledger.ErrBusy):
		return zhifu.Errorf(zhifu.SystemBusy, "the ledger is busy; retry shortly")
	case errors.Is(err, ledger.ErrClosed):
		// Nothing was submitted: the batcher refuses before queueing.
		return zhifu.Errorf(zhifu.SystemBusy, "the server is shutting down; retry shortly")
	}
	// The outcome is unknown (a timeout, a store failure): the client must
	// query before retrying, and the operator needs the detail.
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelWarn // the client went away; nobody reads the answer
	}
	s.logger.LogAttrs(r.Context(), level, "request failed",
		slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Any("err", err))
	return zhifu.Errorf(zhifu.SystemError, "internal error; the outcome is unknown, query before retrying")
}

// writeJSON writes v with status. An encoding failure after the header is
// sent cannot be reported to the client; it can only be a bug in our types.
func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func invalidRequest(param, msg string) *zhifu.Error {
	return &zhifu.Error{Code: zhifu.InvalidRequest, Message: msg, Param: param}
}
