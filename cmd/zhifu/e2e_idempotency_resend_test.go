package main

import (
	"net/http"
	"testing"
)

// TestSignedRequestResentWithItsKey sends one signed, keyed merchant request
// twice with the very same headers, as an HTTP client does by itself when a
// connection breaks after the request went out (Go's transport resends
// requests that carry an Idempotency-Key). The second is answered from the
// key, not refused as a replayed nonce; the same signature with another key
// is a replay, refused.
func TestSignedRequestResentWithItsKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		body := `{"out_trade_no":"resend-1","subject":"s","total_amount":"1.00","mode":"instant"}`
		h := http.Header{"Authorization": {signMerchant(w.mk, "POST", "/v1/trades", body, e.clock.Now(), newNonce())},
			"Idempotency-Key": {"resend-key-1"}}
		st1, _, b1 := e.request("POST", "/v1/trades", h, body)
		st2, h2, b2 := e.request("POST", "/v1/trades", h, body)
		if st1 != 201 || st2 != 201 || string(b1) != string(b2) || h2.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("first %d %s; resent %d %s (replayed %q)", st1, b1, st2, b2, h2.Get("Idempotent-Replayed"))
		}
		h.Set("Idempotency-Key", "resend-key-2")
		if st, _, b := e.request("POST", "/v1/trades", h, body); st != 401 {
			t.Fatalf("the same signature under another key: %d %s, want 401", st, b)
		}
	})
}
