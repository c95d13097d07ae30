package banksim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
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
	var b banksim.Behaviour
	if status != 200 || json.Unmarshal([]byte(body), &b) != nil || b.Scenario.FailureRate != 1 || b.Scenario.Outage != "" {
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

// TestControlShowsBehaviour: GET shows a bank's behaviour in full, before
// and after each change; PATCH changes only what it names, so an outage
// ends without undoing the rest; DELETE puts the bank back as it started.
func TestControlShowsBehaviour(t *testing.T) {
	initial := banksim.Scenario{CallbackDelayMs: 5}
	e := newEnv(t, func(c *banksim.Config) { c.Scenarios.Banks = map[string]banksim.Scenario{"ICBC": initial} })
	card := e.card("ICBC", 1)
	show := func(method, body string) (banksim.Behaviour, map[string]any) {
		t.Helper()
		status, out := e.call(method, "/control/banks/ICBC", controlToken, body)
		var b banksim.Behaviour
		var raw struct {
			Scenario map[string]any `json:"scenario"`
		}
		if status != 200 || json.Unmarshal([]byte(out), &b) != nil || json.Unmarshal([]byte(out), &raw) != nil {
			t.Fatalf("%s %s = %d %s", method, body, status, out)
		}
		if b.Bank != "ICBC" {
			t.Fatalf("%s: bank %q", method, b.Bank)
		}
		return b, raw.Scenario
	}

	b, raw := show("GET", "")
	if b.State != banksim.StateUp || b.Summary != "callbacks sent 5 ms late" {
		t.Fatalf("at the start: %+v", b)
	}
	// Every setting is written out, zero or not, with what a zero means.
	for key, want := range map[string]any{"rps": 0.0, "outage": "", "failure_rate": 0.0, "overload": "reject",
		"queue_timeout_ms": 10000.0, "callback_attempts": 5.0, "callback_delay_ms": 5.0, "ebank": nil} {
		if got, ok := raw[key]; !ok || got != want {
			t.Errorf("scenario[%q] = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if m, ok := raw["maintenance"].([]any); !ok || len(m) != 0 {
		t.Errorf("maintenance = %#v, want []", raw["maintenance"])
	}
	if l, ok := raw["latency"].(map[string]any); !ok || l["median_ms"] != 0.0 {
		t.Errorf("latency = %#v", raw["latency"])
	}

	b, _ = show("PATCH", `{"rps":200,"latency":{"median_ms":40,"p99_ms":400}}`)
	if b.Scenario.RPS != 200 || b.Scenario.Burst != 200 || b.Scenario.CallbackDelayMs != 5 ||
		!strings.Contains(b.Summary, "capacity 200 requests/s") || !strings.Contains(b.Summary, "latency median 40 ms, p99 400 ms") {
		t.Fatalf("after PATCH rps and latency: %+v", b)
	}
	b, _ = show("PATCH", `{"outage":"503"}`)
	if b.State != banksim.StateOutage || b.Scenario.RPS != 200 || !strings.HasPrefix(b.Summary, "outage: every request is answered 503") {
		t.Fatalf("bank down: %+v", b)
	}
	var ae *bankapi.APIError
	if _, err := e.client("ICBC").Debit(context.Background(), bankapi.TxnRequest{RequestID: "b-1", CardToken: card.CardToken, Amount: 1}); !errors.As(err, &ae) || ae.Code != bankapi.CodeBankUnavailable {
		t.Fatalf("debit while down: %v", err)
	}
	b, _ = show("PATCH", `{"outage":""}`)
	if b.State != banksim.StateUp || b.Scenario.RPS != 200 || b.Scenario.Latency.MedianMs != 40 {
		t.Fatalf("bank back: %+v", b)
	}
	if got := e.debit("ICBC", "b-2", card, 1); got.Status != bankapi.StatusSuccess {
		t.Fatalf("debit once back: %+v", got)
	}

	// What GET shows can be put back as it is, and changes nothing.
	_, raw = show("GET", "")
	again, _ := json.Marshal(raw)
	before, _ := show("GET", "")
	if after, _ := show("PUT", string(again)); !reflect.DeepEqual(after, before) {
		t.Fatalf("PUT of what GET showed changed the bank:\n%+v\n%+v", before, after)
	}

	for _, bad := range []string{`{"outage":"sometimes"}`, `{"rps":-1}`, `{"outag":""}`, `[]`} {
		if status, _ := e.call("PATCH", "/control/banks/ICBC", controlToken, bad); status != 400 {
			t.Fatalf("PATCH %s = %d, want 400", bad, status)
		}
	}
	if b, _ := show("GET", ""); b.Scenario.RPS != 200 || b.Scenario.Outage != "" {
		t.Fatalf("a refused PATCH changed the bank: %+v", b)
	}

	window := fmt.Sprintf(`{"maintenance":[{"start":%q,"end":%q}]}`, e.clock.Now().Add(-time.Minute).Format(time.RFC3339),
		e.clock.Now().Add(time.Hour).Format(time.RFC3339))
	if b, _ := show("PATCH", window); b.State != banksim.StateMaintenance || !strings.Contains(b.Summary, "in maintenance until 2010-11-11T11:00:00+08:00") {
		t.Fatalf("in maintenance: %+v", b)
	}

	show("PUT", `{"outage":"close"}`)
	if b, _ := show("DELETE", ""); b.State != banksim.StateUp || b.Scenario.CallbackDelayMs != 5 || b.Scenario.RPS != 0 || b.Scenario.Outage != "" {
		t.Fatalf("after DELETE: %+v", b)
	}
	if status, _ := e.call("DELETE", "/control/banks/NOPE", controlToken, ""); status != 404 {
		t.Fatalf("DELETE of an unknown bank: %d", status)
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
	if b, err := cc.PatchScenario(ctx, "ABC", json.RawMessage(`{"outage":"","failure_rate":0.5}`)); err != nil ||
		b.State != banksim.StateUp || b.Scenario.FailureRate != 0.5 {
		t.Fatalf("patch = %+v, %v", b, err)
	}
	if b, err := cc.ResetScenario(ctx, "ABC"); err != nil || b.Scenario.FailureRate != 0 {
		t.Fatalf("reset = %+v, %v", b, err)
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
