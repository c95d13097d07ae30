package http_test

import (
	"io"
	nethttp "net/http"
	"strings"
	"testing"

	"zhifu"
)

// onlyReader hides a reader's length, so the client streams the body
// without a Content-Length.
type onlyReader struct{ io.Reader }

// TestStrictInput sends bodies that a lenient reader would accept and a
// payment platform must not: too large whatever they hold, duplicated
// keys, the wrong content type, text that is not UTF-8. Each is refused,
// and the ledger is as before.
func TestStrictInput(t *testing.T) {
	ts := newTestServer(t)
	wantResults(t, createAccounts(t, ts,
		account("1", "CNY", zhifu.AccountWallet, "debits_must_not_exceed_credits"),
		account("10", "CNY", zhifu.AccountBankSettlement),
	), "ok", "ok")
	const path = "/v1/admin/ledger/transfers"
	before := ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200).body
	json := nethttp.Header{"Content-Type": {"application/json"}}
	ok := `{"transfers":[{"id":"t1","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]}`
	cases := []struct {
		name   string
		header nethttp.Header
		body   any
		status int
		code   string
		param  string
	}{
		{"8 MB that is not JSON, declared", json, strings.Repeat("x", 8<<20), 413, zhifu.RequestTooLarge, ""},
		{"8 MB that is not JSON, streamed", json, onlyReader{strings.NewReader(strings.Repeat("x", 8<<20))}, 413, zhifu.RequestTooLarge, ""},
		{"duplicated key", json, `{"transfers":[{"id":"t1","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1,"amount":"2.00"}]}`,
			400, zhifu.InvalidRequest, "amount"},
		{"duplicated top-level key", json, `{"transfers":[],"transfers":[{"id":"t1"}]}`, 400, zhifu.InvalidRequest, "transfers"},
		{"duplicated key, escaped the second time", json, `{"transfers":[{"id":"t1","i\u0064":"t2"}]}`, 400, zhifu.InvalidRequest, "id"},
		{"text/plain", nethttp.Header{"Content-Type": {"text/plain"}}, ok, 400, zhifu.InvalidRequest, "Content-Type"},
		{"form-encoded", nethttp.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ok, 400, zhifu.InvalidRequest, "Content-Type"},
		{"no content type", nethttp.Header{}, ok, 400, zhifu.InvalidRequest, "Content-Type"},
		{"another charset", nethttp.Header{"Content-Type": {"application/json; charset=gbk"}}, ok, 400, zhifu.InvalidRequest, "Content-Type"},
		{"invalid UTF-8", json, "{\"transfers\":[{\"id\":\"t\xff1\",\"debit_account_id\":\"10\",\"credit_account_id\":\"1\",\"amount\":\"1.00\",\"code\":1}]}",
			400, zhifu.InvalidRequest, ""},
		{"lone surrogate", json, `{"transfers":[{"id":"t\ud8001","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]}`,
			400, zhifu.InvalidRequest, ""},
		{"reversed surrogates", json, `{"transfers":[{"id":"t\udc00\ud8001","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]}`,
			400, zhifu.InvalidRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, ts.doWith(t, "POST", path, testToken, c.header, c.body), c.status, c.code, c.param)
		})
	}
	if after := ts.admin(t, "GET", "/v1/admin/ledger/check", nil, 200).body; string(after) != string(before) {
		t.Errorf("refused requests changed the ledger:\nbefore %s\nafter  %s", before, after)
	}
	// What a strict reader accepts: the charset named, in any case, and an
	// escaped surrogate pair.
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON;charset=UTF-8"} {
		resp := ts.doWith(t, "POST", path, testToken, nethttp.Header{"Content-Type": {ct}},
			`{"transfers":[{"id":"t\ud83d\ude00`+ct[len(ct)-1:]+`","debit_account_id":"10","credit_account_id":"1","amount":"1.00","code":1}]}`)
		if resp.status != 200 {
			t.Errorf("%s: %d %s", ct, resp.status, resp.body)
		}
	}
}
