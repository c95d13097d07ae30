package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"zhifu"
)

// End-to-end tests of wallets, deposits, transfers and statements over real
// HTTP on both stores.

// idDeposit credits a deposit as the operator and returns its id.
func idDeposit(t *testing.T, e *env, userID, amount, reference string) string {
	t.Helper()
	var d map[string]any
	s := e.admin("POST", "/v1/admin/deposits",
		map[string]any{"user_id": userID, "amount": amount, "bank": "ICBC", "reference": reference}, &d)
	if s != 201 || d["status"] != "SUCCESS" || d["deposit_id"] == "" {
		t.Fatalf("deposit: %d %v", s, d)
	}
	return d["deposit_id"].(string)
}

// idBalance returns a user's available and frozen balance.
func idBalance(t *testing.T, e *env, u idUser) (available, frozen string) {
	t.Helper()
	var w map[string]any
	if s := e.bearer(u.token, "GET", "/v1/wallet", nil, &w); s != 200 || w["user_id"] != u.id {
		t.Fatalf("wallet of %s: %d %v", u.login, s, w)
	}
	return w["available"].(string), w["frozen"].(string)
}

// idRelogin opens a new session for u.
func idRelogin(t *testing.T, e *env, u idUser) idUser {
	t.Helper()
	var session map[string]any
	if s := e.bearer("", "POST", "/v1/sessions", map[string]string{"login": u.login, "password": u.password}, &session); s != 200 {
		t.Fatalf("login %s: %d %v", u.login, s, session)
	}
	u.token = session["token"].(string)
	return u
}

func idWantBalance(t *testing.T, e *env, u idUser, want string) {
	t.Helper()
	if got, _ := idBalance(t, e, u); got != want {
		t.Fatalf("%s has %s, want %s", u.login, got, want)
	}
}

type idEntry struct {
	EntryID    string `json:"entry_id"`
	TransferID string `json:"transfer_id"`
	Type       string `json:"type"`
	Amount     string `json:"amount"`
	Balance    string `json:"balance"`
	Memo       string `json:"memo"`
	Status     string `json:"status"`
	CreatedAt  string `json:"created_at"`
}

type idStatement struct {
	Data    []idEntry `json:"data"`
	HasMore bool      `json:"has_more"`
}

func TestE2EDeposits(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		u := idNewUser(t, e, "depositor")
		id := idDeposit(t, e, u.id, "100.00", "ICBC-20260301-0001")
		idWantBalance(t, e, u, "100.00")

		// The same reference again is the same deposit, credited once.
		var again map[string]any
		s := e.admin("POST", "/v1/admin/deposits",
			map[string]any{"user_id": u.id, "amount": "100.00", "bank": "ICBC", "reference": "ICBC-20260301-0001"}, &again)
		if s != 201 || again["deposit_id"] != id || again["amount"] != "100.00" {
			t.Fatalf("replayed reference: %d %v (first %s)", s, again, id)
		}
		idWantBalance(t, e, u, "100.00")

		var got map[string]any
		deposit := func(body map[string]any) int {
			got = nil
			return e.admin("POST", "/v1/admin/deposits", body, &got)
		}
		s = deposit(map[string]any{"user_id": u.id, "amount": "100.01", "bank": "ICBC", "reference": "ICBC-20260301-0001"})
		idWant(t, "reference reused", s, got, 409, "CONTEXT_INCONSISTENT", "reference")
		s = deposit(map[string]any{"user_id": u.id, "amount": "1.00", "bank": "NOBANK", "reference": "r2"})
		idWant(t, "unknown bank", s, got, 400, "INVALID_REQUEST", "bank")
		s = deposit(map[string]any{"user_id": "2088000000999999", "amount": "1.00", "bank": "ICBC", "reference": "r3"})
		idWant(t, "unknown user", s, got, 404, "NOT_FOUND", "user_id")
		s = deposit(map[string]any{"user_id": u.id, "amount": 12.30, "bank": "ICBC", "reference": "r4"})
		idWant(t, "JSON number", s, got, 400, "INVALID_AMOUNT", "amount")
		for _, bad := range []string{"12.345", "-1", "1e3", "12,30", "0.00", "100000000.01", " 1"} {
			s = deposit(map[string]any{"user_id": u.id, "amount": bad, "bank": "ICBC", "reference": "r5"})
			idWant(t, "amount "+bad, s, got, 400, "INVALID_AMOUNT", "amount")
		}
		s = deposit(map[string]any{"user_id": u.id, "amount": "1.00", "bank": "ICBC", "reference": strings.Repeat("r", 65)})
		idWant(t, "long reference", s, got, 400, "INVALID_REQUEST", "reference")
		s = e.bearer(u.token, "POST", "/v1/admin/deposits",
			map[string]any{"user_id": u.id, "amount": "1.00", "bank": "ICBC", "reference": "r6"}, &got)
		idWant(t, "user depositing", s, got, 401, "UNAUTHORIZED", "")
		idWantBalance(t, e, u, "100.00")

		// Concurrent deposits of one reference credit it once.
		var wg sync.WaitGroup
		ids := make([]string, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, _, b, err := idCall(e, "POST", "/v1/admin/deposits", http.Header{"Authorization": {"Bearer " + e.token}},
					fmt.Sprintf(`{"user_id":%q,"amount":"5.00","bank":"CMB","reference":"race-1"}`, u.id))
				var d map[string]any
				if err == nil && status == 201 && json.Unmarshal(b, &d) == nil {
					ids[i], _ = d["deposit_id"].(string)
				}
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("concurrent deposits of one reference: %v", ids)
			}
		}
		idWantBalance(t, e, u, "105.00")
		idCheckLedger(t, e)
	})
}

func TestE2ETransfersAndStatement(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		users := idNewUsers(t, e, "payer", 3)
		a, b, c := users[0], users[1], users[2]
		idDeposit(t, e, a.id, "100.00", "dep-a-1")

		transfer := func(from idUser, body map[string]any) (int, map[string]any) {
			var got map[string]any
			s := e.bearer(from.token, "POST", "/v1/transfers", body, &got)
			return s, got
		}
		s, got := transfer(a, map[string]any{"to_user_id": b.id, "amount": "30.00", "memo": "晚饭 dinner"})
		idWant(t, "transfer", s, got, 201, "", "")
		if got["status"] != "SUCCESS" || got["transfer_id"] == "" {
			t.Fatalf("transfer %v", got)
		}
		s, got = transfer(b, map[string]any{"to_user_id": a.id, "amount": "5.50"})
		idWant(t, "transfer back", s, got, 201, "", "")
		idWantBalance(t, e, a, "75.50")
		idWantBalance(t, e, b, "24.50")

		before := idState(t, e, a, b, c)
		s, got = transfer(a, map[string]any{"to_user_id": a.id, "amount": "1.00"})
		idWant(t, "to self", s, got, 400, "INVALID_REQUEST", "to_user_id")
		s, got = transfer(a, map[string]any{"to_user_id": "2088000000999999", "amount": "1.00"})
		idWant(t, "unknown recipient", s, got, 404, "NOT_FOUND", "to_user_id")
		s, got = transfer(a, map[string]any{"to_user_id": b.id, "amount": "75.51"})
		idWant(t, "too much", s, got, 400, "BALANCE_NOT_ENOUGH", "amount")
		s, got = transfer(c, map[string]any{"to_user_id": b.id, "amount": "0.01"})
		idWant(t, "empty wallet", s, got, 400, "BALANCE_NOT_ENOUGH", "amount")
		s, got = transfer(a, map[string]any{"to_user_id": b.id, "amount": "1.00", "memo": strings.Repeat("m", 129)})
		idWant(t, "long memo", s, got, 400, "INVALID_REQUEST", "memo")
		s, got = transfer(a, map[string]any{"to_user_id": b.id, "amount": 1})
		idWant(t, "JSON number", s, got, 400, "INVALID_AMOUNT", "amount")
		s, got = transfer(a, map[string]any{"to_user_id": b.id})
		idWant(t, "no amount", s, got, 400, "INVALID_AMOUNT", "amount")
		s = e.bearer(e.token, "POST", "/v1/transfers", map[string]any{"to_user_id": b.id, "amount": "1.00"}, &got)
		idWant(t, "admin as a user", s, got, 401, "UNAUTHORIZED", "")
		if after := idState(t, e, a, b, c); after != before {
			t.Fatalf("refused transfers changed state:\n%s\nbecame\n%s", before, after)
		}

		// A's statement, newest first, with running balances.
		var st idStatement
		if s := e.bearer(a.token, "GET", "/v1/statement", nil, &st); s != 200 || st.HasMore || len(st.Data) != 3 {
			t.Fatalf("statement: %d %+v", s, st)
		}
		want := []struct{ typ, amount, balance, memo string }{
			{"transfer", "5.50", "75.50", ""},
			{"transfer", "-30.00", "70.00", "晚饭 dinner"},
			{"deposit", "100.00", "100.00", ""},
		}
		for i, w := range want {
			g := st.Data[i]
			if g.Type != w.typ || g.Amount != w.amount || g.Balance != w.balance || g.Memo != w.memo || g.Status != "posted" {
				t.Errorf("entry %d = %+v, want %+v", i, g, w)
			}
			if !strings.HasSuffix(g.CreatedAt, "Z") || g.EntryID == "" || g.TransferID == "" {
				t.Errorf("entry %d = %+v", i, g)
			}
		}
		// B sees only B's own entries.
		var stB idStatement
		e.bearer(b.token, "GET", "/v1/statement", nil, &stB)
		if len(stB.Data) != 2 || stB.Data[0].Amount != "-5.50" || stB.Data[1].Amount != "30.00" {
			t.Fatalf("B's statement %+v", stB)
		}

		// Pagination: two pages of two and one.
		var p1, p2 idStatement
		e.bearer(a.token, "GET", "/v1/statement?limit=2", nil, &p1)
		if len(p1.Data) != 2 || !p1.HasMore || p1.Data[0].EntryID != st.Data[0].EntryID {
			t.Fatalf("page 1 %+v", p1)
		}
		e.bearer(a.token, "GET", "/v1/statement?limit=2&"+query("starting_after", p1.Data[1].EntryID), nil, &p2)
		if len(p2.Data) != 1 || p2.HasMore || p2.Data[0].EntryID != st.Data[2].EntryID {
			t.Fatalf("page 2 %+v", p2)
		}
		for _, q := range []string{"limit=0", "limit=101", "limit=abc", "limit=-1"} {
			s = e.bearer(a.token, "GET", "/v1/statement?"+q, nil, &got)
			idWant(t, q, s, got, 400, "INVALID_REQUEST", "limit")
		}
		s = e.bearer(a.token, "GET", "/v1/statement?starting_after=x", nil, &got)
		idWant(t, "bad starting_after", s, got, 400, "INVALID_REQUEST", "starting_after")
		idCheckLedger(t, e)
	})
}

func TestE2ETransferIdempotencyKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		users := idNewUsers(t, e, "idem", 3)
		a, b, c := users[0], users[1], users[2]
		idDeposit(t, e, a.id, "50.00", "dep-idem-a")
		idDeposit(t, e, c.id, "50.00", "dep-idem-c")
		send := func(from idUser, key, body string) (int, http.Header, map[string]any) {
			h := http.Header{"Authorization": {"Bearer " + from.token}, "Idempotency-Key": {key}}
			s, hdr, raw := e.request("POST", "/v1/transfers", h, body)
			var got map[string]any
			decode(t, raw, &got)
			got["raw"] = string(raw)
			return s, hdr, got
		}
		body := fmt.Sprintf(`{"to_user_id":%q,"amount":"10.00","memo":"rent"}`, b.id)
		s1, h1, r1 := send(a, "rent-2026-03", body)
		s2, h2, r2 := send(a, "rent-2026-03", body)
		if s1 != 201 || s2 != 201 || r1["raw"] != r2["raw"] || h1.Get("Idempotent-Replayed") != "" || h2.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %v %v / %d %v %v", s1, h1, r1, s2, h2, r2)
		}
		idWantBalance(t, e, a, "40.00")
		idWantBalance(t, e, b, "10.00")

		s, _, got := send(a, "rent-2026-03", fmt.Sprintf(`{"to_user_id":%q,"amount":"11.00","memo":"rent"}`, b.id))
		idWant(t, "same key, other body", s, got, 422, "IDEMPOTENCY_KEY_REUSED", "")
		// Keys belong to their caller: C's "rent-2026-03" is C's own.
		s, _, got = send(c, "rent-2026-03", body)
		idWant(t, "other caller's key", s, got, 201, "", "")
		idWantBalance(t, e, c, "40.00")
		idWantBalance(t, e, b, "20.00")

		// Refusals are replayed too, without being tried again.
		big := fmt.Sprintf(`{"to_user_id":%q,"amount":"1000.00"}`, b.id)
		s, _, got = send(a, "too-big", big)
		idWant(t, "too much", s, got, 400, "BALANCE_NOT_ENOUGH", "amount")
		s, hdr, got := send(a, "too-big", big)
		idWant(t, "too much, replayed", s, got, 400, "BALANCE_NOT_ENOUGH", "amount")
		if hdr.Get("Idempotent-Replayed") != "true" {
			t.Fatal("refusal not replayed")
		}

		// After 24 hours the response is forgotten, but the transfer id
		// derives from the key, so the money still moves only once.
		e.clock.Advance(24*60*60e9 + 1)
		a = idRelogin(t, e, a) // the session has expired too
		s3, h3, r3 := send(a, "rent-2026-03", body)
		if s3 != 201 || h3.Get("Idempotent-Replayed") != "" || r3["transfer_id"] != r1["transfer_id"] {
			t.Fatalf("after expiry: %d %v", s3, r3)
		}
		idWantBalance(t, e, a, "40.00")
		e.clock.Advance(24*60*60e9 + 1)
		a = idRelogin(t, e, a)
		s, _, got = send(a, "rent-2026-03", fmt.Sprintf(`{"to_user_id":%q,"amount":"10.00","memo":"rent"}`, c.id))
		idWant(t, "expired key, other transfer", s, got, 409, "CONTEXT_INCONSISTENT", "")
		idCheckLedger(t, e)
	})
}

// TestE2EConcurrentTransfers runs 1,000 random transfers among 50 users at
// once and checks that no balance went negative, every successful transfer
// moved exactly its amount, the total is conserved and the audit passes.
func TestE2EConcurrentTransfers(t *testing.T) {
	const (
		usersN     = 50
		transfersN = 1000
		inFlight   = 100
		startFen   = 100_00 // each user's deposit
	)
	forEachStore(t, func(t *testing.T, e *env) {
		users := idNewUsers(t, e, "racer", usersN)
		for i, u := range users {
			idDeposit(t, e, u.id, zhifu.Amount(startFen).String(), fmt.Sprintf("race-dep-%d", i))
		}
		type move struct {
			from, to int
			fen      int64
		}
		rng := rand.New(rand.NewPCG(1, 2))
		moves := make([]move, transfersN)
		for i := range moves {
			from := rng.IntN(usersN)
			to := (from + 1 + rng.IntN(usersN-1)) % usersN
			moves[i] = move{from, to, 1 + rng.Int64N(60_00)}
		}
		ok := make([]bool, transfersN)
		errs := make(chan error, transfersN)
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		for i, m := range moves {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				body := fmt.Sprintf(`{"to_user_id":%q,"amount":%q}`, users[m.to].id, zhifu.Amount(m.fen).String())
				status, _, b, err := idCall(e, "POST", "/v1/transfers", http.Header{"Authorization": {"Bearer " + users[m.from].token}}, body)
				switch {
				case err != nil:
					errs <- err
				case status == 201:
					ok[i] = true
				case status != 400 || !strings.Contains(string(b), "BALANCE_NOT_ENOUGH"):
					errs <- fmt.Errorf("transfer %d: %d %s", i, status, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		want := make([]int64, usersN)
		for i := range want {
			want[i] = startFen
		}
		succeeded := 0
		for i, m := range moves {
			if ok[i] {
				want[m.from] -= m.fen
				want[m.to] += m.fen
				succeeded++
			}
		}
		var total int64
		for i, u := range users {
			got, _ := idBalance(t, e, u)
			a, err := zhifu.ParseAmount(got, "available")
			if got == "0.00" {
				a, err = 0, nil
			}
			if err != nil || int64(a) != want[i] || want[i] < 0 {
				t.Errorf("%s has %s, want %s", u.login, got, zhifu.Amount(want[i]))
			}
			total += int64(a)
		}
		if total != usersN*startFen {
			t.Errorf("total %s, want %s", zhifu.Amount(total), zhifu.Amount(usersN*startFen))
		}
		if succeeded < transfersN/4 {
			t.Errorf("only %d of %d transfers succeeded; the test exercises too little", succeeded, transfersN)
		}
		idCheckLedger(t, e)
	})
}
