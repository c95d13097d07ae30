package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/banksim"
	"zhifu/ledger"
)

// reconCrashLines is how many lines of requests nobody asked for pad the
// statement, each a review item with its transfer into suspense: enough
// for the run to be killed in the middle of its repairs.
const reconCrashLines = 6000

// TestReconCrash kills the platform (SIGKILL, a child process) in the
// middle of a run whose statement holds a repair of each kind among
// thousands of review items, and runs the day again on the restarted
// platform: the rerun takes the day over at once (the same node), marks
// the dead run INTERRUPTED, makes exactly the changes the dead run had not
// committed, and nothing is repaired twice: one item and one transfer per
// difference, the suspense account holding exactly their sum, the failed
// top-up credited once, the second debit returned once. A third run
// changes nothing; the ledger audit and custody are clean.
func TestReconCrash(t *testing.T) {
	dir := t.TempDir()
	rig := &crashRig{dir: dir, db: filepath.Join(dir, "zhifu.db"), adminToken: "recon-admin-token",
		controlToken: "recon-control-token", addr: crashFreeAddr(t)}
	rig.startBanks(t)
	rig.serve(t)
	defer rig.logErrors(t)
	cl := &http.Client{Timeout: time.Minute}
	t.Cleanup(func() {
		cl.CloseIdleConnections()
		idClient.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	})
	e := &chEnv{env: &env{t: t, url: rig.p.url, token: rig.adminToken, clock: &manualClock{now: time.Now()}}, cl: cl}
	ctx := context.Background()
	cc := banksim.NewControlClient(rig.banksURL, rig.controlToken, nil)
	users := e.newUsers(t, "kc", 2, []string{"CMB"}, "1000.00")
	u := users[0]

	// The day's traffic, decided at once by a healthy bank.
	topup := func(fen int64) string {
		id := e.txn(t, u, "topup", "CMB", fen)
		e.waitTxn(t, u, id, "SUCCESS", "FAILED")
		return id
	}
	dup, rev, amt := topup(90_00), topup(40_00), topup(200_00)
	if err := cc.SetScenario(ctx, "CMB", banksim.Scenario{FailureRate: 1}); err != nil {
		t.Fatal(err)
	}
	failed := topup(60_00)
	if err := cc.SetScenario(ctx, "CMB", banksim.Scenario{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []banksim.Difference{
		{Kind: banksim.DifferRepeat, RequestID: dup},
		{Kind: banksim.DifferFlip, RequestID: rev},
		{Kind: banksim.DifferFlip, RequestID: failed},
		{Kind: banksim.DifferAmount, RequestID: amt, Amount: 220_00},
	} {
		if _, err := cc.Differ(ctx, "CMB", d); err != nil {
			t.Fatal(err)
		}
	}

	// The bank's statement of today, padded with lines of requests nobody
	// asked for, as a file the bank sent.
	day := time.Now().In(bankapi.Beijing).Format(time.DateOnly)
	name, padded := rig.paddedStatement(t, day, reconCrashLines)
	var run reconRunView
	if s := e.admin("POST", "/v1/admin/recon/runs", map[string]string{"bank": "CMB", "date": day, "file": name}, &run); s != 202 {
		t.Fatalf("start: %d %+v", s, run)
	}
	// Killed once its repairs are well under way.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var now reconRunView
		if s := e.admin("GET", "/v1/admin/recon/runs/"+run.RunID, nil, &now); s != 200 {
			t.Fatalf("run: %d", s)
		}
		if now.State != "RUNNING" {
			t.Fatalf("the run ended before the kill: %+v", now)
		}
		if now.LinesTotal > 0 && now.LinesDone > now.LinesTotal/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not get going: %+v", now)
		}
	}
	rig.kill(t)
	before := rig.reconItemsAtKill(t)
	t.Logf("SIGKILL with %d of the %d review items committed", before, reconCrashLines+4)
	if before == 0 || before >= reconCrashLines+4 {
		t.Fatalf("the kill was not in the middle of the run: %d items", before)
	}
	rig.serve(t)
	e.url = rig.p.url

	rerun := e.runRecon(t, rig.adminToken, "CMB", day, "--data", dir, "--file", filepath.Join(dir, reconFilesDir, name))
	if rerun.Changes != int64(reconCrashLines+4-before) {
		t.Errorf("the rerun made %d changes, want the %d the killed run had not committed", rerun.Changes,
			reconCrashLines+4-before)
	}
	var dead reconRunView
	if s := e.admin("GET", "/v1/admin/recon/runs/"+run.RunID, nil, &dead); s != 200 || dead.State != "INTERRUPTED" {
		t.Errorf("the killed run: %d %+v", s, dead)
	}
	want := map[string]reconTally{
		"matched":         {Lines: 1, Records: 1, Amount: "90.00"},
		"bank_only":       {Lines: reconCrashLines + 1, Records: 1, Amount: yuan(padded + 60_00)},
		"ours_only":       {Lines: 1, Records: 1, Amount: "40.00"},
		"amount_mismatch": {Lines: 1, Records: 1, Amount: "220.00"},
		"duplicate":       {Lines: 1, Amount: "90.00"},
		"late":            {},
	}
	for c := range want {
		if w := want[c]; w.Amount == "" {
			w.Amount = "0.00"
			want[c] = w
		}
	}
	// The second debit's refund payout, if the restarted platform paid it
	// before the rerun read the day, is a record the file (made before)
	// does not show, and the bank's inquiry puts it in late.
	if l := rerun.Classes["late"]; l == (reconTally{Records: 1, Amount: "90.00"}) {
		want["late"] = l
	}
	if fmt.Sprint(rerun.Classes) != fmt.Sprint(want) {
		t.Errorf("classes %+v\nwant    %+v", rerun.Classes, want)
	}
	third := e.runRecon(t, rig.adminToken, "CMB", day, "--data", dir, "--file", filepath.Join(dir, reconFilesDir, name))
	if third.Changes != 0 {
		t.Errorf("a third run made %d changes", third.Changes)
	}
	// The returned debit goes out; then everything is final.
	for deadline := time.Now().Add(time.Minute); e.openPayouts(t, u) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bank transactions still open a minute after the run")
		}
	}
	idCheckLedger(t, e.env)
	e.checkCustody(t)

	// Read from the stopped platform's own database: nothing twice.
	if code := rig.p.stop(t); code != 0 {
		t.Errorf("zhifu serve exited %d after SIGTERM", code)
	}
	if code := rig.banks.stop(t); code != 0 {
		t.Errorf("zhifu banksim exited %d after SIGTERM", code)
	}
	st, err := openStore(ctx, "sqlite://"+rig.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var items, open, repaired, suspenseSum, transfers int64
	if err := st.Reader().QueryRow(ctx, `SELECT count(*), coalesce(sum(CASE WHEN status = 'OPEN' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN status = 'REPAIRED' THEN 1 ELSE 0 END), 0), coalesce(sum(suspense), 0) FROM recon_items`).Scan(
		&items, &open, &repaired, &suspenseSum); err != nil {
		t.Fatal(err)
	}
	if err := st.Reader().QueryRow(ctx, `SELECT count(*) FROM transfers WHERE id LIKE 'rc:%'`).Scan(&transfers); err != nil {
		t.Fatal(err)
	}
	wantSuspense := padded - 40_00 + 20_00
	if items != reconCrashLines+4 || open != reconCrashLines+2 || repaired != 2 || suspenseSum != wantSuspense ||
		transfers != reconCrashLines+3 {
		t.Errorf("items %d (open %d, repaired %d), their suspense %s, reconciliation transfers %d; want %d (%d, 2), %s, %d",
			items, open, repaired, yuan(suspenseSum), transfers, reconCrashLines+4, reconCrashLines+2, yuan(wantSuspense),
			reconCrashLines+3)
	}
	accts, err := st.LookupAccounts(ctx, []int64{zhifu.SuspenseAccountID})
	if err != nil || len(accts) != 1 || accts[0].Balance() != wantSuspense {
		t.Errorf("the suspense account: %+v %v, want %s", accts, err, yuan(wantSuspense))
	}
	var returns int64
	if err := st.Reader().QueryRow(ctx, `SELECT count(*) FROM bank_txns WHERE method = 'refund' AND source_txn = ?`,
		dup).Scan(&returns); err != nil || returns != 1 {
		t.Errorf("refund payouts of the second debit: %d %v", returns, err)
	}
	rep, err := ledger.Check(ctx, st)
	if err != nil || !rep.OK {
		t.Errorf("ledger check: %+v %v", rep, err)
	}
	sim, err := banksim.New(banksim.Config{DBPath: rig.banksDB, Secrets: crashSecretMap(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var token string
	if err := st.Reader().QueryRow(ctx, `SELECT card_token FROM cards WHERE card_id = ?`, u.cards["CMB"]).Scan(&token); err != nil {
		t.Fatal(err)
	}
	bal, _, err := sim.CardBalance("CMB", token)
	if err != nil {
		t.Fatal(err)
	}
	// Charged 90 (once, net), 220 and the failed 60; the reversed 40 not.
	if got, want := bal-banksim.StartingBalanceDefault, -int64(90_00+220_00+60_00); got != want {
		t.Errorf("the card moved %s at the bank, want %s", yuan(got), yuan(want))
	}
}

// waitTxn waits until u's top-up id is in one of the statuses.
func (e *chEnv) waitTxn(t *testing.T, u *chUser, id string, statuses ...string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var tu map[string]any
		if s := e.bearer(u.token, "GET", "/v1/topups/"+id, nil, &tu); s == 200 {
			for _, st := range statuses {
				if tu["status"] == st {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("top-up %s: %v", id, tu)
		}
	}
}

// openPayouts counts u's withdrawals (refund payouts among them) not final.
func (e *chEnv) openPayouts(t *testing.T, u *chUser) int {
	t.Helper()
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if s := e.bearer(u.token, "GET", "/v1/withdrawals?limit=100", nil, &list); s != 200 {
		t.Fatalf("withdrawals: %d", s)
	}
	open := 0
	for _, w := range list.Data {
		if w["status"] != "SUCCESS" && w["status"] != "FAILED" {
			open++
		}
	}
	return open
}

// paddedStatement writes today's statement of CMB, as the bank has it,
// with n lines of requests nobody asked for added (debits of 0.01 to 10.00),
// into the platform's statements folder, and returns its name and the
// added lines' sum.
func (r *crashRig) paddedStatement(t *testing.T, day string, n int) (string, int64) {
	t.Helper()
	secrets := crashSecretMap(t)
	c := bankapi.NewClient(r.banksURL, "CMB", secrets["CMB"], nil)
	st, err := c.Statement(context.Background(), day)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.dir, reconFilesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	name := "cmb-" + day + ".csv"
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := bankapi.NewStatementWriter(bw)
	if err := w.Open(st.Opening, st.OpeningAt); err != nil {
		t.Fatal(err)
	}
	bal := st.Opening
	for _, l := range st.Lines {
		if err := w.Line(l); err != nil {
			t.Fatal(err)
		}
		if l.Status == bankapi.StatusSuccess {
			bal += map[string]int64{bankapi.KindDebit: l.Amount, bankapi.KindCredit: -l.Amount}[l.Kind]
		}
	}
	var padded int64
	at := st.OpeningAt.Add(time.Hour)
	for i := range n {
		amount := int64(i%1000 + 1)
		padded += amount
		// Half sort before the platform's own ids, half after, so that
		// the repairs fall among the padding.
		prefix := [2]string{"AK", "XK"}[i%2]
		if err := w.Line(bankapi.StatementLine{RequestID: fmt.Sprintf("%s%08d", prefix, i), BankTxnID: fmt.Sprintf("%sB%08d", prefix, i),
			Kind: bankapi.KindDebit, Amount: amount, Status: bankapi.StatusSuccess, SettledAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(bal+padded, st.ClosingAt); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, reconFilesDir, name), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return name, padded
}

// reconItemsAtKill counts the review items the killed process committed,
// in a copy of its database (the next start recovers the database itself).
func (r *crashRig) reconItemsAtKill(t *testing.T) int {
	t.Helper()
	cp := filepath.Join(r.dir, "recon-kill")
	if err := os.Mkdir(cp, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(cp)
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(r.db + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err == nil {
			if err := os.WriteFile(filepath.Join(cp, "zhifu.db"+suffix), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := openStore(context.Background(), "sqlite://"+filepath.Join(cp, "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int64
	if err := st.Reader().QueryRow(context.Background(), `SELECT count(*) FROM recon_items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int(n)
}
