package main

import (
	"testing"
	"time"

	"zhifu/banksim"
)

// A top-up the bank took and never answered, whose bank then goes down
// before inquiry or its statement can decide it: past its deadline it is
// listed for an operator (GET /v1/admin/channels/overdue), still
// PROCESSING for the user, the wallet not credited; when the bank is back
// its statement decides it and the list empties.
func TestChannelOverdue(t *testing.T) {
	e := newChannelEnv(t, "sqlite", chOptions{})
	u := e.newUsers(t, "late", 1, []string{"CMB"}, "")[0]
	if err := e.banks.SetScenario("CMB", banksim.Scenario{TimeoutRate: 1, TimeoutHoldMs: 50, CallbackLossRate: 1}); err != nil {
		t.Fatal(err)
	}
	var tu map[string]any
	if s := e.bearer(u.token, "POST", "/v1/topups", map[string]string{"amount": "800.00", "card_id": u.cards["CMB"]}, &tu); s != 201 {
		t.Fatalf("top-up: %d %v", s, tu)
	}
	id, _ := tu["topup_id"].(string)
	e.waitQuiet(5 * time.Second)
	if err := e.banks.SetScenario("CMB", banksim.Scenario{Outage: banksim.OutageReject}); err != nil {
		t.Fatal(err)
	}

	type overdue struct {
		Data []struct {
			TxnID                             string `json:"txn_id"`
			Kind, Bank, Amount, Status, Stage string
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	var list overdue
	if s := e.admin("GET", "/v1/admin/channels/overdue", nil, &list); s != 200 || len(list.Data) != 0 {
		t.Fatalf("overdue before the deadline: %d %+v", s, list)
	}
	// Past the 15-minute deadline, the statement cannot be had.
	for range 20 {
		e.clock.Advance(time.Minute)
		e.waitQuiet(5 * time.Second)
	}
	if s := e.admin("GET", "/v1/admin/channels/overdue?limit=10", nil, &list); s != 200 || len(list.Data) != 1 ||
		list.Data[0].TxnID != id || list.Data[0].Kind != "topup" || list.Data[0].Bank != "CMB" ||
		list.Data[0].Amount != "800.00" || list.Data[0].Status != "PROCESSING" || list.HasMore {
		t.Fatalf("overdue past the deadline: %d %+v", s, list)
	}
	var got map[string]any
	if s := e.bearer(u.token, "GET", "/v1/topups/"+id, nil, &got); s != 200 || got["status"] != "PROCESSING" {
		t.Fatalf("the user's view: %d %v", s, got)
	}
	var w map[string]any
	if s := e.bearer(u.token, "GET", "/v1/wallet", nil, &w); s != 200 || w["available"] != "0.00" {
		t.Fatalf("wallet while undecided: %d %v", s, w)
	}
	for _, bad := range []string{"0", "501", "x", "-1"} {
		var out map[string]any
		if s := e.admin("GET", "/v1/admin/channels/overdue?limit="+bad, nil, &out); s != 400 {
			t.Errorf("limit=%s: %d %v", bad, s, out)
		}
	}
	if s := e.bearer(u.token, "GET", "/v1/admin/channels/overdue", nil, &got); s != 401 {
		t.Errorf("a user token on the operators' list: %d", s)
	}

	// The bank is back: its statement decides.
	if err := e.banks.SetScenario("CMB", banksim.Scenario{}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, time.Minute, 30*time.Minute)
	if s := e.admin("GET", "/v1/admin/channels/overdue", nil, &list); s != 200 || len(list.Data) != 0 {
		t.Fatalf("overdue after the statement: %d %+v", s, list)
	}
	if s := e.bearer(u.token, "GET", "/v1/wallet", nil, &w); s != 200 || w["available"] != "800.00" {
		t.Fatalf("wallet after the statement: %d %v", s, w)
	}
}
