package main

import (
	"testing"

	"zhifu"
)

// TestOperators runs the operators' API over real HTTP on both stores:
// the bootstrap token creates an operator, who logs in and acts under
// their own id; a user's token is not an operator's; the audit log names
// who did what, including changes refused.
func TestOperators(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var op map[string]any
		if s := e.admin("POST", "/v1/admin/operators", map[string]any{"login": "wang.fang", "password": "a long passphrase",
			"name": "Wang Fang"}, &op); s != 201 || op["operator_id"] != "OP00000001" || op["created_by"] != "OP00000000" {
			t.Fatalf("create operator: %d %v", s, op)
		}
		if s := e.admin("POST", "/v1/admin/operators", map[string]any{"login": "wang.fang", "password": "another passphrase",
			"name": "Again"}, &op); s != 400 {
			t.Fatalf("login taken: %d %v", s, op)
		}
		var sess map[string]any
		if s := e.bearer("", "POST", "/v1/admin/sessions", map[string]any{"login": "wang.fang", "password": "wrong passphrase"},
			&sess); s != 401 {
			t.Fatalf("wrong password: %d %v", s, sess)
		}
		if s := e.bearer("", "POST", "/v1/admin/sessions", map[string]any{"login": "wang.fang", "password": "a long passphrase"},
			&sess); s != 200 || sess["operator_id"] != "OP00000001" {
			t.Fatalf("operator login: %d %v", s, sess)
		}
		tok := sess["token"].(string)
		// The operator's own token is an operator's token.
		u := idNewUser(t, e, "opuser")
		var dep map[string]any
		if s := e.bearer(tok, "POST", "/v1/admin/deposits", map[string]any{"user_id": u.id, "amount": "5.00", "bank": "ICBC",
			"reference": "op-dep-1"}, &dep); s != 201 {
			t.Fatalf("deposit by an operator: %d %v", s, dep)
		}
		if s := e.bearer(tok, "POST", "/v1/admin/deposits", map[string]any{"user_id": "2088999999999999", "amount": "5.00",
			"bank": "ICBC", "reference": "op-dep-2"}, &dep); s != 404 {
			t.Fatalf("deposit to nobody: %d %v", s, dep)
		}
		// A user's session is not an operator's, nor the other way round.
		var out map[string]any
		if s := e.bearer(u.token, "GET", "/v1/admin/operators", nil, &out); s != 401 || errorCode(out) != zhifu.Unauthorized {
			t.Fatalf("user token on an admin route: %d %v", s, out)
		}
		if s := e.bearer(tok, "GET", "/v1/wallet", nil, &out); s != 401 {
			t.Fatalf("operator token on a user route: %d %v", s, out)
		}
		var list struct {
			Data []map[string]any `json:"data"`
		}
		if s := e.bearer(tok, "GET", "/v1/admin/operators", nil, &list); s != 200 || len(list.Data) != 2 {
			t.Fatalf("operators: %d %v", s, list)
		}
		var audit struct {
			Data []struct {
				OperatorID string `json:"operator_id"`
				Action     string `json:"action"`
				Applied    bool   `json:"applied"`
			} `json:"data"`
		}
		if s := e.bearer(tok, "GET", "/v1/admin/audit?limit=100", nil, &audit); s != 200 {
			t.Fatalf("audit: %d", s)
		}
		var got []string
		for _, a := range audit.Data {
			if a.Action == "POST /v1/admin/deposits" || a.Action == "POST /v1/admin/operators" {
				got = append(got, a.OperatorID+" "+a.Action+" "+map[bool]string{true: "applied", false: "refused"}[a.Applied])
			}
		}
		want := []string{"OP00000001 POST /v1/admin/deposits refused", "OP00000001 POST /v1/admin/deposits applied",
			"OP00000000 POST /v1/admin/operators refused", "OP00000000 POST /v1/admin/operators applied"}
		if len(got) != len(want) {
			t.Fatalf("audit lines %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("audit lines %v, want %v", got, want)
			}
		}
	})
}
