package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// minuteLayout writes a minute in China time.
const minuteLayout = "2006-01-02 15:04"

// Percent writes a rate as a percentage with two decimals: "99.87".
func Percent(r float64) string { return strconv.FormatFloat(100*r, 'f', 2, 64) }

// csvHeader names the CSV's columns: one line per bank, in rank order.
func csvHeader() []string {
	h := []string{"month", "rank", "bank", "calls", "calls_ok", "success_rate_percent", "p50_ms", "p95_ms", "p99_ms",
		"down_minutes", "busiest_minute", "busiest_minute_calls"}
	for _, k := range Kinds {
		h = append(h, k+"_succeeded", k+"_failed", k+"_open", k+"_amount")
	}
	return append(h, "failed_calls", "top_failures")
}

// WriteCSV writes the report as CSV, one line per bank in rank order.
func (m *Month) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader()); err != nil {
		return err
	}
	for _, b := range m.Banks {
		rec := []string{m.Month, strconv.Itoa(b.Rank), b.Bank, itoa(b.Calls), itoa(b.OK), Percent(b.SuccessRate),
			itoa(b.P50Ms), itoa(b.P95Ms), itoa(b.P99Ms), itoa(b.DownMinutes), busiest(b), itoa(b.BusiestCalls)}
		for _, t := range b.Txns {
			rec = append(rec, itoa(t.Succeeded), itoa(t.Failed), itoa(t.Open), t.Amount.String())
		}
		fs := make([]string, len(b.Failures))
		for i, f := range b.Failures {
			fs[i] = fmt.Sprintf("%s=%d", f.Label(), f.Count)
		}
		rec = append(rec, itoa(b.FailedCalls), strings.Join(fs, "; "))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the report as one JSON object.
func (m *Month) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}

func busiest(b Bank) string {
	if b.BusiestCalls == 0 {
		return ""
	}
	return b.BusiestMinute.In(china).Format(minuteLayout)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// WriteText writes the report as aligned tables for a terminal: one line
// per bank in rank order, then each bank's transactions and money by kind.
func (m *Month) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Banks' report %s (%s to %s, China time)\n\n", m.Month, m.From.Format("2006-01-02"),
		m.To.AddDate(0, 0, -1).Format("2006-01-02"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "rank\tbank\tcalls\tsuccess\tp50\tp95\tp99\tdown\tbusiest minute\ttop failure")
	for _, b := range m.Banks {
		top := "none"
		if len(b.Failures) > 0 {
			top = fmt.Sprintf("%s (%d)", b.Failures[0].Label(), b.Failures[0].Count)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s%%\t%d ms\t%d ms\t%d ms\t%d min\t%s (%d calls)\t%s\n", b.Rank, b.Bank, b.Calls,
			Percent(b.SuccessRate), b.P50Ms, b.P95Ms, b.P99Ms, b.DownMinutes, busiest(b), b.BusiestCalls, top)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "bank\t")
	for _, k := range Kinds {
		fmt.Fprintf(tw, "%s ok/failed\tyuan\t", strings.ToLower(kindTitles[k]))
	}
	fmt.Fprintln(tw)
	for _, b := range m.Banks {
		fmt.Fprintf(tw, "%s\t", b.Bank)
		for _, t := range b.Txns {
			fmt.Fprintf(tw, "%d/%d\t%s\t", t.Succeeded, t.Failed, t.Amount)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
