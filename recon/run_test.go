package recon

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/banksim"
	"zhifu/channel"
	"zhifu/identity"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
)

func ln(id, ref, kind string, amount int64, status string, settled int64) bankapi.StatementLine {
	return bankapi.StatementLine{RequestID: id, BankTxnID: ref, Kind: kind, Amount: amount, Status: status,
		SettledAt: time.Unix(0, settled)}
}

// settledAt is an instant of the test day at hour: a run reads the
// platform's records by the instant it learnt their outcome.
func settledAt(hour int) int64 { return at(0, hour) }

// TestRunEveryClass reconciles a day with a difference of every class on
// both stores: every line and record lands in its class, the safe ones are
// repaired, the rest are in suspense as review items, a second run changes
// nothing, and the ledger and custody stay clean.
func TestRunEveryClass(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		r := newRig(t, open)
		ctx := context.Background()
		u, tok := r.user("lihua")
		r.fund(u, 1000_00)
		const ok, failed = bankapi.StatusSuccess, bankapi.StatusFailed
		const d, c = bankapi.KindDebit, bankapi.KindCredit
		S, F, P := "SUCCESS", "FAILED", "PROCESSING"
		r.seed(
			record{id: "TUmatch", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B1", amount: 100_00, settled: settledAt(10)},
			record{id: "WDmatch", kind: "withdrawal", status: S, user: u.UserID, token: tok, ref: "B2", amount: 50_00, settled: settledAt(10)},
			record{id: "TUproc", kind: "topup", status: P, user: u.UserID, token: tok, amount: 800_00},
			record{id: "TUfail", kind: "topup", status: F, user: u.UserID, token: tok, amount: 60_00, settled: settledAt(11)},
			record{id: "TUrev", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B6", amount: 40_00, settled: settledAt(12)},
			record{id: "TUgone", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B7", amount: 30_00, settled: settledAt(12)},
			record{id: "TUamt", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B8", amount: 200_00, settled: settledAt(13)},
			record{id: "TUdup", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B9", amount: 90_00, settled: settledAt(14)},
			record{id: "TUlate", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B11", amount: 25_00, settled: settledAt(1)},
			record{id: "TUold", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B12", amount: 15_00, settled: settledAt(2)},
			record{id: "TUstuck", kind: "topup", status: P, user: u.UserID, token: tok, amount: 10_00,
				deadline: rigStart().Add(-time.Hour)},
		)
		// The bank settled TUlate the evening before: on yesterday's
		// statement, not today's; its inquiry says so.
		if _, err := r.sim.Differ(ctx, "CMB", banksim.Difference{Kind: banksim.DifferAdd, RequestID: "TUlate",
			Amount: 25_00, CardToken: tok, At: time.Unix(0, at(-1, 23))}); err != nil {
			t.Fatal(err)
		}
		name := r.statement("cmb.csv", 5_000_000_00,
			ln("TUmatch", "B1", d, 100_00, ok, settledAt(10)),
			ln("WDmatch", "B2", c, 50_00, ok, settledAt(10)),
			ln("TUproc", "B3", d, 800_00, ok, settledAt(10)),
			ln("TUfail", "B4", d, 60_00, ok, settledAt(11)),
			ln("XXunknown", "B5", d, 70_00, ok, settledAt(11)),
			ln("TUrev", "B6", d, 40_00, failed, settledAt(12)),
			ln("TUamt", "B8", d, 220_00, ok, settledAt(13)),
			ln("TUdup", "B9", d, 90_00, ok, settledAt(14)),
			ln("TUdup", "B10", d, 90_00, ok, settledAt(15)),
			ln("TUold", "B12", d, 15_00, ok, at(-1, 23)),
		)
		wallet := zhifu.WalletAccountID(u.Num)
		walletBefore := r.balance(wallet)
		run, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: testDay, File: name, StartedBy: "OP1"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[Class]Tally{
			Matched:        {Lines: 3, Records: 3, Amount: 240_00},
			BankOnly:       {Lines: 3, Records: 2, Amount: 930_00},
			OursOnly:       {Lines: 1, Records: 2, Amount: 70_00},
			AmountMismatch: {Lines: 1, Records: 1, Amount: 220_00},
			Duplicate:      {Lines: 1, Amount: 90_00},
			Late:           {Lines: 1, Records: 2, Amount: 40_00},
		}
		if !maps.Equal(run.Summary.Classes, want) {
			t.Errorf("classes %+v\nwant    %+v", run.Summary.Classes, want)
		}
		if run.State != Done || run.LinesTotal != 10 || run.LinesDone != 10 || run.Records != 9 ||
			run.Summary.Repaired != 3 || run.Summary.Opened != 5 || run.Summary.Inquiries != 2 ||
			run.Summary.Suspense != 70_00-40_00-30_00+20_00 || run.Changes != 8 {
			t.Errorf("run %+v", run)
		}
		// The safe ones repaired: the 800 credited (as the channels would),
		// the failed top-up credited, the second debit on its way back.
		tu, _ := channel.LoadTxn(ctx, r.st.Reader(), "TUproc", false)
		if tu.Status != channel.StatusSuccess || tu.ResolvedBy != channel.ByRecon || tu.BankTxnID != "B3" {
			t.Errorf("TUproc: %+v", tu)
		}
		if got := r.balance(wallet) - walletBefore; got != 800_00+60_00 {
			t.Errorf("the wallet moved %d, want 860.00", got)
		}
		refund, _ := channel.LoadTxn(ctx, r.st.Reader(), zhifu.KeyedID("WX", "CMB", "line:B10"), false)
		if refund == nil || refund.Method != channel.MethodRefund || refund.Status != channel.StatusQueued ||
			refund.Amount != 90_00 || refund.CardToken != tok || refund.SourceTxn != "TUdup" {
			t.Errorf("refund payout of the second debit: %+v", refund)
		}
		if got := r.balance(zhifu.FrozenAccountID(u.Num)); got != 90_00 {
			t.Errorf("frozen %d, want the 90.00 on its way back to the card", got)
		}
		if got := r.balance(zhifu.SuspenseAccountID); got != 20_00 {
			t.Errorf("suspense %d, want 20.00 (70 unknown + 20 more taken - 40 - 30 never taken)", got)
		}
		items := r.items(Open)
		wantOpen := map[string]Class{"line:B5": BankOnly, "txn:TUrev": OursOnly, "txn:TUgone": OursOnly,
			"line:B8": AmountMismatch, "overdue:TUstuck": Overdue}
		if got := keys(items); !maps.Equal(got, wantOpen) {
			t.Errorf("open items %v, want %v", got, wantOpen)
		}
		if got := keys(r.items(Repaired)); !maps.Equal(got, map[string]Class{"line:B3": BankOnly, "line:B4": BankOnly,
			"line:B10": Duplicate}) {
			t.Errorf("repaired items %v", got)
		}
		r.checkLedger()

		// Again: nothing changes, and the run says so.
		again, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: testDay, File: name, StartedBy: "OP1"})
		if err != nil {
			t.Fatal(err)
		}
		if again.Changes != 0 || again.Summary.Suspense != 0 || !maps.Equal(again.Summary.Classes, want) {
			t.Errorf("second run: changes %d, suspense %d, classes %+v", again.Changes, again.Summary.Suspense, again.Summary.Classes)
		}
		if got := r.balance(wallet) - walletBefore; got != 860_00 {
			t.Errorf("after the second run the wallet moved %d", got)
		}
		r.checkLedger()
	})
}

func (r *rig) items(status string) []*Item {
	r.t.Helper()
	items, _, err := r.svc.ListItems(context.Background(), ItemFilter{Status: status, Limit: PageMax})
	if err != nil {
		r.t.Fatal(err)
	}
	return items
}

func keys(items []*Item) map[string]Class {
	out := map[string]Class{}
	for _, it := range items {
		out[it.Key] = it.Class
	}
	return out
}

// TestResolveNeedsASecondOperator: each open item resolves only when a
// second operator approves; its proposer is refused, and the money moves
// with the approval.
func TestResolveNeedsASecondOperator(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		r := newRig(t, open)
		ctx := context.Background()
		u, tok := r.user("wangfang")
		other, _ := r.user("zhaolei")
		r.fund(u, 1000_00)
		S := "SUCCESS"
		r.seed(
			record{id: "TUamt", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B8", amount: 200_00, settled: settledAt(13)},
			record{id: "TUrev", kind: "topup", status: S, user: u.UserID, token: tok, ref: "B6", amount: 40_00, settled: settledAt(12)},
			record{id: "TUstuck", kind: "topup", status: "PROCESSING", user: u.UserID, token: tok, amount: 10_00,
				deadline: rigStart().Add(-time.Hour)},
		)
		name := r.statement("cmb.csv", 0,
			ln("TUamt", "B8", bankapi.KindDebit, 220_00, bankapi.StatusSuccess, settledAt(13)),
			ln("TUrev", "B6", bankapi.KindDebit, 40_00, bankapi.StatusFailed, settledAt(12)),
			ln("XXunknown", "B5", bankapi.KindDebit, 70_00, bankapi.StatusSuccess, settledAt(11)),
		)
		if _, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: testDay, File: name, StartedBy: "OP1"}); err != nil {
			t.Fatal(err)
		}
		a, err := r.ids.CreateOperator(ctx, &identity.Root, "ops.a", "a long passphrase", "A")
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.ids.CreateOperator(ctx, &identity.Root, "ops.b", "a long passphrase", "B")
		if err != nil {
			t.Fatal(err)
		}
		item := func(key string) *Item {
			it, err := r.svc.GetItem(ctx, ItemID("CMB", key))
			if err != nil {
				t.Fatal(err)
			}
			return it
		}
		resolve := func(key string, res Resolution) {
			t.Helper()
			p, err := r.svc.Resolve(ctx, ItemID("CMB", key), res, a)
			if err != nil {
				t.Fatalf("propose %s: %v", key, err)
			}
			if _, err := r.appr.Approve(ctx, p.ID, a); zhifu.ErrorCode(err) != zhifu.Forbidden {
				t.Fatalf("the proposer approving %s: %v, want FORBIDDEN", key, err)
			}
			if it := item(key); it.Status != Open {
				t.Fatalf("%s is %s after a refused approval", key, it.Status)
			}
			if _, err := r.appr.Approve(ctx, p.ID, b); err != nil {
				t.Fatalf("approve %s: %v", key, err)
			}
			if it := item(key); it.Status != Resolved || it.Action != res.Action || it.Note != res.Note {
				t.Fatalf("%s after approval: %+v", key, it)
			}
		}
		wallet := zhifu.WalletAccountID(u.Num)
		before := r.balance(wallet)

		// A refusal: an action the item does not take, a missing user.
		if _, err := r.svc.Resolve(ctx, ItemID("CMB", "txn:TUrev"), Resolution{Action: CreditUser}, a); zhifu.ErrorCode(err) != zhifu.InvalidRequest {
			t.Errorf("credit_user on money the bank never had: %v", err)
		}
		if _, err := r.svc.Resolve(ctx, ItemID("CMB", "line:B5"), Resolution{Action: CreditUser}, a); zhifu.ErrorCode(err) != zhifu.InvalidRequest {
			t.Errorf("credit_user without knowing whose: %v", err)
		}

		resolve("line:B8", Resolution{Action: ReturnToCard, Note: "the bank took 20.00 more; back to the card"})
		refund, _ := channel.LoadTxn(ctx, r.st.Reader(), zhifu.KeyedID("WO", "CMB", ItemID("CMB", "line:B8")), false)
		if refund == nil || refund.Amount != 20_00 || refund.Status != channel.StatusQueued || refund.CardToken != tok {
			t.Errorf("the return of 20.00: %+v", refund)
		}
		resolve("line:B5", Resolution{Action: CreditUser, UserID: other.UserID, Note: "zhao lei's transfer"})
		if got := r.balance(zhifu.WalletAccountID(other.Num)); got != 70_00 {
			t.Errorf("zhao lei holds %d, want 70.00", got)
		}
		resolve("txn:TUrev", Resolution{Action: WriteOff, Note: "lost"})
		resolve("overdue:TUstuck", Resolution{Action: CreditUser, Note: "the bank confirmed it by phone"})
		stuck, _ := channel.LoadTxn(ctx, r.st.Reader(), "TUstuck", false)
		if stuck.Status != channel.StatusSuccess || stuck.ResolvedBy != channel.ByRecon {
			t.Errorf("TUstuck: %+v", stuck)
		}
		if got := r.balance(wallet) - before; got != 10_00 {
			t.Errorf("the wallet moved %d, want the 10.00 of the overdue top-up", got)
		}
		if got := r.balance(zhifu.SuspenseAccountID); got != 0 {
			t.Errorf("suspense %d after every item was resolved", got)
		}
		if got := r.balance(zhifu.OwnFundsAccountID); got != -40_00 {
			t.Errorf("own funds %d, want the 40.00 written off", got)
		}
		if open := r.items(Open); len(open) != 0 {
			t.Errorf("still open: %v", keys(open))
		}
		// Resolved is resolved: proposing again is refused.
		if _, err := r.svc.Resolve(ctx, ItemID("CMB", "line:B8"), Resolution{Action: WriteOff}, a); zhifu.ErrorCode(err) != zhifu.ContextInconsistent {
			t.Errorf("resolving a resolved item: %v", err)
		}
		rep, err := ledger.Check(ctx, r.st)
		if err != nil || !rep.OK {
			t.Fatalf("ledger check: %+v %v", rep, err)
		}
		// Written off, the 40.00 the bank never had is the platform's loss:
		// bank funds no longer cover customer funds, and custody says so,
		// in the log at error and in what the metrics read.
		var logs testkit.Buffer
		r.svc.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c, err := r.svc.CheckCustody(ctx, false)
		if err != nil || c.OK || c.Shortfall != 40_00 || c.Difference != 0 {
			t.Fatalf("custody: %+v %v", c, err)
		}
		if !strings.Contains(logs.String(), `level=ERROR msg="recon: custody break"`) || !strings.Contains(logs.String(), "shortfall_fen=4000") {
			t.Errorf("the break was not logged at error: %s", logs.String())
		}
		if last := r.svc.LastCustody(); last != c {
			t.Errorf("the metrics read %+v", last)
		}
		if !slices.ContainsFunc(c.Explain, func(s string) bool { return s == "platform account 102 (code 31) is at -40.00" }) {
			t.Errorf("custody does not name own funds: %q", c.Explain)
		}
	})
}

// TestRunsOfOneDayExclude: while a run holds a bank's day, another is
// refused, here and on a second node; a lease its node left behind
// (another node's, once it expired; this node's own previous process's at
// once) is taken over and its run marked INTERRUPTED.
func TestRunsOfOneDayExclude(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		r := newRig(t, open)
		ctx := context.Background()
		name := r.statement("cmb.csv", 0)
		req := Request{Bank: "CMB", Day: testDay, File: name, StartedBy: "OP1"}
		held, err := r.svc.begin(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Reconcile(ctx, req); zhifu.ErrorCode(err) != zhifu.ContextInconsistent {
			t.Fatalf("a second run on this node: %v", err)
		}
		node2, err := New(Config{Store: r.st, Batcher: r.b, Clock: r.clock, Channels: r.ch, Node: "node-2",
			TempDir: r.svc.cfg.TempDir, FilesDir: r.svc.cfg.FilesDir, PublishDelay: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := node2.Reconcile(ctx, req); zhifu.ErrorCode(err) != zhifu.ContextInconsistent {
			t.Fatalf("a second run on another node: %v", err)
		}
		// The first node's process dies holding the lease: the next
		// process of the same node takes the day at once.
		restarted, err := New(Config{Store: r.st, Batcher: r.b, Clock: r.clock, Channels: r.ch, Node: "node-test",
			TempDir: r.svc.cfg.TempDir, FilesDir: r.svc.cfg.FilesDir, PublishDelay: -1})
		if err != nil {
			t.Fatal(err)
		}
		run, err := restarted.Reconcile(ctx, req)
		if err != nil || run.State != Done {
			t.Fatalf("the restarted node's run: %+v %v", run, err)
		}
		old, err := r.svc.GetRun(ctx, held.RunID)
		if err != nil || old.State != Interrupted {
			t.Fatalf("the dead process's run: %+v %v", old, err)
		}
		// Another node's lease is respected until it expires.
		held2, err := node2.begin(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := restarted.Reconcile(ctx, req); zhifu.ErrorCode(err) != zhifu.ContextInconsistent {
			t.Fatalf("a run while another node holds the day: %v", err)
		}
		r.clock.Advance(leaseTTL)
		if run, err := restarted.Reconcile(ctx, req); err != nil || run.State != Done {
			t.Fatalf("a run after the other node's lease ran out: %+v %v", run, err)
		}
		if old, _ := r.svc.GetRun(ctx, held2.RunID); old.State != Interrupted {
			t.Errorf("the expired run: %s", old.State)
		}
	})
}

// TestStatementMustAddUp: a statement whose lines do not make its closing
// balance, or that is cut short, is refused and nothing is moved.
func TestStatementMustAddUp(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		r := newRig(t, open)
		ctx := context.Background()
		name := r.statement("cmb.csv", 100, ln("XX1", "B1", bankapi.KindDebit, 70_00, bankapi.StatusSuccess, settledAt(10)))
		path := r.svc.cfg.FilesDir + "/" + name
		b := must(readFile(path))
		// Change the closing balance.
		bad := replaceLast(b, "7100", "7000")
		writeFile(t, r.svc.cfg.FilesDir+"/bad.csv", bad)
		run, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: testDay, File: "bad.csv", StartedBy: "OP1"})
		if err == nil || run.State != Failed {
			t.Fatalf("a statement that does not add up: %+v %v", run, err)
		}
		cut := b[:len(b)-len("CLOSING_BALANCE,,,7100,,2010-11-12T00:00:00+08:00\n")]
		writeFile(t, r.svc.cfg.FilesDir+"/cut.csv", cut)
		if run, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: testDay, File: "cut.csv", StartedBy: "OP1"}); err == nil ||
			run.State != Failed {
			t.Fatalf("a statement cut short: %+v %v", run, err)
		}
		if items := r.items(""); len(items) != 0 {
			t.Errorf("items made: %v", keys(items))
		}
		if got := r.balance(zhifu.SuspenseAccountID); got != 0 {
			t.Errorf("suspense %d", got)
		}
		for _, f := range []string{"../x.csv", ".hidden", "a b", "missing.csv"} {
			if _, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: testDay, File: f}); zhifu.ErrorCode(err) != zhifu.InvalidRequest {
				t.Errorf("file %q: %v", f, err)
			}
		}
		for _, d := range []string{"2010-11-31", "2010-1-1", "", "yesterday"} {
			if _, err := r.svc.Reconcile(ctx, Request{Bank: "CMB", Day: d, File: name}); zhifu.ErrorCode(err) != zhifu.InvalidRequest {
				t.Errorf("date %q: %v", d, err)
			}
		}
		if _, err := r.svc.Reconcile(ctx, Request{Bank: "HSBC", Day: testDay, File: name}); zhifu.ErrorCode(err) != zhifu.InvalidRequest {
			t.Errorf("an unknown bank: %v", err)
		}
	})
}

func must(b []byte, err error) string {
	if err != nil {
		panic(err)
	}
	return string(b)
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceLast replaces the last old in s by new.
func replaceLast(s, old, new string) string {
	i := strings.LastIndex(s, old)
	if i < 0 {
		panic("no " + old)
	}
	return s[:i] + new + s[i+len(old):]
}

// TestScheduleRunsEachDayOnce: the scheduler reconciles each bank's day
// once its statement is published, moves on in the run's own last
// transaction, and after days without running catches up day by day,
// skipping none and running none twice.
func TestScheduleRunsEachDayOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		r := newRig(t, open)
		ctx := context.Background()
		sched, err := New(Config{Store: r.st, Batcher: r.b, Clock: r.clock, Channels: r.ch, Node: "node-test",
			TempDir: r.svc.cfg.TempDir, FilesDir: r.svc.cfg.FilesDir, PublishDelay: 2 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := sched.ensureSchedule(ctx); err != nil {
			t.Fatal(err)
		}
		// due runs what is due now, to the end, and says what ran.
		seen := map[string]bool{}
		due := func() []string {
			t.Helper()
			for {
				before := sched.Ran()
				sched.runDue(ctx)
				sched.runs.Wait()
				if sched.Ran() == before {
					break
				}
			}
			runs, _, err := sched.ListRuns(ctx, RunFilter{Limit: PageMax})
			if err != nil {
				t.Fatal(err)
			}
			var fresh []string
			days := map[string]bool{}
			for _, run := range runs {
				x := run.Bank + " " + run.Day
				if run.State != Done || run.StartedBy != Scheduler || days[x] {
					t.Fatalf("scheduled run (twice?): %+v", run)
				}
				days[x] = true
				if !seen[x] {
					seen[x] = true
					fresh = append(fresh, x)
				}
			}
			slices.Sort(fresh)
			return fresh
		}
		if got := due(); len(got) != 0 {
			t.Fatalf("ran before the day ended: %v", got)
		}
		// 01:59 the next day: not published yet. 02:00: every bank's day.
		r.clock.Set(time.Unix(0, at(1, 2)).Add(-time.Minute))
		if got := due(); len(got) != 0 {
			t.Fatalf("ran before the statements were published: %v", got)
		}
		r.clock.Advance(time.Minute)
		got := due()
		if len(got) != len(r.ch.Banks()) || !slices.Contains(got, "CMB "+testDay) {
			t.Fatalf("at 02:00: %v", got)
		}
		if again := due(); len(again) != 0 {
			t.Fatalf("ran again: %v", again)
		}
		// Three days later (the server was down): the three days missed,
		// in order, once each.
		r.clock.Set(time.Unix(0, at(4, 3)))
		got = due()
		var cmb []string
		for _, g := range got {
			if strings.HasPrefix(g, "CMB ") {
				cmb = append(cmb, g)
			}
		}
		if want := []string{"CMB 2010-11-12", "CMB 2010-11-13", "CMB 2010-11-14"}; !slices.Equal(cmb, want) ||
			len(got) != 3*len(r.ch.Banks()) {
			t.Fatalf("catching up: CMB %v, all %d", cmb, len(got))
		}
	})
}
