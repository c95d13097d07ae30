package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zhifu/internal/testkit"
)

// syncBuffer collects output written from many goroutines.
type syncBuffer = testkit.Buffer

// testMain is a Main with captured output and a controlled environment.
type testMain struct {
	*Main
	stdout, stderr *syncBuffer
}

// harnessEnv is the environment of the in-process platform that the
// end-to-end tests drive: notifications may go to the test's own
// receivers on loopback, and no per-caller rate applies, since one test
// user or merchant often drives the platform alone; the tests of those
// limits set them themselves.
var harnessEnv = map[string]string{
	"ZHIFU_NOTIFY_ALLOW_CIDRS": "127.0.0.0/8",
	"ZHIFU_RATE_USER":          "0",
	"ZHIFU_RATE_MERCHANT":      "0",
	"ZHIFU_RATE_ADDRESS":       "0",
}

func newTestMain(env map[string]string) *testMain {
	tm := &testMain{Main: NewMain(), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	tm.Stdout, tm.Stderr = tm.stdout, tm.stderr
	tm.Logger = slog.New(slog.NewTextHandler(tm.stderr, nil))
	tm.Getenv = func(k string) string { return env[k] }
	return tm
}

// runMain starts the real program on port 0 over a SQLite database in dir.
func runMain(t *testing.T, dir string, extra ...string) *testMain {
	t.Helper()
	tm := newTestMain(nil)
	serveTestMain(t, tm, append([]string{"--data", dir}, extra...)...)
	return tm
}

// serveTestMain runs "zhifu serve" in process on port 0 with args, and
// closes it when the test ends, failing the test if it does not close
// cleanly.
func serveTestMain(t testing.TB, tm *testMain, args ...string) {
	t.Helper()
	if err := tm.ParseFlags(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := tm.Run(context.Background()); err != nil {
		tm.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tm.Close(); err != nil {
			t.Error(err)
		}
	})
}

// call sends an admin request and decodes the JSON answer into out.
func call(t *testing.T, base, token, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	m := runMain(t, dir, "--db", "sqlite://"+filepath.Join(dir, "z.db"))
	base, tok := m.URL(), m.AdminToken()
	if !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Fatalf("URL() = %q", base)
	}
	if !strings.Contains(m.stderr.String(), "msg=listening url="+base) {
		t.Errorf("log lacks the listening line:\n%s", m.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "z.db")); err != nil {
		t.Errorf("database not at --db: %v", err)
	}

	var res struct{ Results []struct{ ID, Result string } }
	call(t, base, tok, "POST", "/v1/admin/ledger/accounts", `{"accounts":[
		{"id":"1","currency":"CNY","code":1,"flags":["debits_must_not_exceed_credits"]},
		{"id":"10","currency":"CNY","code":10}]}`, &res)
	if len(res.Results) != 2 || res.Results[0].Result != "ok" || res.Results[1].Result != "ok" {
		t.Fatalf("create accounts = %+v", res)
	}
	call(t, base, tok, "POST", "/v1/admin/ledger/transfers", `{"transfers":[
		{"id":"dep","debit_account_id":"10","credit_account_id":"1","amount":"12.30","currency":"CNY","code":1},
		{"id":"out","debit_account_id":"1","credit_account_id":"10","amount":"2.30","code":2,"user_data":"withdrawal"},
		{"id":"too-much","debit_account_id":"1","credit_account_id":"10","amount":"10.01","code":2}]}`, &res)
	if got := resultList(res.Results); got != "dep:ok out:ok too-much:exceeds_credits" {
		t.Fatalf("transfers = %s", got)
	}

	var acct struct {
		Balance       string `json:"balance"`
		CreditsPosted string `json:"credits_posted"`
	}
	if call(t, base, tok, "GET", "/v1/admin/ledger/accounts/1", "", &acct); acct.Balance != "10.00" || acct.CreditsPosted != "12.30" {
		t.Errorf("wallet = %+v, want balance 10.00", acct)
	}
	var entries struct {
		Data []struct {
			TransferID string `json:"transfer_id"`
			Amount     string `json:"amount"`
			Balance    string `json:"balance"`
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	call(t, base, tok, "GET", "/v1/admin/ledger/accounts/1/entries?limit=1", "", &entries)
	if len(entries.Data) != 1 || !entries.HasMore || entries.Data[0].TransferID != "out" || entries.Data[0].Amount != "-2.30" || entries.Data[0].Balance != "10.00" {
		t.Errorf("entries = %+v", entries)
	}
	var check struct {
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
	call(t, base, tok, "GET", "/v1/admin/ledger/check", "", &check)
	if !check.OK || check.TotalDebits != "14.60" || check.TotalCredits != "14.60" || !check.Custody.OK ||
		check.Custody.CustomerFunds != "10.00" || check.Custody.BankFunds != "10.00" || check.Violations == nil {
		t.Errorf("check = %+v", check)
	}
	if strings.Contains(m.stderr.String(), tok) {
		t.Error("the admin token appears in the log")
	}
}

func resultList(rs []struct{ ID, Result string }) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.ID+":"+r.Result)
	}
	return strings.Join(parts, " ")
}

// TestAdminTokenGenerated: a fresh data folder gets a token, printed once
// and saved for this user only; the next start reads it back silently.
func TestAdminTokenGenerated(t *testing.T) {
	dir := t.TempDir()
	first := runMain(t, dir)
	tok := first.AdminToken()
	path := filepath.Join(dir, "admin-token")
	if want := "admin token: " + tok + " (saved in " + path + ")\n"; first.stdout.String() != want {
		t.Errorf("stdout = %q, want %q", first.stdout.String(), want)
	}
	if len(tok) != 64 {
		t.Errorf("token %q is not 32 bytes of hex", tok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", fi.Mode().Perm())
	}
	if strings.Contains(first.stderr.String(), tok) {
		t.Error("the admin token appears in the log")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := runMain(t, dir)
	if second.AdminToken() != tok || second.stdout.String() != "" {
		t.Errorf("second start: token %q, stdout %q; want the saved token and no output", second.AdminToken(), second.stdout.String())
	}
	if code := call(t, second.URL(), tok, "GET", "/v1/admin/ledger/check", "", nil); code != 200 {
		t.Errorf("saved token refused: %d", code)
	}
	if code := call(t, second.URL(), "wrong", "GET", "/v1/admin/ledger/check", "", nil); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{
		"ZHIFU_ADDR": "0.0.0.0:9000", "ZHIFU_DB": "postgres://u:pw@db/zhifu",
		"ZHIFU_ADMIN_TOKEN": "from-env", "ZHIFU_DATA": "/var/lib/zhifu",
	}
	tests := []struct {
		name                  string
		env                   map[string]string
		args                  []string
		addr, db, token, data string
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "sqlite://data/zhifu.db", "", "./data"},
		{"data moves the default db", nil, []string{"--data", "/srv/z"}, "127.0.0.1:8080", "sqlite:///srv/z/zhifu.db", "", "/srv/z"},
		{"env", env, nil, "0.0.0.0:9000", "postgres://u:pw@db/zhifu", "from-env", "/var/lib/zhifu"},
		{"flags win over env", env,
			[]string{"--addr", ":1", "--db", "sqlite:///tmp/a.db", "--admin-token", "from-flag", "--data", "d"},
			":1", "sqlite:///tmp/a.db", "from-flag", "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMain(tt.env)
			if err := m.ParseFlags(context.Background(), append([]string{"serve"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if m.Addr != tt.addr || m.DB != tt.db || m.AdminToken() != tt.token || m.DataDir != tt.data {
				t.Errorf("got addr %q db %q token %q data %q", m.Addr, m.DB, m.AdminToken(), m.DataDir)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"serve", "extra"}, {"serve", "--nope"}, {"serve", "--addr"}} {
		m := newTestMain(nil)
		var ue *UsageError
		if err := m.ParseFlags(context.Background(), args); !errors.As(err, &ue) || ue.Usage == "" {
			t.Errorf("ParseFlags(%q) = %v, want a usage error", args, err)
		}
	}
	m := newTestMain(map[string]string{"ZHIFU_ADMIN_TOKEN": "secret-from-env"})
	if err := m.ParseFlags(context.Background(), []string{"serve", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("serve -h = %v, want flag.ErrHelp", err)
	}
	if out := m.stdout.String(); !strings.Contains(out, "-admin-token") || strings.Contains(out, "secret-from-env") {
		t.Errorf("serve -h printed %q: want the flags and no secret", out)
	}
}

func TestOpenStoreRefusesUnknownDB(t *testing.T) {
	for _, db := range []string{"mysql://x", "sqlite://", "/tmp/z.db", "sqlite://z.db?mode=memory"} {
		if st, err := openStore(context.Background(), db); err == nil {
			st.Close()
			t.Errorf("openStore(%q) succeeded", db)
		}
	}
}

func TestRedactDB(t *testing.T) {
	if got := redactDB("postgres://zhifu:hunter2@db:5432/zhifu"); strings.Contains(got, "hunter2") {
		t.Errorf("redactDB leaks the password: %s", got)
	}
	if got := redactString("cannot connect to zhifu:hunter2@db", "postgres://zhifu:hunter2@db/z"); strings.Contains(got, "hunter2") {
		t.Errorf("redactString leaks the password: %s", got)
	}
}
