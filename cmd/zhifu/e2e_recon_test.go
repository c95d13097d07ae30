package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/banksim"
)

// End-to-end tests of reconciliation: the real program and its simulated
// banks, a day of real traffic through the channels, then differences of
// every class seeded in the bank's books (package banksim, Differ), the
// day reconciled with "zhifu recon" over the admin API.

// reconDay moves the clock to 01:00 of the next Beijing day, so that a
// test's traffic lies within one business day whenever it runs, and
// returns that day.
func reconDay(e *chEnv) (day string, start time.Time) {
	now := e.clock.Now().In(bankapi.Beijing)
	start = time.Date(now.Year(), now.Month(), now.Day()+1, 1, 0, 0, 0, bankapi.Beijing)
	e.clock.Advance(start.Sub(now))
	return start.Format(time.DateOnly), start
}

// operator makes an operator and returns their token.
func (e *chEnv) operator(t *testing.T, login string) string {
	t.Helper()
	var op, session map[string]any
	if s := e.admin("POST", "/v1/admin/operators", map[string]string{"login": login, "password": "a long passphrase",
		"name": login}, &op); s != 201 {
		t.Fatalf("operator %s: %d %v", login, s, op)
	}
	if s := e.bearer("", "POST", "/v1/admin/sessions", map[string]string{"login": login, "password": "a long passphrase"},
		&session); s != 200 {
		t.Fatalf("session of %s: %d %v", login, s, session)
	}
	return session["token"].(string)
}

// txn starts a top-up (or withdrawal) and returns its id.
func (e *chEnv) txn(t *testing.T, u *chUser, kind, bank string, fen int64) string {
	t.Helper()
	var out map[string]any
	path, want, id := "/v1/topups", 201, "topup_id"
	if kind == "withdrawal" {
		path, want, id = "/v1/withdrawals", 202, "withdrawal_id"
	}
	if s := e.bearer(u.token, "POST", path, map[string]string{"amount": yuan(fen), "card_id": u.cards[bank]}, &out); s != want {
		t.Fatalf("%s of %s at %s: %d %v", kind, yuan(fen), bank, s, out)
	}
	return out[id].(string)
}

func (e *chEnv) differ(t *testing.T, bank string, d banksim.Difference) {
	t.Helper()
	if _, err := e.banks.Differ(context.Background(), bank, d); err != nil {
		t.Fatalf("%s %s: %v", d.Kind, d.RequestID, err)
	}
}

var runStartedRE = regexp.MustCompile(`: run (RR\d+) started`)

// reconTally is a class of a run as the API shows it.
type reconTally struct {
	Lines   int64  `json:"lines"`
	Records int64  `json:"records"`
	Amount  string `json:"amount"`
}

type reconRunView struct {
	RunID      string                `json:"run_id"`
	State      string                `json:"state"`
	LinesTotal int64                 `json:"lines_total"`
	LinesDone  int64                 `json:"lines_done"`
	Records    int64                 `json:"records"`
	Classes    map[string]reconTally `json:"classes"`
	Changes    int64                 `json:"changes"`
	Repaired   int64                 `json:"repaired"`
	Opened     int64                 `json:"opened"`
	Suspense   string                `json:"suspense"`
	Message    string                `json:"message"`
	StartedBy  string                `json:"started_by"`
	DurationMs int64                 `json:"duration_ms"`
}

// runRecon reconciles bank's day with the zhifu recon command, as token's
// operator, and returns the run it made.
func (e *chEnv) runRecon(t *testing.T, token, bank, day string, extra ...string) reconRunView {
	t.Helper()
	var out, errOut bytes.Buffer
	args := append([]string{"--date", day, "--bank", bank, "--url", e.url, "--admin-token", token, "--poll", "10ms"}, extra...)
	if code := reconCommand(context.Background(), args, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("zhifu recon %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
	}
	t.Logf("zhifu recon --date %s --bank %s:\n%s", day, bank, out.String())
	m := runStartedRE.FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "DONE in") {
		t.Fatalf("the command's output does not follow a run to its end:\n%s", out.String())
	}
	var run reconRunView
	if s := e.admin("GET", "/v1/admin/recon/runs/"+m[1], nil, &run); s != 200 || run.RunID != m[1] {
		t.Fatalf("run %s: %d %+v", m[1], s, run)
	}
	var list struct {
		Data []reconRunView `json:"data"`
	}
	if s := e.admin("GET", "/v1/admin/recon/runs?limit=100&bank="+bank+"&date="+day, nil, &list); s != 200 ||
		!slices.ContainsFunc(list.Data, func(r reconRunView) bool { return r.RunID == run.RunID }) {
		t.Fatalf("the runs of %s %s do not list %s: %d %+v", bank, day, run.RunID, s, list)
	}
	return run
}

type reconItemView struct {
	ItemID    string   `json:"item_id"`
	Class     string   `json:"class"`
	Status    string   `json:"status"`
	TxnID     string   `json:"txn_id"`
	RequestID string   `json:"request_id"`
	Suspense  string   `json:"suspense"`
	Actions   []string `json:"actions"`
}

func (e *chEnv) reconItems(t *testing.T, status string) map[string]reconItemView {
	t.Helper()
	var list struct {
		Data []reconItemView `json:"data"`
	}
	if s := e.admin("GET", "/v1/admin/recon/items?limit=100&status="+status, nil, &list); s != 200 {
		t.Fatalf("items: %d", s)
	}
	out := map[string]reconItemView{}
	for _, it := range list.Data {
		out[it.RequestID] = it
	}
	return out
}

// TestReconDay is the day of the brief, on both stores: ordinary traffic
// through the channels, a top-up the bank took whose callback and every
// inquiry failed, one whose bank took another amount, one the bank never
// received while it was down, and then, in the bank's own books, a card
// charged twice, a top-up and a payout reversed, a top-up the platform
// failed carried out after all, another amount taken, a settlement moved
// to the day before, and a debit nobody asked for. The run puts every line
// and record in its class, repairs the safe ones, and a second run changes
// nothing; the ledger audit and custody (against the banks' own books too)
// are clean; the review items resolve only when a second operator
// approves, and the money moves then.
func TestReconDay(t *testing.T) {
	forEachChannelStore(t, chOptions{}, func(t *testing.T, e *chEnv) {
		ctx := context.Background()
		day, start := reconDay(e)
		opA, opB := e.operator(t, "ops.a"), e.operator(t, "ops.b")
		// The platform's own capital at CMB, from which a loss written off
		// is covered.
		var res map[string]any
		if s := e.admin("POST", "/v1/admin/ledger/transfers", map[string]any{"transfers": []map[string]any{{
			"id": "capital-cmb", "debit_account_id": fmt.Sprint(zhifu.BankSettlementAccountID(1)),
			"credit_account_id": fmt.Sprint(zhifu.OwnFundsAccountID), "amount": "10000.00", "currency": "CNY", "code": 1}}},
			&res); s != 200 {
			t.Fatalf("capital: %d %v", s, res)
		}
		users := e.newUsers(t, "rc", 2, []string{"CMB", "ICBC"}, "1000.00")
		u, other := users[0], users[1]

		// An ordinary morning at CMB.
		e.txn(t, u, "topup", "CMB", 100_00)
		dup := e.txn(t, u, "topup", "CMB", 90_00)
		rev := e.txn(t, u, "topup", "CMB", 40_00)
		amt2 := e.txn(t, u, "topup", "CMB", 200_00)
		late := e.txn(t, u, "topup", "CMB", 25_00)
		e.txn(t, u, "withdrawal", "CMB", 50_00)
		wdRev := e.txn(t, u, "withdrawal", "CMB", 30_00)
		e.settle(t, time.Second, time.Minute)
		if err := e.banks.SetScenario("CMB", banksim.Scenario{FailureRate: 1}); err != nil {
			t.Fatal(err)
		}
		failed := e.txn(t, u, "topup", "CMB", 60_00)
		e.settle(t, time.Second, time.Minute)
		cardBefore := e.cardBalance(t, "CMB", u.cards["CMB"])

		// Taken without an answer, callback lost: one of them with another
		// amount than asked. Then the bank goes down, so every inquiry
		// fails, and ICBC is down from the start for a third.
		if err := e.banks.SetScenario("CMB", banksim.Scenario{TimeoutRate: 1, TimeoutHoldMs: 50, CallbackLossRate: 1}); err != nil {
			t.Fatal(err)
		}
		amt := e.txn(t, u, "topup", "CMB", 500_00)
		lost := e.txn(t, u, "topup", "CMB", 800_00)
		e.waitQuiet(5 * time.Second)
		e.differ(t, "CMB", banksim.Difference{Kind: banksim.DifferAmount, RequestID: amt, Amount: 450_00})
		for bank, sc := range map[string]banksim.Scenario{"CMB": {Outage: banksim.OutageReject}, "ICBC": {Outage: banksim.OutageReject}} {
			if err := e.banks.SetScenario(bank, sc); err != nil {
				t.Fatal(err)
			}
		}
		stuck := e.txn(t, other, "topup", "ICBC", 10_00)
		for range 31 {
			e.clock.Advance(time.Minute)
			e.waitQuiet(5 * time.Second)
		}
		// The breaker stays open at this instant, so nothing asks CMB again
		// before the run: the run, not a late inquiry, finds the 800.
		if _, breaker, _ := e.channelState(t, "CMB"); breaker != "open" {
			t.Fatalf("CMB's breaker is %s", breaker)
		}
		if err := e.m.Recon.ReviewOverdue(ctx); err != nil {
			t.Fatal(err)
		}
		if open := e.reconItems(t, "open"); open[lost].Class != "overdue" || open[amt].Class != "overdue" ||
			open[stuck].Class != "overdue" {
			t.Fatalf("overdue items before the run: %+v", open)
		}
		if err := e.banks.SetScenario("CMB", banksim.Scenario{}); err != nil {
			t.Fatal(err)
		}

		// The bank's books part from the platform's.
		for _, d := range []banksim.Difference{
			{Kind: banksim.DifferRepeat, RequestID: dup},
			{Kind: banksim.DifferFlip, RequestID: rev},
			{Kind: banksim.DifferFlip, RequestID: wdRev},
			{Kind: banksim.DifferFlip, RequestID: failed},
			{Kind: banksim.DifferAmount, RequestID: amt2, Amount: 220_00},
			{Kind: banksim.DifferRedate, RequestID: late, At: start.Add(-90 * time.Minute)},
			{Kind: banksim.DifferAdd, RequestID: "XX" + day[:4] + "unknown", Amount: 70_00,
				CardToken: e.cardToken(t, other.cards["CMB"])},
		} {
			e.differ(t, "CMB", d)
		}
		unknown := "XX" + day[:4] + "unknown"
		// The 450 taken of the 500 asked, the 800, the repeated 90, the
		// reversed 40 back, the 30 paid out taken back, the failed 60
		// taken, 20 more of the 200.
		afterDiffs := cardBefore - 450_00 - 800_00 - 90_00 + 40_00 - 30_00 - 60_00 - 20_00
		if got := e.cardBalance(t, "CMB", u.cards["CMB"]); got != afterDiffs {
			t.Fatalf("the card moved %s at the bank, want %s", yuan(got-cardBefore), yuan(afterDiffs-cardBefore))
		}

		run := e.runRecon(t, opA, "CMB", day)
		want := map[string]reconTally{
			"matched":         {Lines: 3, Records: 3, Amount: "240.00"},
			"bank_only":       {Lines: 3, Records: 2, Amount: "930.00"},
			"ours_only":       {Lines: 2, Records: 2, Amount: "70.00"},
			"amount_mismatch": {Lines: 2, Records: 2, Amount: "670.00"},
			"duplicate":       {Lines: 1, Amount: "90.00"},
			"late":            {Records: 1, Amount: "25.00"},
		}
		if !maps.Equal(run.Classes, want) {
			t.Errorf("classes %+v\nwant    %+v", run.Classes, want)
		}
		if run.State != "DONE" || run.LinesTotal != 11 || run.LinesDone != 11 || run.Records != 8 || run.Repaired != 3 ||
			run.Opened != 5 || run.Suspense != "530.00" || run.StartedBy == "" || run.StartedBy == "scheduler" {
			t.Errorf("run %+v", run)
		}
		// Repaired: the 800 credited, the failed 60 credited, the second 90
		// on its way back to the card.
		for id, status := range map[string]string{lost: "SUCCESS", failed: "FAILED", amt: "PROCESSING"} {
			var tu map[string]any
			if s := e.bearer(u.token, "GET", "/v1/topups/"+id, nil, &tu); s != 200 || tu["status"] != status {
				t.Errorf("top-up %s: %d %v, want %s", id, s, tu, status)
			}
		}
		open := e.reconItems(t, "open")
		wantOpen := map[string]string{unknown: "bank_only", rev: "ours_only", wdRev: "ours_only", amt2: "amount_mismatch",
			amt: "amount_mismatch", stuck: "overdue"}
		got := map[string]string{}
		for id, it := range open {
			got[id] = it.Class
		}
		if !maps.Equal(got, wantOpen) {
			t.Errorf("open items %v\nwant       %v", got, wantOpen)
		}
		closed := e.reconItems(t, "closed")
		if closed[lost].Class != "overdue" || closed[amt].Class != "overdue" {
			t.Errorf("the overdue items the run took over: %+v", closed)
		}
		idCheckLedger(t, e.env)
		e.checkCustody(t)

		// The day before holds the redated line: matched there, late.
		before := e.runRecon(t, opA, "CMB", start.AddDate(0, 0, -1).Format(time.DateOnly))
		if before.Classes["late"] != (reconTally{Lines: 1, Records: 1, Amount: "25.00"}) || before.Records != 0 ||
			before.Changes != 0 {
			t.Errorf("the day before: %+v", before)
		}

		// Again: nothing changes, and the run says so.
		again := e.runRecon(t, opB, "CMB", day)
		if again.Changes != 0 || again.Suspense != "0.00" || !maps.Equal(again.Classes, want) ||
			!strings.HasPrefix(again.Message, "nothing changed") {
			t.Errorf("second run %+v", again)
		}

		// Each item resolves only with a second operator.
		resolve := func(id string, body map[string]string) {
			t.Helper()
			var out struct {
				Approval struct {
					ApprovalID string `json:"approval_id"`
				} `json:"approval"`
			}
			if s := e.bearer(opA, "POST", "/v1/admin/recon/items/"+open[id].ItemID+"/resolve", body, &out); s != 201 {
				t.Fatalf("resolve %s: %d %+v", id, s, out)
			}
			var refused map[string]any
			if s := e.bearer(opA, "POST", "/v1/admin/approvals/"+out.Approval.ApprovalID+"/approve", nil, &refused); s != 403 {
				t.Fatalf("the proposer approving %s: %d %v", id, s, refused)
			}
			var approved map[string]any
			if s := e.bearer(opB, "POST", "/v1/admin/approvals/"+out.Approval.ApprovalID+"/approve", nil, &approved); s != 200 ||
				approved["state"] != "APPROVED" {
				t.Fatalf("approve %s: %d %v", id, s, approved)
			}
		}
		var item reconItemView
		if s := e.admin("GET", "/v1/admin/recon/items/"+open[amt].ItemID, nil, &item); s != 200 ||
			fmt.Sprint(item.Actions) != "[credit_user return_to_card write_off]" || item.Suspense != "450.00" {
			t.Errorf("item of the 450: %d %+v", s, item)
		}
		var bad map[string]any
		if s := e.bearer(opA, "POST", "/v1/admin/recon/items/"+open[rev].ItemID+"/resolve",
			map[string]string{"action": "credit_user"}, &bad); s != 400 {
			t.Errorf("credit_user for money the bank never had: %d %v", s, bad)
		}
		availBefore, _ := idBalance(t, e.env, u.idUser)
		resolve(unknown, map[string]string{"action": "credit_user", "user_id": other.id, "note": "zhao's transfer"})
		resolve(rev, map[string]string{"action": "write_off", "note": "the bank reversed it"})
		resolve(wdRev, map[string]string{"action": "credit_user", "note": "the payout never left"})
		resolve(amt2, map[string]string{"action": "return_to_card", "note": "20.00 taken too many"})
		resolve(amt, map[string]string{"action": "credit_user", "note": "the bank took 450.00 of the 500.00"})
		resolve(stuck, map[string]string{"action": "write_off", "note": "ICBC never received it"})
		if open := e.reconItems(t, "open"); len(open) != 0 {
			t.Errorf("still open: %+v", open)
		}
		availAfter, _ := idBalance(t, e.env, u.idUser)
		if got, want := amountFen(t, availAfter)-amountFen(t, availBefore), int64(30_00+450_00); got != want {
			t.Errorf("the wallet moved %s on resolution, want %s", yuan(got), yuan(want))
		}
		idCheckLedger(t, e.env)
		e.checkCustody(t)

		// CMB's breaker closes again; the returns to the card go out.
		e.settle(t, 5*time.Second, 10*time.Minute)
		// Back to the card: the second 90 and the 20 too many.
		if got, want := e.cardBalance(t, "CMB", u.cards["CMB"]), afterDiffs+90_00+20_00; got != want {
			t.Errorf("the card moved %s at the bank, want %s", yuan(got-cardBefore), yuan(want-cardBefore))
		}
		idCheckLedger(t, e.env)
		e.checkCustody(t)
		status, _, metrics := e.request("GET", "/metrics", nil, "")
		for _, line := range []string{"zhifu_custody_ok 1", "zhifu_custody_difference_fen 0", "zhifu_custody_shortfall_fen 0",
			"zhifu_recon_items_open 0"} {
			if status != 200 || !strings.Contains(string(metrics), "\n"+line+"\n") {
				t.Errorf("metrics (%d) lack %q", status, line)
			}
		}
	})
}

// TestReconCommandUsage: the command refuses what it cannot do, before
// asking the server anything.
func TestReconCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--bank", "CMB"},
		{"--date", "2010-11-11", "--file", "x.csv"},
		{"--date", "2010-11-11", "extra"},
		{"--nope"},
	} {
		var out, errOut bytes.Buffer
		if code := reconCommand(context.Background(), args, &out, &errOut, func(string) string { return "" }); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	code := reconCommand(context.Background(), []string{"--date", "2010-11-11", "--data", t.TempDir(), "--url", "http://127.0.0.1:1"},
		&out, &errOut, func(string) string { return "" })
	if code != 1 || !strings.Contains(errOut.String(), "no --admin-token") {
		t.Errorf("no token: exit %d, %s", code, errOut.String())
	}
}

func amountFen(t *testing.T, s string) int64 {
	t.Helper()
	a, err := zhifu.ParseAmount(s, "amount")
	if err != nil {
		t.Fatal(err)
	}
	return int64(a)
}

// checkCustody asks for the custody check and wants it clean.
func (e *chEnv) checkCustody(t *testing.T) {
	t.Helper()
	var c map[string]any
	if s := e.admin("GET", "/v1/admin/custody", nil, &c); s != 200 || c["ok"] != true || c["difference"] != "0.00" {
		t.Fatalf("custody: %d %v", s, c)
	}
}
