package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"zhifu"
	"zhifu/channel"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
	"zhifu/report"
)

var china = time.FixedZone("UTC+8", 8*60*60)

// month is the simulated month: March 2025 in China.
var (
	monthStart = time.Date(2025, 3, 1, 0, 0, 0, 0, china)
	monthEnd   = monthStart.AddDate(0, 1, 0)
	// CMB collapses for an hour on the 15th.
	outageFrom = time.Date(2025, 3, 15, 10, 0, 0, 0, china)
	outageTo   = outageFrom.Add(time.Hour)
)

// txnRow is a bank transaction as the test writes it.
type txnRow struct {
	id, kind, method, bank, tradeNo, status string
	amount                                  int64
	created                                 time.Time
}

// simulate makes a month of calls to three banks and their transactions,
// with CMB refusing every call for an hour, plus records just outside the
// month that the report must leave out.
func simulate(rng *rand.Rand, calls int) ([]channel.Call, []txnRow) {
	banks := []string{"ICBC", "CMB", "CCB"}
	medianMs := map[string]float64{"ICBC": 40, "CMB": 90, "CCB": 60}
	var out []channel.Call
	var txns []txnRow
	span := monthEnd.Sub(monthStart)
	for i := range calls {
		bank := banks[rng.IntN(len(banks))]
		at := monthStart.Add(time.Duration(rng.Int64N(int64(span))))
		lat := time.Duration(medianMs[bank]*(0.5+rng.ExpFloat64()*0.6)*1e6) + time.Duration(rng.IntN(1e6))
		c := channel.Call{Bank: bank, Kind: channel.CallDebit, TxnID: fmt.Sprintf("C%d", i), StartedAt: at,
			Latency: lat, Outcome: channel.CallOK}
		switch r := rng.Float64(); {
		case r < 0.2:
			c.Kind, c.TxnID = channel.CallInquiry, fmt.Sprintf("C%d", i-1)
		case r < 0.25:
			c.Kind, c.TxnID = channel.CallCredit, fmt.Sprintf("W%d", i)
		case r < 0.26:
			c.Kind, c.TxnID = channel.CallVerify, ""
		}
		switch r := rng.Float64(); {
		case r < 0.004:
			c.Outcome, c.Code = channel.CallTimeout, ""
		case r < 0.01:
			c.Outcome, c.Code = channel.CallRefused, bankapi503[rng.IntN(len(bankapi503))]
		case r < 0.02:
			c.Code = "INSUFFICIENT_FUNDS" // the bank working: a success for the report
		}
		if bank == "CMB" && !at.Before(outageFrom) && at.Before(outageTo) {
			c.Outcome, c.Code, c.Latency = channel.CallRefused, "BANK_UNAVAILABLE", time.Duration(rng.IntN(3e6))
		}
		out = append(out, c)
		if c.Kind == channel.CallDebit || c.Kind == channel.CallCredit {
			t := txnRow{id: c.TxnID, kind: "topup", method: "quick", bank: bank, status: "SUCCESS",
				amount: 100 + rng.Int64N(1_000_000), created: at}
			if c.Kind == channel.CallCredit {
				t.kind, t.method = "withdrawal", []string{"payout", "refund"}[rng.IntN(2)]
			} else if rng.IntN(4) == 0 {
				t.tradeNo = "T" + c.TxnID
			}
			if c.Outcome != channel.CallOK || c.Code != "" {
				t.status = "FAILED"
			} else if rng.IntN(50) == 0 {
				t.status = "PROCESSING"
			}
			txns = append(txns, t)
		}
	}
	// During the outage CMB is still probed every few seconds.
	for at := outageFrom; at.Before(outageTo); at = at.Add(7 * time.Second) {
		out = append(out, channel.Call{Bank: "CMB", Kind: channel.CallProbe, StartedAt: at,
			Latency: time.Millisecond, Outcome: channel.CallRefused, Code: "BANK_UNAVAILABLE"})
	}
	// Maintenance polls, of every bank: counted by kind only, and a bank
	// with nothing else is not in the report.
	for at := monthStart; at.Before(monthEnd); at = at.Add(6 * time.Hour) {
		for _, bank := range []string{"ICBC", "ABC"} {
			out = append(out, channel.Call{Bank: bank, Kind: channel.CallMaintenance, StartedAt: at,
				Latency: time.Minute, Outcome: channel.CallTimeout})
		}
	}
	// Outside the month: never counted.
	for _, at := range []time.Time{monthStart.Add(-time.Nanosecond), monthEnd} {
		out = append(out, channel.Call{Bank: "BOC", Kind: channel.CallDebit, TxnID: "X" + at.String(), StartedAt: at,
			Latency: time.Second, Outcome: channel.CallTimeout})
		txns = append(txns, txnRow{id: "X" + strconv.FormatInt(at.UnixNano(), 10), kind: "topup", method: "quick",
			bank: "BOC", status: "SUCCESS", amount: 5, created: at})
	}
	return out, txns
}

var bankapi503 = []string{"SYSTEM_BUSY", "SYSTEM_ERROR", "BANK_UNAVAILABLE"}

// write stores the records through the channel's own insert, in batches
// the size the call log writes, and the transactions as rows.
func write(t testing.TB, st ledger.Store, calls []channel.Call, txns []txnRow) {
	ctx := context.Background()
	for i := 0; i < len(calls); i += 1000 {
		batch := calls[i:min(i+1000, len(calls))]
		if err := st.Update(ctx, func(tx ledger.Tx) error { return channel.InsertCalls(ctx, tx, batch) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(txns); i += 500 {
		batch := txns[i:min(i+500, len(txns))]
		err := st.Update(ctx, func(tx ledger.Tx) error {
			for _, r := range batch {
				if _, err := tx.Exec(ctx, `INSERT INTO bank_txns (txn_id, kind, method, user_id, bank, amount,
					trade_no, status, stage, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					r.id, r.kind, r.method, "2088000000000001", r.bank, r.amount, r.tradeNo, r.status, "done",
					r.created.UnixNano(), r.created.UnixNano()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// expected is one bank's month computed straight from the raw records.
type expected struct {
	calls, ok, down, busiestCalls int64
	busiest                       time.Time
	p50, p95, p99                 int64
	failures                      map[string]int64
	byDay                         map[int][2]int64
	txns                          map[string][4]int64 // kind → succeeded, failed, open, amount
}

func expect(calls []channel.Call, txns []txnRow) map[string]*expected {
	out := make(map[string]*expected)
	get := func(b string) *expected {
		if out[b] == nil {
			out[b] = &expected{failures: map[string]int64{}, byDay: map[int][2]int64{}, txns: map[string][4]int64{}}
		}
		return out[b]
	}
	lat := make(map[string][]int64)
	minutes := make(map[string]map[int64][2]int64)
	for _, c := range calls {
		if c.StartedAt.Before(monthStart) || !c.StartedAt.Before(monthEnd) || c.Kind == channel.CallMaintenance {
			continue
		}
		e := get(c.Bank)
		e.calls++
		ok := c.Outcome == channel.CallOK
		if ok {
			e.ok++
		} else {
			label := c.Outcome
			if c.Code != "" {
				label += " " + c.Code
			}
			e.failures[label]++
		}
		lat[c.Bank] = append(lat[c.Bank], int64(c.Latency/time.Millisecond))
		m := c.StartedAt.Unix() / 60
		if minutes[c.Bank] == nil {
			minutes[c.Bank] = map[int64][2]int64{}
		}
		v := minutes[c.Bank][m]
		v[0]++
		d := e.byDay[c.StartedAt.In(china).Day()]
		d[0]++
		if ok {
			v[1]++
			d[1]++
		}
		minutes[c.Bank][m] = v
		e.byDay[c.StartedAt.In(china).Day()] = d
	}
	for b, ls := range lat {
		slices.Sort(ls)
		e := out[b]
		// Nearest rank: the ⌈p·n⌉-th smallest, p in percent.
		at := func(pct int) int64 { return ls[(pct*len(ls)+99)/100-1] }
		e.p50, e.p95, e.p99 = at(50), at(95), at(99)
	}
	for b, ms := range minutes {
		e := out[b]
		for m, v := range ms {
			at := time.Unix(m*60, 0)
			if v[1] == 0 && v[0] >= 3 {
				e.down++
			}
			if v[0] > e.busiestCalls || v[0] == e.busiestCalls && at.Before(e.busiest) {
				e.busiest, e.busiestCalls = at, v[0]
			}
		}
	}
	for _, r := range txns {
		if r.created.Before(monthStart) || !r.created.Before(monthEnd) {
			continue
		}
		kind := map[string]string{"quick": report.KindTopup, "payout": report.KindPayout, "refund": report.KindRefund}[r.method]
		if r.tradeNo != "" {
			kind = report.KindCardPayment
		}
		e := get(r.bank)
		v := e.txns[kind]
		switch r.status {
		case "SUCCESS":
			v[0]++
			v[3] += r.amount
		case "FAILED":
			v[1]++
		default:
			v[2]++
		}
		e.txns[kind] = v
	}
	return out
}

func TestBanksReport(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		st := open()
		rng := rand.New(rand.NewPCG(testkit.Seed(t), 1))
		calls, txns := simulate(rng, 20000)
		write(t, st, calls, txns)
		svc := report.New(st, testkit.NewClock(monthEnd.Add(24*time.Hour)))
		m, err := svc.Banks(context.Background(), "2025-03")
		if err != nil {
			t.Fatal(err)
		}
		checkMonth(t, m, expect(calls, txns))
		if icbc := bankOf(m, "ICBC"); icbc.CallsByKind["maintenance"] != 4*31 {
			t.Errorf("ICBC's maintenance polls: %v", icbc.CallsByKind)
		}
		if m.Banks[len(m.Banks)-1].Bank != "CMB" {
			t.Errorf("CMB, down for an hour, ranks %v", m.Banks)
		}
		cmb := bankOf(m, "CMB")
		if cmb.DownMinutes != 60 {
			t.Errorf("CMB down %d minutes, want the hour of the outage", cmb.DownMinutes)
		}
		if cmb.Failures[0].Label() != "refused BANK_UNAVAILABLE" {
			t.Errorf("CMB's top failure %+v", cmb.Failures)
		}
		var b bytes.Buffer
		if err := m.WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&b).ReadAll()
		if err != nil || len(recs) != 1+len(m.Banks) {
			t.Fatalf("csv: %v %d lines", err, len(recs))
		}
		for i, rec := range recs[1:] {
			want := m.Banks[i]
			if rec[2] != want.Bank || rec[3] != strconv.FormatInt(want.Calls, 10) || rec[5] != report.Percent(want.SuccessRate) {
				t.Errorf("csv line %v, bank %+v", rec, want)
			}
		}
		b.Reset()
		if err := m.WriteHTML(&b); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`<svg id="daily-chart"`, `<svg id="latency-chart"`, `data-bank="CMB"`} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("html lacks %s", want)
			}
		}
		if _, err := svc.Banks(context.Background(), "2025-3"); zhifu.ErrorCode(err) != zhifu.InvalidRequest {
			t.Errorf("month 2025-3: %v", err)
		}
	})
}

func bankOf(m *report.Month, name string) report.Bank {
	for _, b := range m.Banks {
		if b.Bank == name {
			return b
		}
	}
	return report.Bank{}
}

// checkMonth compares the report with the figures computed from the raw
// records.
func checkMonth(t *testing.T, m *report.Month, want map[string]*expected) {
	t.Helper()
	if len(m.Banks) != len(want) {
		t.Errorf("banks %d, want %d", len(m.Banks), len(want))
	}
	for i, b := range m.Banks {
		e := want[b.Bank]
		if e == nil {
			t.Errorf("bank %s not expected", b.Bank)
			continue
		}
		got := [...]int64{b.Calls, b.OK, b.DownMinutes, b.BusiestCalls, b.P50Ms, b.P95Ms, b.P99Ms}
		exp := [...]int64{e.calls, e.ok, e.down, e.busiestCalls, e.p50, e.p95, e.p99}
		if got != exp {
			t.Errorf("%s: calls, ok, down, busiest, p50, p95, p99 = %v, want %v", b.Bank, got, exp)
		}
		if !b.BusiestMinute.Equal(e.busiest) {
			t.Errorf("%s: busiest minute %v, want %v", b.Bank, b.BusiestMinute, e.busiest)
		}
		for _, f := range b.Failures {
			if e.failures[f.Label()] != f.Count {
				t.Errorf("%s: failure %s %d, want %d", b.Bank, f.Label(), f.Count, e.failures[f.Label()])
			}
		}
		for _, d := range b.Daily {
			if v := e.byDay[d.Day]; v != [2]int64{d.Calls, d.OK} {
				t.Errorf("%s day %d: %d/%d, want %v", b.Bank, d.Day, d.OK, d.Calls, v)
			}
		}
		for _, tx := range b.Txns {
			if v := e.txns[tx.Kind]; v != [4]int64{tx.Succeeded, tx.Failed, tx.Open, int64(tx.Amount)} {
				t.Errorf("%s %s: %+v, want %v", b.Bank, tx.Kind, tx, v)
			}
		}
		if i > 0 {
			prev := m.Banks[i-1]
			if prev.SuccessRate < b.SuccessRate || prev.SuccessRate == b.SuccessRate && prev.P95Ms > b.P95Ms {
				t.Errorf("rank %d %s (%v, %d ms) above %s (%v, %d ms)", prev.Rank, prev.Bank, prev.SuccessRate,
					prev.P95Ms, b.Bank, b.SuccessRate, b.P95Ms)
			}
		}
	}
}

// TestBanksReportMillion builds the report of a month of a million calls
// and reports the time and the memory it took; ZHIFU_TEST_REPORT_MILLION=1
// runs it (a minute or two of inserts).
func TestBanksReportMillion(t *testing.T) {
	if os.Getenv("ZHIFU_TEST_REPORT_MILLION") == "" {
		t.Skip("set ZHIFU_TEST_REPORT_MILLION=1 to run")
	}
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		st := open()
		rng := rand.New(rand.NewPCG(testkit.Seed(t), 1))
		calls, txns := simulate(rng, 1_000_000)
		write(t, st, calls, txns)
		want := expect(calls, txns)
		calls, txns = nil, nil
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		m, err := report.New(st, testkit.NewClock(monthEnd)).Banks(context.Background(), "2025-03")
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		checkMonth(t, m, want)
		t.Logf("a month of a million calls: report in %v, %d KiB allocated, %d allocations", took,
			(after.TotalAlloc-before.TotalAlloc)>>10, after.Mallocs-before.Mallocs)
	})
}
