package http

import (
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"zhifu/ledger"
)

// TestBusyIsRetryable covers the batcher's refusals, which a test cannot
// provoke cheaply through the API (the queue holds 65536 submissions).
func TestBusyIsRetryable(t *testing.T) {
	s := NewServer(Config{})
	for _, err := range []error{ledger.ErrBusy, ledger.ErrClosed, fmt.Errorf("submit transfers: %w", ledger.ErrBusy)} {
		t.Run(err.Error(), func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeError(w, httptest.NewRequest("POST", "/v1/admin/ledger/transfers", nil), err)
			if w.Code != nethttp.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503", w.Code)
			}
			if got := w.Header().Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After = %q, want 1", got)
			}
			if body := w.Body.String(); !strings.Contains(body, `"code":"SYSTEM_BUSY"`) {
				t.Errorf("body = %s, want code SYSTEM_BUSY", body)
			}
		})
	}
}
