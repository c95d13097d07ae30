package main

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestSignedChangeReplayed: a merchant's signed POST spends its nonce in the
// same transaction as the change it makes. The same request sent again, at
// once or alongside, is refused 401 and changes nothing; a request that
// changed nothing still spends its nonce.
func TestSignedChangeReplayed(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		w := newTrWorld(t, e)
		body := fmt.Sprintf(`{"out_trade_no":"replay%d","subject":"Tea","total_amount":"5.00","mode":"instant"}`, trSeq.Add(1))
		auth := signMerchant(w.mk, "POST", "/v1/trades", body, e.clock.Now(), newNonce())
		send := func() (int, map[string]any) {
			s, _, b := e.request("POST", "/v1/trades", http.Header{"Authorization": {auth}}, body)
			var out map[string]any
			decode(t, b, &out)
			return s, out
		}
		// Eight copies race: exactly one creates the trade.
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				s, out := send()
				mu.Lock()
				statuses[s]++
				mu.Unlock()
				if s != http.StatusCreated && errorCode(out) != "INVALID_SIGNATURE" {
					t.Errorf("copy answered %d %v", s, out)
				}
			})
		}
		wg.Wait()
		if statuses[http.StatusCreated] != 1 || statuses[http.StatusUnauthorized] != 7 {
			t.Fatalf("statuses %v, want one 201 and seven 401", statuses)
		}
		var list struct {
			Data []map[string]any `json:"data"`
		}
		if s := e.merchant(w.mk, "GET", "/v1/trades", nil, &list); s != 200 || len(list.Data) != 1 {
			t.Fatalf("trades after the race: %d %d", s, len(list.Data))
		}

		// A refused change (bad amount) spends its nonce too.
		bad := `{"out_trade_no":"x","subject":"Tea","total_amount":"5.001","mode":"instant"}`
		badAuth := signMerchant(w.mk, "POST", "/v1/trades", bad, e.clock.Now(), newNonce())
		for i, want := range []int{http.StatusBadRequest, http.StatusUnauthorized} {
			if s, _, b := e.request("POST", "/v1/trades", http.Header{"Authorization": {badAuth}}, bad); s != want {
				t.Fatalf("bad request, copy %d: %d %s, want %d", i, s, b, want)
			}
		}
	})
}
