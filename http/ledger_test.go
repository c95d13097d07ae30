package http_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"zhifu"
)

type accountReq struct {
	ID       string   `json:"id"`
	Currency string   `json:"currency,omitempty"`
	Code     uint16   `json:"code"`
	Flags    []string `json:"flags,omitempty"`
}

type transferReq struct {
	ID              string   `json:"id"`
	DebitAccountID  string   `json:"debit_account_id,omitempty"`
	CreditAccountID string   `json:"credit_account_id,omitempty"`
	Amount          any      `json:"amount,omitempty"`
	Currency        string   `json:"currency,omitempty"`
	Code            uint16   `json:"code,omitempty"`
	Flags           []string `json:"flags,omitempty"`
	PendingID       string   `json:"pending_id,omitempty"`
	UserData        string   `json:"user_data,omitempty"`
}

type results struct {
	Results []struct{ ID, Result string }
}

type accountResp struct {
	ID             string   `json:"id"`
	Currency       string   `json:"currency"`
	Code           uint16   `json:"code"`
	Flags          []string `json:"flags"`
	DebitsPending  string   `json:"debits_pending"`
	DebitsPosted   string   `json:"debits_posted"`
	CreditsPending string   `json:"credits_pending"`
	CreditsPosted  string   `json:"credits_posted"`
	Balance        string   `json:"balance"`
}

type entriesResp struct {
	Data []struct {
		Seq        string   `json:"seq"`
		TransferID string   `json:"transfer_id"`
		Amount     string   `json:"amount"`
		Balance    string   `json:"balance"`
		Flags      []string `json:"flags"`
		PendingID  *string  `json:"pending_id"`
		Code       uint16   `json:"code"`
		CreatedAt  string   `json:"created_at"`
	} `json:"data"`
	HasMore bool `json:"has_more"`
}

type checkResp struct {
	OK           bool   `json:"ok"`
	TotalDebits  string `json:"total_debits"`
	TotalCredits string `json:"total_credits"`
	Custody      struct {
		CustomerFunds string `json:"customer_funds"`
		BankFunds     string `json:"bank_funds"`
		OK            bool   `json:"ok"`
	} `json:"custody"`
	Violations []string `json:"violations"`
}

func account(id, currency string, code uint16, flags ...string) accountReq {
	return accountReq{ID: id, Currency: currency, Code: code, Flags: flags}
}

func transfer(id, debit, credit string, amount any, flags ...string) transferReq {
	return transferReq{ID: id, DebitAccountID: debit, CreditAccountID: credit, Amount: amount, Code: 1, Flags: flags}
}

func transfers(ts ...transferReq) map[string]any { return map[string]any{"transfers": ts} }

func createAccounts(t *testing.T, ts *testServer, as ...accountReq) []string {
	t.Helper()
	resp := ts.admin(t, "POST", "/v1/admin/ledger/accounts", map[string]any{"accounts": as}, 200)
	return resultNames(t, resp.body)
}

func postTransfers(t *testing.T, ts *testServer, trs ...transferReq) []string {
	t.Helper()
	resp := ts.admin(t, "POST", "/v1/admin/ledger/transfers", transfers(trs...), 200)
	return resultNames(t, resp.body)
}

func resultNames(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for _, r := range decode[results](t, body).Results {
		out = append(out, r.Result)
	}
	return out
}

func wantResults(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("results = %v, want %v", got, want)
	}
}

func getAccount(t *testing.T, ts *testServer, id string) accountResp {
	t.Helper()
	return decode[accountResp](t, ts.admin(t, "GET", "/v1/admin/ledger/accounts/"+id, nil, 200).body)
}

func TestLedgerFlow(t *testing.T) {
	ts := newTestServer(t)
	wallet := account("1", "CNY", zhifu.AccountWallet, "debits_must_not_exceed_credits")
	bank := account("10", "", zhifu.AccountBankSettlement) // currency defaults to CNY
	wantResults(t, createAccounts(t, ts, wallet, bank), "ok", "ok")
	wantResults(t, createAccounts(t, ts, wallet, account("10", "CNY", zhifu.AccountFrozen)),
		"exists", "exists_with_different_code")

	wantResults(t, postTransfers(t, ts,
		transfer("t1", "10", "1", "100.00"),
		transfer("t2", "1", "10", "30.5"),
		transfer("t3", "1", "10", "100.00"),
		transfer("t1", "10", "1", "100.00"),
	), "ok", "ok", "exceeds_credits", "exists")
	// Two-phase: a full post with the amount omitted, a void with "0.00".
	wantResults(t, postTransfers(t, ts,
		transfer("p1", "1", "10", "20.00", "pending"),
		transferReq{ID: "p1-post", PendingID: "p1", Flags: []string{"post_pending"}},
		transfer("p2", "1", "10", "5.00", "pending"),
	), "ok", "ok", "ok")
	if a := getAccount(t, ts, "1"); a.DebitsPending != "5.00" || a.Balance != "49.50" {
		t.Errorf("wallet with p2 pending = %+v, want 5.00 pending, 49.50 balance", a)
	}
	wantResults(t, postTransfers(t, ts,
		transferReq{ID: "v2", PendingID: "p2", Amount: "0.00", Flags: []string{"void_pending"}},
		transfer("l1", "10", "1", "1.00", "linked"),
		transfer("l2", "1", "10", "1000.00"),
	), "ok", "linked_event_failed", "exceeds_credits")

	got := getAccount(t, ts, "1")
	want := accountResp{ID: "1", Currency: "CNY", Code: 1, Flags: []string{"debits_must_not_exceed_credits"},
		DebitsPending: "0.00", DebitsPosted: "50.50", CreditsPending: "0.00", CreditsPosted: "100.00", Balance: "49.50"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("wallet = %+v, want %+v", got, want)
	}
	if got := getAccount(t, ts, "10"); got.Balance != "-49.50" || len(got.Flags) != 0 || got.Flags == nil {
		t.Errorf("bank = %+v, want balance -49.50 and flags []", got)
	}
	for _, id := range []string{"999", "abc", "0", "01"} {
		wantError(t, ts.admin(t, "GET", "/v1/admin/ledger/accounts/"+id, nil, 404), 404, zhifu.NotFound, "id")
	}

	testEntries(t, ts)

	check := decode[checkResp](t, ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200).body)
	if !check.OK || check.TotalDebits != "150.50" || check.TotalCredits != "150.50" || len(check.Violations) != 0 ||
		check.Custody.CustomerFunds != "49.50" || check.Custody.BankFunds != "49.50" || !check.Custody.OK {
		t.Errorf("check = %+v", check)
	}
}

// testEntries walks the wallet's history written by TestLedgerFlow, newest
// first, in pages.
func testEntries(t *testing.T, ts *testServer) {
	type line struct{ id, amount, balance, flags string }
	want := []line{
		{"v2", "0.00", "49.50", "void_pending"},
		{"p2", "0.00", "49.50", "pending"},
		{"p1-post", "-20.00", "49.50", "post_pending"},
		{"p1", "0.00", "69.50", "pending"},
		{"t2", "-30.50", "69.50", ""},
		{"t1", "100.00", "100.00", ""},
	}
	var got []line
	after := ""
	for page := 0; ; page++ {
		path := "/v1/admin/ledger/accounts/1/entries?limit=4"
		if after != "" {
			path += "&starting_after=" + after
		}
		resp := decode[entriesResp](t, ts.admin(t, "GET", path, nil, 200).body)
		for _, e := range resp.Data {
			got = append(got, line{e.TransferID, e.Amount, e.Balance, strings.Join(e.Flags, "+")})
			if _, err := time.Parse(time.RFC3339, e.CreatedAt); err != nil || !strings.HasSuffix(e.CreatedAt, "Z") {
				t.Errorf("created_at %q is not RFC 3339 UTC", e.CreatedAt)
			}
			if (e.PendingID != nil) != (e.TransferID == "p1-post" || e.TransferID == "v2") {
				t.Errorf("entry %s: pending_id = %v", e.TransferID, e.PendingID)
			}
			after = e.Seq
		}
		if wantMore := page == 0; resp.HasMore != wantMore {
			t.Errorf("page %d: has_more = %v, want %v", page, resp.HasMore, wantMore)
		}
		if !resp.HasMore || page > 2 {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("entries:\n got %v\nwant %v", got, want)
	}
	resp := decode[entriesResp](t, ts.admin(t, "GET", "/v1/admin/ledger/accounts/1/entries", nil, 200).body)
	if len(resp.Data) != len(want) || resp.HasMore {
		t.Errorf("default page: %d entries, has_more %v", len(resp.Data), resp.HasMore)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=abc", "limit=-1", "starting_after=x"} {
		param, _, _ := strings.Cut(q, "=")
		resp := ts.admin(t, "GET", "/v1/admin/ledger/accounts/1/entries?"+q, nil, 400)
		wantError(t, resp, 400, zhifu.InvalidRequest, param)
	}
	wantError(t, ts.admin(t, "GET", "/v1/admin/ledger/accounts/999/entries", nil, 404), 404, zhifu.NotFound, "id")
}

// TestCheckCustody: customer money that no bank holds fails the audit even
// though the ledger itself balances.
func TestCheckCustody(t *testing.T) {
	ts := newTestServer(t)
	createAccounts(t, ts, account("1", "CNY", zhifu.AccountWallet), account("31", "CNY", zhifu.AccountOwnFunds),
		account("10", "CNY", zhifu.AccountBankSettlement), account("11", "CNY", zhifu.AccountBankInTransit))
	postTransfers(t, ts, transfer("gift", "31", "1", "10.00"), transfer("dep", "10", "31", "4.00"),
		transfer("card", "11", "31", "1.00"))
	check := decode[checkResp](t, ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200).body)
	if check.OK || check.Custody.OK || check.Custody.CustomerFunds != "10.00" || check.Custody.BankFunds != "5.00" {
		t.Errorf("check = %+v, want custody 10.00 customer, 5.00 bank, not ok", check)
	}
	if len(check.Violations) != 1 || !strings.Contains(check.Violations[0], "custody") {
		t.Errorf("violations = %q, want one about custody", check.Violations)
	}
}
