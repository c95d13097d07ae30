package report

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// Limits of the report.
const (
	// FailuresTopMax is how many of a bank's failure reasons the report
	// names, the most frequent first.
	FailuresTopMax = 5
	// monthsBackMax bounds how far back a report may be asked for: the
	// call records are kept 13 months (channel.CallRetentionMonths), the
	// transactions longer, and a few years is plenty for either.
	monthsBackMax = 120
	// DownCallsMin is how many calls, none of them successful, make a
	// minute count as down: one unlucky call in a quiet minute is not an
	// outage, while a bank that is down is probed every few seconds.
	DownCallsMin = 3
)

// china is the zone months are counted in, as the bills count days.
var china = time.FixedZone("UTC+8", 8*60*60)

// Kinds of bank transaction the report counts, in the report's order.
const (
	KindTopup       = "topup"
	KindPayout      = "payout"
	KindCardPayment = "card_payment"
	KindRefund      = "refund"
)

// Kinds lists the transaction kinds in the report's order.
var Kinds = []string{KindTopup, KindPayout, KindCardPayment, KindRefund}

// kindTitles name the kinds for people.
var kindTitles = map[string]string{KindTopup: "Top-ups", KindPayout: "Payouts", KindCardPayment: "Card payments",
	KindRefund: "Refunds"}

// Txns are one kind of a bank's month of transactions.
type Txns struct {
	Kind      string       `json:"kind"`
	Succeeded int64        `json:"succeeded"`
	Failed    int64        `json:"failed"`
	Open      int64        `json:"open"` // not final yet (queued or processing)
	Amount    zhifu.Amount `json:"-"`    // of the succeeded ones; "amount" in yuan in JSON
}

// MarshalJSON writes the amount as the API writes money: yuan, two decimals.
func (t Txns) MarshalJSON() ([]byte, error) {
	type plain Txns
	return json.Marshal(struct {
		plain
		Amount string `json:"amount"`
	}{plain(t), t.Amount.String()})
}

// Failure is one reason calls failed and how often.
type Failure struct {
	Outcome string `json:"outcome"` // refused, timeout or transport
	Code    string `json:"code,omitempty"`
	Count   int64  `json:"count"`
}

// Label is the failure as the report writes it: "refused SYSTEM_BUSY".
func (f Failure) Label() string {
	if f.Code == "" {
		return f.Outcome
	}
	return f.Outcome + " " + f.Code
}

// Day is one day's calls to a bank.
type Day struct {
	Day   int   `json:"day"` // of the month
	Calls int64 `json:"calls"`
	OK    int64 `json:"ok"`
}

// Rate is the day's success rate; 0 for a day without calls.
func (d Day) Rate() float64 { return rate(d.OK, d.Calls) }

// Bank is one bank's month.
type Bank struct {
	Bank string `json:"bank"`
	// Rank is 1 for the best bank: the highest success rate, then the
	// lowest p95 latency. Banks without calls rank last, in Banks order.
	Rank  int    `json:"rank"`
	Txns  []Txns `json:"txns"` // one per Kinds, in order
	Calls int64  `json:"calls"`
	OK    int64  `json:"ok"`
	// Calls counts the calls that asked the bank for service: every kind
	// but the polls of its maintenance notice, which CallsByKind counts.
	// CallsByKind counts the calls of each kind (debit, credit, inquiry…).
	CallsByKind map[string]int64 `json:"calls_by_kind"`
	// SuccessRate is OK/Calls, 0 without calls.
	SuccessRate float64 `json:"success_rate"`
	// Latency percentiles, nearest rank, in whole milliseconds.
	P50Ms    int64     `json:"p50_ms"`
	P95Ms    int64     `json:"p95_ms"`
	P99Ms    int64     `json:"p99_ms"`
	Failures []Failure `json:"failures"` // at most FailuresTopMax, most frequent first
	// FailedCalls counts every failed call, named in Failures or not.
	FailedCalls int64 `json:"failed_calls"`
	// BusiestMinute is the minute with the most calls (the earliest of
	// equals), and BusiestCalls their number.
	BusiestMinute time.Time `json:"busiest_minute"`
	BusiestCalls  int64     `json:"busiest_calls"`
	// DownMinutes counts the minutes in which the bank was called at
	// least DownCallsMin times and no call succeeded.
	DownMinutes int64 `json:"down_minutes"`
	Daily       []Day `json:"daily"` // every day of the month
}

// Month is the banks' report of one month.
type Month struct {
	Month string    `json:"month"` // YYYY-MM
	From  time.Time `json:"from"`  // the month in China: [From, To)
	To    time.Time `json:"to"`
	Banks []Bank    `json:"banks"` // in rank order
	// GeneratedAt is when the report was read.
	GeneratedAt time.Time `json:"generated_at"`
}

// Service reads reports out of a store.
type Service struct {
	store ledger.Store
	clock zhifu.Clock
}

// New returns the reports of st.
func New(st ledger.Store, clock zhifu.Clock) *Service {
	if clock == nil {
		clock = zhifu.SystemClock{}
	}
	return &Service{store: st, clock: clock}
}

// ParseMonth reads YYYY-MM as a month in China: [from, to).
func ParseMonth(month string) (from, to time.Time, err error) {
	t, perr := time.ParseInLocation("2006-01", month, china)
	if perr != nil || t.Format("2006-01") != month {
		return time.Time{}, time.Time{}, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "month",
			Message: "month must be a month written YYYY-MM"}
	}
	return t, t.AddDate(0, 1, 0), nil
}

// Banks builds the banks' report of month (YYYY-MM).
func (s *Service) Banks(ctx context.Context, monthName string) (*Month, error) {
	from, to, err := ParseMonth(monthName)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if from.Before(now.AddDate(0, -monthsBackMax, 0)) || from.After(now.AddDate(1, 0, 0)) {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "month",
			Message: fmt.Sprintf("month must be within %d months of today", monthsBackMax)}
	}
	r := &reading{from: from, to: to, banks: make(map[string]*Bank), latency: make(map[string]map[int64]int64)}
	q := s.store.Reader()
	var lo, hi int64
	if err := q.QueryRow(ctx, callSeqsSQL, from.UnixNano(), to.UnixNano()).Scan(&lo, &hi); err != nil {
		return nil, fmt.Errorf("report: call records: %w", err)
	}
	month := []any{from.UnixNano(), to.UnixNano()}
	calls := []any{lo, hi, from.UnixNano(), to.UnixNano()}
	for _, step := range []struct {
		what, sql string
		args      []any
		scan      func(ledger.Rows) error
	}{
		{"transactions", txnTotalsSQL, month, r.txnRow},
		{"calls", callOutcomesSQL, calls, r.outcomeRow},
		{"minutes", callMinutesSQL, calls, r.minuteRow},
	} {
		if err := each(ctx, q, step.sql, step.args, step.scan); err != nil {
			return nil, fmt.Errorf("report: %s: %w", step.what, err)
		}
	}
	return &Month{Month: monthName, From: from, To: to, Banks: r.finish(), GeneratedAt: now}, nil
}

// each runs query and hands every row to scan, one at a time.
func each(ctx context.Context, q ledger.Querier, query string, args []any, scan func(ledger.Rows) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// reading is a report being read: each query's rows fold into it.
type reading struct {
	from, to time.Time
	banks    map[string]*Bank
	failures map[string]map[Failure]int64 // bank → (outcome, code) → count
	latency  map[string]map[int64]int64   // bank → whole milliseconds → calls
}

func (r *reading) bank(name string) *Bank {
	b := r.banks[name]
	if b == nil {
		b = &Bank{Bank: name, CallsByKind: make(map[string]int64)}
		for _, k := range Kinds {
			b.Txns = append(b.Txns, Txns{Kind: k})
		}
		days := int(r.to.Sub(r.from).Hours()+12) / 24
		for d := range days {
			b.Daily = append(b.Daily, Day{Day: d + 1})
		}
		r.banks[name] = b
	}
	return b
}

// txnKind is the report's kind of a bank transaction.
func txnKind(kind, method string, paysTrade bool) string {
	switch {
	case kind == "topup" && paysTrade:
		return KindCardPayment
	case kind == "topup":
		return KindTopup
	case method == "refund":
		return KindRefund
	}
	return KindPayout
}

func (r *reading) txnRow(rows ledger.Rows) error {
	var bank, kind, method, status string
	var trade int
	var n, amount int64
	if err := rows.Scan(&bank, &kind, &method, &trade, &status, &n, &amount); err != nil {
		return err
	}
	b := r.bank(bank)
	i := slices.Index(Kinds, txnKind(kind, method, trade == 1))
	t := &b.Txns[i]
	switch status {
	case "SUCCESS":
		t.Succeeded += n
		t.Amount += zhifu.Amount(amount)
	case "FAILED":
		t.Failed += n
	default:
		t.Open += n
	}
	return nil
}

func (r *reading) outcomeRow(rows ledger.Rows) error {
	var bank, kind, outcome, code string
	var ms, n int64
	if err := rows.Scan(&bank, &kind, &outcome, &code, &ms, &n); err != nil {
		return err
	}
	b := r.bank(bank)
	b.CallsByKind[kind] += n
	if kind == "maintenance" {
		return nil // polls of the bank's notice, not service: counted by kind only
	}
	b.Calls += n
	if r.latency[bank] == nil {
		r.latency[bank] = make(map[int64]int64)
	}
	r.latency[bank][ms] += n
	if outcome == "ok" {
		b.OK += n
		return nil
	}
	b.FailedCalls += n
	if r.failures == nil {
		r.failures = make(map[string]map[Failure]int64)
	}
	if r.failures[bank] == nil {
		r.failures[bank] = make(map[Failure]int64)
	}
	r.failures[bank][Failure{Outcome: outcome, Code: code}] += n
	return nil
}

func (r *reading) minuteRow(rows ledger.Rows) error {
	var bank string
	var minute, calls, ok int64
	if err := rows.Scan(&bank, &minute, &calls, &ok); err != nil {
		return err
	}
	b := r.bank(bank)
	at := time.Unix(minute*60, 0).In(china)
	if calls > b.BusiestCalls || calls == b.BusiestCalls && at.Before(b.BusiestMinute) {
		b.BusiestMinute, b.BusiestCalls = at, calls
	}
	if ok == 0 && calls >= DownCallsMin {
		b.DownMinutes++
	}
	if d := at.Day() - 1; d >= 0 && d < len(b.Daily) {
		b.Daily[d].Calls += calls
		b.Daily[d].OK += ok
	}
	return nil
}

// percentiles sets b's latency percentiles from its histogram: the
// values at ranks ⌈p·N⌉, computed in integers so that 95% of 100 is 95.
func percentiles(b *Bank, hist map[int64]int64) {
	values := make([]int64, 0, len(hist))
	for ms := range hist {
		values = append(values, ms)
	}
	slices.Sort(values)
	var seen int64
	for _, ms := range values {
		before := seen
		seen += hist[ms]
		for _, p := range []struct {
			permille int64
			dst      *int64
		}{{500, &b.P50Ms}, {950, &b.P95Ms}, {990, &b.P99Ms}} {
			rank := (p.permille*b.Calls + 999) / 1000
			if before < rank && seen >= rank {
				*p.dst = ms
			}
		}
	}
}

// finish names each bank's top failures and ranks the banks.
func (r *reading) finish() []Bank {
	out := make([]Bank, 0, len(r.banks))
	for name, b := range r.banks {
		if b.Calls == 0 && !slices.ContainsFunc(b.Txns, func(t Txns) bool { return t.Succeeded+t.Failed+t.Open > 0 }) {
			continue // only polled for its maintenance notice: no business with the bank this month
		}
		for f, n := range r.failures[name] {
			f.Count = n
			b.Failures = append(b.Failures, f)
		}
		slices.SortFunc(b.Failures, func(x, y Failure) int {
			return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Label(), y.Label()))
		})
		if len(b.Failures) > FailuresTopMax {
			b.Failures = b.Failures[:FailuresTopMax]
		}
		b.SuccessRate = rate(b.OK, b.Calls)
		percentiles(b, r.latency[name])
		out = append(out, *b)
	}
	slices.SortFunc(out, func(x, y Bank) int {
		if (x.Calls == 0) != (y.Calls == 0) {
			if x.Calls == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(y.SuccessRate, x.SuccessRate), cmp.Compare(x.P95Ms, y.P95Ms),
			cmp.Compare(bankIndex(x.Bank), bankIndex(y.Bank)), cmp.Compare(x.Bank, y.Bank))
	})
	for i := range out {
		out[i].Rank = i + 1
	}
	return out
}

func bankIndex(name string) int {
	if i, ok := zhifu.BankIndex(name); ok {
		return i
	}
	return len(zhifu.Banks)
}

func rate(ok, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(ok) / float64(n)
}
