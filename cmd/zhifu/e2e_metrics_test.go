package main

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// metric reads one unlabelled metric from /metrics.
func (e *env) metric(t *testing.T, name string) float64 {
	t.Helper()
	status, _, b := e.request("GET", "/metrics", nil, "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestLedgerMetricCountsEveryTransfer moves money through services, not
// the ledger API (a deposit, a user transfer, a trade paid and refunded),
// and wants the transfers counted.
func TestLedgerMetricCountsEveryTransfer(t *testing.T) {
	e := newEnv(t, "sqlite")
	before := e.metric(t, "zhifu_ledger_transfers_total")
	w := newTrWorld(t, e)
	buyer, other := w.user("mbuyer"), w.user("mother")
	w.fund(buyer, "100.00") // 1 transfer
	var tr map[string]any
	if s := e.bearer(buyer.token, "POST", "/v1/transfers", map[string]any{"to_user_id": other.id, "amount": "1.00"}, &tr); s != 201 {
		t.Fatalf("transfer: %d %v", s, tr) // 2
	}
	tradeNo := w.mustCreate(map[string]any{"subject": "m", "total_amount": "10.00", "mode": "instant"})
	if s, b := w.pay(buyer, tradeNo); s != 200 {
		t.Fatalf("pay: %d %v", s, b) // 3
	}
	if s, b := w.move(tradeNo, "refunds", map[string]any{"out_request_no": "r1", "refund_amount": "2.00"}); s != 200 && s != 201 {
		t.Fatalf("refund: %d %v", s, b) // 4
	}
	if got := e.metric(t, "zhifu_ledger_transfers_total") - before; got < 4 {
		t.Fatalf("zhifu_ledger_transfers_total grew by %v for a deposit, a transfer, a payment and a refund; want at least 4", got)
	}
}
