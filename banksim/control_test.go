package banksim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

// call makes a control request and returns the status and body.
func (e *env) call(method, path, token, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestControlChangesBehaviourLive(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("ICBC", 1)
	c := e.client("ICBC")

	for _, tok := range []string{"", "wrong"} {
		if status, _ := e.call("GET", "/control/banks/ICBC", tok, ""); status != 401 {
			t.Fatalf("token %q: %d, want 401", tok, status)
		}
	}
	if status, body := e.call("PUT", "/control/banks/ICBC", controlToken, `{"outage":"503"}`); status != 200 {
		t.Fatalf("PUT = %d %s", status, body)
	}
	var ae *bankapi.APIError
	if _, err := c.Debit(context.Background(), bankapi.TxnRequest{RequestID: "c-1", CardToken: card.CardToken, Amount: 1}); !errors.As(err, &ae) || ae.Status != 503 {
		t.Fatalf("during the outage: %v", err)
	}
	for _, bad := range []string{`{"failure_rate":2}`, `{"failure_rat":0.5}`, `{"outage":"sometimes"}`, `not json`} {
		if status, _ := e.call("PUT", "/control/banks/ICBC", controlToken, bad); status != 400 {
			t.Fatalf("PUT %s = %d, want 400", bad, status)
		}
	}
	all := `{"default":{},"banks":{"ICBC":{"failure_rate":1}}}`
	if status, body := e.call("PUT", "/control/banks", controlToken, all); status != 200 {
		t.Fatalf("PUT all = %d %s", status, body)
	}
	if got := e.debit("ICBC", "c-2", card, 1); got.Reason != bankapi.ReasonBankError {
		t.Fatalf("ICBC debit = %+v, want BANK_ERROR", got)
	}
	if got := e.debit("CMB", "c-3", e.card("CMB", 1), 1); got.Status != bankapi.StatusSuccess {
		t.Fatalf("CMB debit = %+v", got)
	}
	status, body := e.call("GET", "/control/banks/ICBC", controlToken, "")
	var sc banksim.Scenario
	if status != 200 || json.Unmarshal([]byte(body), &sc) != nil || sc.FailureRate != 1 || sc.Outage != "" {
		t.Fatalf("GET = %d %s", status, body)
	}

	status, body = e.call("GET", "/control/stats", controlToken, "")
	var stats map[string]banksim.Stats
	if status != 200 || json.Unmarshal([]byte(body), &stats) != nil || stats["ICBC"].Outages != 1 || stats["ICBC"].Failed != 1 {
		t.Fatalf("stats = %d %s", status, body)
	}
	status, body = e.call("GET", "/control/books", controlToken, "")
	if status != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("books = %d %s", status, body)
	}
}

func TestControlDisabledWithoutToken(t *testing.T) {
	e := newEnv(t, func(c *banksim.Config) { c.ControlToken = "" })
	if status, _ := e.call("GET", "/control/stats", "", ""); status != 404 {
		t.Fatalf("status = %d, want 404", status)
	}
}

func TestSignatureRefusals(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("ICBC", 1)
	secret, _ := e.sim.Secret("ICBC")
	body := `{"request_id":"s-1","card_token":"` + card.CardToken + `","amount":100}`
	raw := func(method, path, sig, body string) int {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if sig != "" {
			req.Header.Set(bankapi.SignatureHeader, sig)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	now := e.clock.Now()
	tests := []struct {
		name, method, path, sig string
	}{
		{"missing", "POST", "/banks/ICBC/debits", ""},
		{"garbage", "POST", "/banks/ICBC/debits", "hello"},
		{"wrong secret", "POST", "/banks/ICBC/debits", bankapi.Sign("guess", now, []byte(body))},
		{"another bank's secret", "POST", "/banks/ICBC/debits", bankapi.Sign(banksim.DefaultSecret(42, "CMB"), now, []byte(body))},
		{"stale", "POST", "/banks/ICBC/debits", bankapi.Sign(secret, now.Add(-10*time.Minute), []byte(body))},
		{"other body", "POST", "/banks/ICBC/debits", bankapi.Sign(secret, now, []byte(strings.Replace(body, "100", "1", 1)))},
		{"GET signed for another path", "GET", "/banks/ICBC/transactions/s-1", bankapi.Sign(secret, now, []byte("/banks/ICBC/transactions/s-2"))},
		{"statement of another day", "GET", "/banks/ICBC/statements?date=2010-11-11", bankapi.Sign(secret, now, []byte("/banks/ICBC/statements?date=2010-11-12"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status := raw(tt.method, tt.path, tt.sig, body); status != 401 {
				t.Fatalf("status = %d, want 401", status)
			}
		})
	}
	if status := raw("POST", "/banks/ICBC/debits", bankapi.Sign(secret, now, []byte(body)), body); status != 200 {
		t.Fatalf("correctly signed: %d", status)
	}
	if status := raw("POST", "/banks/NOPE/debits", "", body); status != 404 {
		t.Fatalf("unknown bank: %d", status)
	}
	// A callback whose signature does not verify is refused by the client.
	if _, err := e.client("ICBC").VerifyCallback(bankapi.Sign("guess", now, []byte("{}")), []byte("{}")); err == nil {
		t.Fatal("a forged callback verified")
	}
}

func TestLoadScenario(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{
		"default": {"latency": {"median_ms": 20, "p99_ms": 200}, "rps": 100},
		"banks": {
			"CMB": {"rps": 50, "overload": "queue", "error_rate": 0.2,
				"ebank": {"outage": "close"}},
			"CEB": {"maintenance": [{"start": "2010-11-11T22:00:00+08:00", "end": "2010-11-11T23:00:00+08:00"}]}
		}}`)
	ss, err := banksim.LoadScenario(good)
	if err != nil {
		t.Fatal(err)
	}
	if ss.For("ICBC").RPS != 100 || ss.For("CMB").Ebank.Outage != banksim.OutageClose || len(ss.For("CEB").Maintenance) != 1 {
		t.Fatalf("loaded %+v", ss)
	}
	e := newEnv(t, func(c *banksim.Config) { c.Scenarios = ss })
	if sc, _ := e.sim.Scenario("CMB"); sc.Overload != banksim.OverloadQueue {
		t.Fatalf("CMB scenario = %+v", sc)
	}
	for name, body := range map[string]string{
		"typo.json":    `{"default": {"failure_rat": 0.1}}`,
		"rate.json":    `{"default": {"error_rate": 1.5}}`,
		"window.json":  `{"default": {"maintenance": [{"start": "2010-11-11T23:00:00Z", "end": "2010-11-11T22:00:00Z"}]}}`,
		"latency.json": `{"default": {"latency": {"fixed_ms": 5, "median_ms": 20}}}`,
	} {
		if _, err := banksim.LoadScenario(write(name, body)); err == nil {
			t.Errorf("%s loaded", name)
		}
	}
	_, err = banksim.New(banksim.Config{DBPath: filepath.Join(dir, "x.db"),
		Scenarios: banksim.Scenarios{Banks: map[string]banksim.Scenario{"NOPE": {}}}})
	if err == nil {
		t.Fatal("a scenario for an unknown bank was accepted")
	}
	if _, err := banksim.New(banksim.Config{DBPath: ":memory:"}); err == nil {
		t.Fatal("an in-memory database was accepted")
	}
}

func TestLatencyDraw(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		l    banksim.Latency
		u, z float64
		want time.Duration
	}{
		{"zero", banksim.Latency{}, 0.7, 1, 0},
		{"fixed", banksim.Latency{FixedMs: 40}, 0.7, 1, 40 * ms},
		{"jitter", banksim.Latency{FixedMs: 40, JitterMs: 10}, 0.5, 0, 45 * ms},
		{"median", banksim.Latency{MedianMs: 20, P99Ms: 200}, 0, 0, 20 * ms},
		{"p99", banksim.Latency{MedianMs: 20, P99Ms: 200}, 0, 2.3263478740408408, 200 * ms},
		{"capped", banksim.Latency{MedianMs: 600_000, P99Ms: 600_000}, 0, 9, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.l.Draw(tt.u, tt.z)
			if d := got - tt.want; d > ms/100 || d < -ms/100 {
				t.Fatalf("Draw = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestControlClient(t *testing.T) {
	e := newEnv(t, nil)
	cc := banksim.NewControlClient(e.srv.URL, controlToken, e.srv.Client())
	ctx := context.Background()
	if err := cc.SetScenario(ctx, "ABC", banksim.Scenario{Outage: banksim.OutageReject}); err != nil {
		t.Fatal(err)
	}
	if sc, err := cc.Scenario(ctx, "ABC"); err != nil || sc.Outage != banksim.OutageReject {
		t.Fatalf("scenario = %+v, %v", sc, err)
	}
	if err := cc.SetScenario(ctx, "ABC", banksim.Scenario{FailureRate: 3}); err == nil {
		t.Fatal("an invalid scenario was accepted")
	}
	if err := cc.SetScenarios(ctx, banksim.Scenarios{}); err != nil {
		t.Fatal(err)
	}
	e.debit("ABC", "cc-1", e.card("ABC", 1), 1_00)
	stats, err := cc.Stats(ctx)
	if err != nil || stats["ABC"].Succeeded != 1 {
		t.Fatalf("stats = %+v, %v", stats, err)
	}
	books, ok, err := cc.Books(ctx)
	if err != nil || !ok || books["ABC"].Debited != 1_00 {
		t.Fatalf("books = %+v, %v, %v", books, ok, err)
	}
	bad := banksim.NewControlClient(e.srv.URL, "wrong", e.srv.Client())
	if _, err := bad.Stats(ctx); err == nil {
		t.Fatal("a wrong token was accepted")
	}
}
