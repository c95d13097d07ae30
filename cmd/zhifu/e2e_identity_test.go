package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// End-to-end tests of users, sessions, merchants, signatures and
// Idempotency-Key, over real HTTP on both stores. Helpers here are prefixed
// "id" and shared with e2e_wallet_test.go.

// idClient is safe to share between goroutines and keeps enough idle
// connections for the concurrent tests.
var idClient = &http.Client{
	Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256},
	Timeout:   2 * time.Minute,
}

// idCall sends one request from any goroutine (it never calls t.Fatal).
func idCall(e *env, method, path string, h http.Header, body string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := idClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// idCallPatient is idCall as a well-behaved client sends a set-up call:
// refused for load (429, 503 with Retry-After: registrations and logins
// hash passwords, and admission sheds a burst of them), it waits as told
// and sends it again, a bounded number of times.
func idCallPatient(e *env, method, path string, h http.Header, body string) (int, http.Header, []byte, error) {
	for attempt := 0; ; attempt++ {
		status, hdr, b, err := idCall(e, method, path, h, body)
		if err != nil || (status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests) || attempt == 20 {
			return status, hdr, b, err
		}
		wait := 100 * time.Millisecond
		if secs, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil && secs > 0 {
			wait = min(time.Duration(secs)*time.Second, 2*time.Second)
		}
		time.Sleep(wait)
	}
}

// idUser is a user created over the API, with an open session.
type idUser struct {
	id, login, password, token string
}

func idPassword(login string) string { return "pw-" + login + "-secret" }

// idNewUser creates and logs in one user.
func idNewUser(t *testing.T, e *env, login string) idUser {
	t.Helper()
	return idNewUsers(t, e, login, 1)[0]
}

// idNewUsers creates n users concurrently (prefix plus a number when n > 1)
// and logs each in. Password hashing is slow by design; doing it in
// parallel keeps the tests quick.
func idNewUsers(t *testing.T, e *env, prefix string, n int) []idUser {
	t.Helper()
	users := make([]idUser, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			login := prefix
			if n > 1 {
				login = fmt.Sprintf("%s%03d", prefix, i)
			}
			users[i], errs[i] = idRegister(e, login)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return users
}

func idRegister(e *env, login string) (idUser, error) {
	u := idUser{login: login, password: idPassword(login)}
	admin := http.Header{"Authorization": {"Bearer " + e.token}}
	body := fmt.Sprintf(`{"login":%q,"password":%q,"name":"User %s"}`, login, u.password, login)
	status, _, b, err := idCallPatient(e, "POST", "/v1/users", admin, body)
	var created struct {
		UserID string `json:"user_id"`
		Login  string `json:"login"`
	}
	if err != nil || status != 201 || json.Unmarshal(b, &created) != nil || created.Login != login {
		return u, fmt.Errorf("create user %s: %d %s %v", login, status, b, err)
	}
	u.id = created.UserID
	status, _, b, err = idCallPatient(e, "POST", "/v1/sessions", nil, fmt.Sprintf(`{"login":%q,"password":%q}`, login, u.password))
	var session struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	if err != nil || status != 200 || json.Unmarshal(b, &session) != nil || session.UserID != u.id || session.Token == "" {
		return u, fmt.Errorf("login %s: %d %s %v", login, status, b, err)
	}
	u.token = session.Token
	return u, nil
}

// idNewMerchant creates a merchant paid into userID's wallet.
func idNewMerchant(t *testing.T, e *env, userID string) merchantKey {
	t.Helper()
	var m map[string]any
	if s := e.admin("POST", "/v1/merchants", map[string]any{"name": "Shop", "user_id": userID}, &m); s != 201 {
		t.Fatalf("create merchant: %d %v", s, m)
	}
	for _, f := range []string{"merchant_id", "secret", "user_id", "app_id", "alipay_public_key"} {
		if _, ok := m[f]; !ok {
			t.Fatalf("merchant response lacks %s: %v", f, m)
		}
	}
	return merchantKey{id: m["merchant_id"].(string), secret: m["secret"].(string)}
}

// idWant checks a status and, for errors, the API code and param.
func idWant(t *testing.T, what string, status int, got map[string]any, wantStatus int, code, param string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d %v, want %d", what, status, got, wantStatus)
	}
	if code == "" {
		return
	}
	e, _ := got["error"].(map[string]any)
	if e["code"] != code || (param != "" && e["param"] != param) {
		t.Fatalf("%s: error %v, want %s on %q", what, got, code, param)
	}
}

// idCheckLedger asserts the full audit passes.
func idCheckLedger(t *testing.T, e *env) {
	t.Helper()
	var c struct {
		OK         bool     `json:"ok"`
		Violations []string `json:"violations"`
	}
	if s := e.admin("GET", "/v1/admin/ledger/check", nil, &c); s != 200 || !c.OK || len(c.Violations) != 0 {
		t.Fatalf("ledger check: %d %+v", s, c)
	}
}

// idState is everything a refused request could have changed: the users'
// wallets, their statements and the ledger's totals.
func idState(t *testing.T, e *env, users ...idUser) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		for _, path := range []string{"/v1/wallet", "/v1/statement?limit=100"} {
			status, _, body := e.request("GET", path, http.Header{"Authorization": {"Bearer " + u.token}}, "")
			fmt.Fprintf(&b, "%s %d %s\n", path, status, body)
		}
	}
	var check map[string]any
	e.admin("GET", "/v1/admin/ledger/check", nil, &check)
	fmt.Fprintf(&b, "%v %v\n", check["total_debits"], check["custody"])
	return b.String()
}

func TestE2EUsersAndSessions(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var got map[string]any
		s := e.admin("POST", "/v1/users", map[string]string{"login": "alice", "password": "password-1", "name": "Alice"}, &got)
		idWant(t, "create", s, got, 201, "", "")
		if got["login"] != "alice" || got["name"] != "Alice" || !strings.HasPrefix(got["user_id"].(string), "2088") {
			t.Fatalf("created %v", got)
		}
		aliceID := got["user_id"].(string)
		if _, leaked := got["password"]; leaked {
			t.Fatal("the password came back")
		}

		got = nil
		s = e.admin("POST", "/v1/users", map[string]string{"login": "alice", "password": "password-2", "name": "A2"}, &got)
		idWant(t, "duplicate login", s, got, 400, "INVALID_REQUEST", "login")
		s = e.admin("POST", "/v1/users", map[string]any{"login": "bob", "password": "short", "name": "Bob"}, &got)
		idWant(t, "short password", s, got, 400, "INVALID_REQUEST", "password")
		s = e.admin("POST", "/v1/users", map[string]any{"login": "bob", "password": "password-1", "name": "Bob", "role": "admin"}, &got)
		idWant(t, "unknown field", s, got, 400, "INVALID_REQUEST", "role")
		s = e.admin("POST", "/v1/users", `{"login":"bob"`, &got)
		idWant(t, "truncated json", s, got, 400, "INVALID_REQUEST", "")
		s = e.bearer("not-the-admin", "POST", "/v1/users", map[string]any{"login": "bob", "password": "password-1", "name": "Bob"}, &got)
		idWant(t, "no admin token", s, got, 401, "UNAUTHORIZED", "")

		var session map[string]any
		s = e.bearer("", "POST", "/v1/sessions", map[string]string{"login": "alice", "password": "password-1"}, &session)
		idWant(t, "login", s, session, 200, "", "")
		token, _ := session["token"].(string)
		if session["user_id"] != aliceID || len(token) < 40 {
			t.Fatalf("session %v", session)
		}
		var wrong, unknown map[string]any
		s = e.bearer("", "POST", "/v1/sessions", map[string]string{"login": "alice", "password": "password-2"}, &wrong)
		idWant(t, "wrong password", s, wrong, 401, "UNAUTHORIZED", "")
		s = e.bearer("", "POST", "/v1/sessions", map[string]string{"login": "nobody", "password": "password-1"}, &unknown)
		idWant(t, "unknown login", s, unknown, 401, "UNAUTHORIZED", "")
		if fmt.Sprint(wrong) != fmt.Sprint(unknown) {
			t.Errorf("wrong password %v and unknown login %v are told apart", wrong, unknown)
		}

		var w map[string]any
		s = e.bearer(token, "GET", "/v1/wallet", nil, &w)
		idWant(t, "wallet", s, w, 200, "", "")
		if w["user_id"] != aliceID || w["available"] != "0.00" || w["frozen"] != "0.00" || w["currency"] != "CNY" {
			t.Fatalf("wallet %v", w)
		}
		s = e.bearer(e.token, "GET", "/v1/wallet", nil, &got)
		idWant(t, "admin token as a user", s, got, 401, "UNAUTHORIZED", "")
		s = e.bearer(token, "GET", "/v1/admin/ledger/check", nil, &got)
		idWant(t, "user token as admin", s, got, 401, "UNAUTHORIZED", "")
		s = e.bearer(token+"x", "GET", "/v1/wallet", nil, &got)
		idWant(t, "bad token", s, got, 401, "UNAUTHORIZED", "")
		s = e.bearer("", "GET", "/v1/wallet", nil, &got)
		idWant(t, "no token", s, got, 401, "UNAUTHORIZED", "")

		// Sessions last 24 hours.
		e.clock.Advance(24*time.Hour - time.Minute)
		s = e.bearer(token, "GET", "/v1/wallet", nil, &got)
		idWant(t, "almost a day later", s, got, 200, "", "")
		e.clock.Advance(time.Minute)
		s = e.bearer(token, "GET", "/v1/wallet", nil, &got)
		idWant(t, "a day later", s, got, 401, "UNAUTHORIZED", "")

		logs := e.m.stderr.String()
		if strings.Contains(logs, token) || strings.Contains(logs, "password-1") {
			t.Error("a token or password reached the log")
		}
	})
}

func TestE2EMerchantSignatures(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		owner := idNewUser(t, e, "shopowner")
		k := idNewMerchant(t, e, owner.id)
		var got map[string]any
		s := e.admin("POST", "/v1/merchants", map[string]any{"name": "Shop", "user_id": "2088999999999999"}, &got)
		idWant(t, "unknown user", s, got, 404, "NOT_FOUND", "user_id")
		s = e.admin("POST", "/v1/merchants", map[string]any{"name": "Shop", "user_id": owner.id, "app_public_key": "abc"}, &got)
		idWant(t, "bad key", s, got, 400, "INVALID_REQUEST", "app_public_key")
		s = e.admin("POST", "/v1/merchants", map[string]any{"name": "Shop", "user_id": owner.id, "notify_url": "ftp://x"}, &got)
		idWant(t, "bad notify_url", s, got, 400, "INVALID_REQUEST", "notify_url")

		var me map[string]any
		s = e.merchant(k, "GET", "/v1/merchant", nil, &me)
		idWant(t, "signed request", s, me, 200, "", "")
		if me["merchant_id"] != k.id || me["user_id"] != owner.id {
			t.Fatalf("merchant %v", me)
		}
		if _, shown := me["secret"]; shown {
			t.Fatal("the secret is shown again")
		}

		before := idState(t, e, owner)
		now := e.clock.Now()
		refused := []struct {
			name, method, path, body, auth string
		}{
			{"tampered body", "GET", "/v1/merchant", `{"x":2}`, signMerchant(k, "GET", "/v1/merchant", `{"x":1}`, now, newNonce())},
			{"tampered query", "GET", "/v1/merchant?all=1", "", signMerchant(k, "GET", "/v1/merchant", "", now, newNonce())},
			{"stale timestamp", "GET", "/v1/merchant", "", signMerchant(k, "GET", "/v1/merchant", "", now.Add(-301*time.Second), newNonce())},
			{"future timestamp", "GET", "/v1/merchant", "", signMerchant(k, "GET", "/v1/merchant", "", now.Add(301*time.Second), newNonce())},
			{"wrong secret", "GET", "/v1/merchant", "", signMerchant(merchantKey{k.id, "guess"}, "GET", "/v1/merchant", "", now, newNonce())},
			{"unknown merchant", "GET", "/v1/merchant", "", signMerchant(merchantKey{"m0000099999", k.secret}, "GET", "/v1/merchant", "", now, newNonce())},
			{"user token", "GET", "/v1/merchant", "", "Bearer " + owner.token},
			{"admin token", "GET", "/v1/merchant", "", "Bearer " + e.token},
			{"no credential", "GET", "/v1/merchant", "", ""},
		}
		for _, c := range refused {
			status, _, b := e.request(c.method, c.path, http.Header{"Authorization": {c.auth}}, c.body)
			var body map[string]any
			decode(t, b, &body)
			idWant(t, c.name, status, body, 401, "INVALID_SIGNATURE", "")
		}

		// A nonce works once.
		h := http.Header{"Authorization": {signMerchant(k, "GET", "/v1/merchant", "", now, "replayed-nonce-1")}}
		if status, _, b := e.request("GET", "/v1/merchant", h, ""); status != 200 {
			t.Fatalf("first use: %d %s", status, b)
		}
		status, _, b := e.request("GET", "/v1/merchant", h, "")
		var replay map[string]any
		decode(t, b, &replay)
		idWant(t, "replayed nonce", status, replay, 401, "INVALID_SIGNATURE", "")

		// A merchant's signature is not a user's credential.
		h = http.Header{"Authorization": {signMerchant(k, "GET", "/v1/wallet", "", now, newNonce())}}
		status, _, b = e.request("GET", "/v1/wallet", h, "")
		decode(t, b, &got)
		idWant(t, "signature on a user route", status, got, 401, "UNAUTHORIZED", "")

		// Bodies over 1 MiB are refused before anything is verified.
		big := `{"x":"` + strings.Repeat("a", 1<<20) + `"}`
		h = http.Header{"Authorization": {signMerchant(k, "GET", "/v1/merchant", big, now, newNonce())}}
		status, _, b = e.request("GET", "/v1/merchant", h, big)
		decode(t, b, &got)
		idWant(t, "huge signed body", status, got, 413, "REQUEST_TOO_LARGE", "")
		status = e.admin("POST", "/v1/users", big, &got)
		idWant(t, "huge admin body", status, got, 413, "REQUEST_TOO_LARGE", "")

		if after := idState(t, e, owner); after != before {
			t.Fatalf("refused requests changed state:\n%s\nbecame\n%s", before, after)
		}
		idCheckLedger(t, e)
		logs := e.m.stderr.String()
		for _, reason := range []string{"signature mismatch", "timestamp outside the window", "nonce reused", "unknown merchant"} {
			if !strings.Contains(logs, reason) {
				t.Errorf("refusal %q not logged", reason)
			}
		}
		if strings.Contains(logs, k.secret) || strings.Contains(logs, "signature=") {
			t.Error("a secret or signature reached the log")
		}
	})
}

func TestE2EAdminIdempotencyKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		h := http.Header{"Authorization": {"Bearer " + e.token}, "Idempotency-Key": {"create-dora"}}
		body := `{"login":"dora","password":"password-1","name":"Dora"}`
		s1, h1, b1 := e.request("POST", "/v1/users", h, body)
		s2, h2, b2 := e.request("POST", "/v1/users", h, body)
		if s1 != 201 || s2 != 201 || string(b1) != string(b2) {
			t.Fatalf("replay: %d %s / %d %s", s1, b1, s2, b2)
		}
		if h1.Get("Idempotent-Replayed") != "" || h2.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("Idempotent-Replayed: first %q, second %q", h1.Get("Idempotent-Replayed"), h2.Get("Idempotent-Replayed"))
		}
		s3, _, b3 := e.request("POST", "/v1/users", h, `{"login":"dora2","password":"password-1","name":"Dora"}`)
		var got map[string]any
		decode(t, b3, &got)
		idWant(t, "same key, other body", s3, got, 422, "IDEMPOTENCY_KEY_REUSED", "")
	})
}
