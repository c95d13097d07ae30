package http_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"zhifu"
)

// ledgerState is everything a bad request could have changed.
func ledgerState(t *testing.T, ts *testServer) string {
	t.Helper()
	var b strings.Builder
	for _, id := range []string{"1", "10", "20", "21"} {
		b.Write(ts.admin(t, "GET", "/v1/admin/ledger/accounts/"+id, nil, 200).body)
		b.Write(ts.admin(t, "GET", "/v1/admin/ledger/accounts/"+id+"/entries?limit=100", nil, 200).body)
	}
	for _, id := range []string{"555", "999"} {
		ts.admin(t, "GET", "/v1/admin/ledger/accounts/"+id, nil, 404)
	}
	b.Write(ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200).body)
	return b.String()
}

type badCase struct {
	name   string
	path   string // default: transfers
	body   any
	status int
	code   string // API error code, for 4xx
	param  string
	result string // the ledger's result for the first transfer, for 200
}

// badAmountCases are amounts API.md refuses with INVALID_AMOUNT.
func badAmountCases() []badCase {
	bad := func(name string, a any) badCase {
		return badCase{name: name, body: transfers(transfer("x", "10", "1", a)),
			status: 400, code: zhifu.InvalidAmount, param: "transfers[0].amount"}
	}
	return []badCase{
		bad("zero", "0"), bad("zero with decimals", "0.00"), bad("negative", "-1"), bad("exponent", "1e3"),
		bad("json number", 12.3), bad("json integer", 5), bad("json bool", true), bad("three decimals", "12.345"),
		bad("comma", "12,30"), bad("space", " 1"), bad("plus", "+1"), bad("over range", "100000000.01"),
		bad("empty string", ""), bad("missing", nil),
		{name: "second transfer bad", body: transfers(transfer("x", "10", "1", "1.00"), transfer("y", "10", "1", "-2")),
			status: 400, code: zhifu.InvalidAmount, param: "transfers[1].amount"},
	}
}

// badTransferCases are transfers the ledger refuses (200 with a result) or
// bodies the server refuses before submitting anything.
func badTransferCases() []badCase {
	result := func(name, want string, tr transferReq) badCase {
		return badCase{name: name, body: transfers(tr), status: 200, result: want}
	}
	invalid := func(name, param string, body any) badCase {
		return badCase{name: name, body: body, status: 400, code: zhifu.InvalidRequest, param: param}
	}
	usd := transfer("x", "21", "20", "1.00")
	usd.Currency = "CNY"
	mixed := transfer("x", "10", "20", "1.00")
	code0 := transfer("x", "10", "1", "1.00")
	code0.Code = 0
	withPending := transfer("x", "10", "1", "1.00")
	withPending.PendingID = "t0"
	return []badCase{
		result("same debit and credit", "accounts_must_be_different", transfer("x", "1", "1", "1.00")),
		result("unknown debit account", "debit_account_not_found", transfer("x", "999", "1", "1.00")),
		result("unknown credit account", "credit_account_not_found", transfer("x", "10", "999", "1.00")),
		result("currency differs from accounts", "transfer_must_have_the_same_ledger_as_accounts", usd),
		result("accounts in different currencies", "accounts_must_have_the_same_ledger", mixed),
		result("overdraft", "exceeds_credits", transfer("x", "1", "10", "50.01")),
		result("code zero", "code_must_not_be_zero", code0),
		result("pending id on plain transfer", "pending_id_must_be_empty", withPending),
		result("post unknown pending", "pending_transfer_not_found",
			transferReq{ID: "x", PendingID: "nope", Flags: []string{"post_pending"}}),
		result("pending and post", "flags_are_mutually_exclusive",
			transferReq{ID: "x", PendingID: "t0", Flags: []string{"pending", "post_pending"}}),
		result("open chain", "linked_event_chain_open", transfer("x", "10", "1", "1.00", "linked")),
		result("id too long", "id_too_long", transfer(strings.Repeat("x", 65), "10", "1", "1.00")),
		result("empty id", "id_must_not_be_empty", transfer("", "10", "1", "1.00")),
		result("same id, other amount", "exists_with_different_amount", transfer("t0", "10", "1", "1.00")),
		invalid("unsupported currency", "transfers[0].currency",
			transfers(transferReq{ID: "x", DebitAccountID: "10", CreditAccountID: "1", Amount: "1.00", Code: 1, Currency: "XYZ"})),
		invalid("unknown flag", "transfers[0].flags", transfers(transfer("x", "10", "1", "1.00", "instant"))),
		invalid("account id word", "transfers[0].debit_account_id", transfers(transfer("x", "abc", "1", "1.00"))),
		invalid("account id zero", "transfers[0].debit_account_id", transfers(transfer("x", "0", "1", "1.00"))),
		invalid("account id negative", "transfers[0].credit_account_id", transfers(transfer("x", "10", "-1", "1.00"))),
		invalid("account id leading zero", "transfers[0].credit_account_id", transfers(transfer("x", "10", "01", "1.00"))),
		invalid("account id over int64", "transfers[0].debit_account_id", transfers(transfer("x", "9223372036854775808", "1", "1.00"))),
		invalid("account id as number", "transfers.debit_account_id",
			`{"transfers":[{"id":"x","debit_account_id":10,"credit_account_id":"1","amount":"1.00","code":1}]}`),
		invalid("code over uint16", "transfers.code",
			`{"transfers":[{"id":"x","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":70000}]}`),
		invalid("malformed JSON", "", `{"transfers":[`),
		invalid("not JSON", "", `hello`),
		invalid("unknown field", "memo",
			`{"transfers":[{"id":"x","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1,"memo":"hi"}]}`),
		invalid("unknown top-level field", "dry_run", `{"dry_run":true,"transfers":[]}`),
		invalid("trailing object", "",
			`{"transfers":[{"id":"x","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]} {}`),
		invalid("trailing garbage", "",
			`{"transfers":[{"id":"x","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]}x`),
		invalid("empty body", "", ``),
		invalid("array body", "", `[]`),
		invalid("no transfers", "transfers", `{"transfers":[]}`),
		invalid("too many transfers", "transfers", transfers(manyTransfers(1025)...)),
		{name: "2 MiB body", body: `{"transfers":[{"id":"` + strings.Repeat("a", 2<<20) + `"}]}`,
			status: 413, code: zhifu.RequestTooLarge},
		{name: "2 MiB after the object", body: `{"transfers":[{"id":"x","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]}` + strings.Repeat(" ", 2<<20),
			status: 413, code: zhifu.RequestTooLarge},
	}
}

func manyTransfers(n int) []transferReq {
	out := make([]transferReq, n)
	for i := range out {
		out[i] = transfer(fmt.Sprint("m", i), "10", "1", "0.01")
	}
	return out
}

func badAccountCases() []badCase {
	const path = "/v1/admin/ledger/accounts"
	accounts := func(as ...accountReq) map[string]any { return map[string]any{"accounts": as} }
	invalid := func(name, param string, body any) badCase {
		return badCase{name: name, path: path, body: body, status: 400, code: zhifu.InvalidRequest, param: param}
	}
	result := func(name, want string, a accountReq) badCase {
		return badCase{name: name, path: path, body: accounts(a), status: 200, result: want}
	}
	many := make([]accountReq, 1025)
	for i := range many {
		many[i] = account(fmt.Sprint(1000+i), "CNY", 1)
	}
	return []badCase{
		invalid("account id word", "accounts[0].id", accounts(account("abc", "CNY", 1))),
		invalid("account id empty", "accounts[0].id", accounts(account("", "CNY", 1))),
		invalid("account id zero", "accounts[0].id", accounts(account("0", "CNY", 1))),
		invalid("unknown account flag", "accounts[0].flags", accounts(account("555", "CNY", 1, "frozen"))),
		invalid("unsupported currency", "accounts[0].currency", accounts(account("555", "XYZ", 1))),
		invalid("second account bad", "accounts[1].id", accounts(account("555", "CNY", 1), account("x", "CNY", 1))),
		invalid("no accounts", "accounts", accounts()),
		invalid("too many accounts", "accounts", accounts(many...)),
		result("code zero", "code_must_not_be_zero", account("555", "CNY", 0)),
		result("both balance flags", "flags_are_mutually_exclusive",
			account("555", "CNY", 1, "debits_must_not_exceed_credits", "credits_must_not_exceed_debits")),
		result("exists with other code", "exists_with_different_code", account("1", "CNY", 2, "debits_must_not_exceed_credits")),
		result("exists with other currency", "exists_with_different_ledger", account("1", "USD", 1, "debits_must_not_exceed_credits")),
		{name: "2 MiB body", path: path, body: append([]byte(`{"accounts":[{"id":"`), bytes.Repeat([]byte("1"), 2<<20)...), status: 413, code: zhifu.RequestTooLarge},
	}
}

// TestBadInputChangesNothing sends every kind of bad request and checks
// that each is refused the right way and that the ledger is as before.
func TestBadInputChangesNothing(t *testing.T) {
	ts := newTestServer(t)
	wantResults(t, createAccounts(t, ts,
		account("1", "CNY", zhifu.AccountWallet, "debits_must_not_exceed_credits"),
		account("10", "CNY", zhifu.AccountBankSettlement),
		account("20", "USD", zhifu.AccountWallet),
		account("21", "USD", zhifu.AccountBankSettlement),
	), "ok", "ok", "ok", "ok")
	usd := transfer("u0", "21", "20", "5.00")
	usd.Currency = "USD"
	wantResults(t, postTransfers(t, ts, transfer("t0", "10", "1", "50.00"), usd), "ok", "ok")
	before := ledgerState(t, ts)

	cases := append(append(badAmountCases(), badTransferCases()...), badAccountCases()...)
	for _, c := range cases {
		path := c.path
		if path == "" {
			path = "/v1/admin/ledger/transfers"
		}
		t.Run(strings.TrimPrefix(path, "/v1/admin/ledger/")+"/"+c.name, func(t *testing.T) {
			resp := ts.do(t, "POST", path, testToken, c.body)
			if c.status != 200 {
				wantError(t, resp, c.status, c.code, c.param)
				return
			}
			if resp.status != 200 {
				t.Fatalf("status %d, want 200; body %s", resp.status, resp.body)
			}
			if got := resultNames(t, resp.body); len(got) != 1 || got[0] != c.result {
				t.Errorf("results = %v, want [%s]", got, c.result)
			}
		})
	}

	if after := ledgerState(t, ts); after != before {
		t.Errorf("bad requests changed the ledger:\nbefore %s\nafter  %s", before, after)
	}
	check := decode[checkResp](t, ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200).body)
	if !check.OK || check.TotalDebits != "50.00" {
		t.Errorf("check after bad input = %+v", check)
	}
}
