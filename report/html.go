package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// CSP is the Content-Security-Policy the HTML report is written for: it
// loads nothing, runs no script, and its only styles are its own inline
// ones.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

// bankColors tell the banks apart in the charts, in zhifu.Banks order;
// chosen to stay distinct for the common kinds of colour blindness.
var bankColors = []string{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#555555"}

func colorOf(bank string) string { return bankColors[min(bankIndex(bank), len(bankColors)-1)] }

// Chart geometry, in SVG user units.
const (
	chartW, chartH                           = 920, 300
	chartLeft, chartRight, chartTop, chartBt = 56, 110, 16, 36
	barH, barGap, barGroupGap                = 14, 3, 14
)

// WriteHTML writes the report as one self-contained page.
func (m *Month) WriteHTML(w io.Writer) error {
	return pageTmpl.Execute(w, m.view())
}

type pageView struct {
	*Month
	Title, Period  string
	Generated      string
	Rows           []rowView
	Daily          lineChart
	Latency        barChart
	KindTitles     []string
	Kinds          []string
	HasCalls       bool
	WorstDownBank  string
	WorstDownCount int64
}

type rowView struct {
	Bank
	Color, Rate, Busiest string
	RateWidth            float64 // of the inline bar, 0–100
	TopFailure           string
	Txns                 []txnView
}

type txnView struct {
	Txns
	Title, Amount string
}

func (m *Month) view() pageView {
	v := pageView{Month: m, Title: "Banks' monthly report " + m.Month,
		Period:    m.From.Format("2006-01-02") + " to " + m.To.AddDate(0, 0, -1).Format("2006-01-02") + " (China time, UTC+8)",
		Generated: m.GeneratedAt.In(china).Format("2006-01-02 15:04:05"), Kinds: Kinds}
	for _, k := range Kinds {
		v.KindTitles = append(v.KindTitles, kindTitles[k])
	}
	for _, b := range m.Banks {
		r := rowView{Bank: b, Color: colorOf(b.Bank), Rate: Percent(b.SuccessRate), Busiest: busiest(b),
			RateWidth: math.Round(1000*b.SuccessRate) / 10}
		if len(b.Failures) > 0 {
			r.TopFailure = fmt.Sprintf("%s (%d)", b.Failures[0].Label(), b.Failures[0].Count)
		}
		for _, t := range b.Txns {
			r.Txns = append(r.Txns, txnView{Txns: t, Title: kindTitles[t.Kind], Amount: grouped(t.Amount.String())})
		}
		if b.Calls > 0 {
			v.HasCalls = true
		}
		if b.DownMinutes > v.WorstDownCount {
			v.WorstDownBank, v.WorstDownCount = b.Bank, b.DownMinutes
		}
		v.Rows = append(v.Rows, r)
	}
	v.Daily = dailyChart(m)
	v.Latency = latencyChart(m)
	return v
}

// lineChart is the daily success rate of every bank.
type lineChart struct {
	W, H, Left, Right, Top, Bottom int
	YTicks                         []tick
	XTicks                         []tick
	Lines                          []line
	// Worst marks the worst day of any bank, when it is worth a word.
	Worst       *point
	WorstAnchor string
}

type tick struct {
	Pos   float64
	Label string
}

type line struct {
	Bank, Color string
	Paths       []string // polyline points, broken at days without calls
	Points      []point
	LegendY     int
}

type point struct {
	X, Y  float64
	Title string
}

func dailyChart(m *Month) lineChart {
	c := lineChart{W: chartW, H: chartH, Left: chartLeft, Right: chartW - chartRight, Top: chartTop,
		Bottom: chartH - chartBt}
	lo := 100.0
	days := 0
	for _, b := range m.Banks {
		days = max(days, len(b.Daily))
		for _, d := range b.Daily {
			if d.Calls > 0 {
				lo = min(lo, 100*d.Rate())
			}
		}
	}
	// The axis starts at a round figure below the worst day, so a bad day
	// stands out and a good month is not a flat line at the top.
	step := 1.0
	switch {
	case lo < 50:
		step = 25
	case lo < 90:
		step = 10
	case lo < 98:
		step = 2
	}
	lo = math.Max(0, math.Floor((lo-0.5)/step)*step)
	if lo >= 100 {
		lo = 100 - step
	}
	y := func(pct float64) float64 {
		return round1(float64(c.Bottom) - (pct-lo)/(100-lo)*float64(c.Bottom-c.Top))
	}
	x := func(day int) float64 {
		if days <= 1 {
			return float64(c.Left)
		}
		return round1(float64(c.Left) + float64(day-1)/float64(days-1)*float64(c.Right-c.Left))
	}
	for p := lo; p <= 100+1e-9; p += step {
		c.YTicks = append(c.YTicks, tick{Pos: y(p), Label: strconv.FormatFloat(p, 'f', -1, 64) + "%"})
	}
	for d := 1; d <= days; d++ {
		if d == 1 || d%5 == 0 && days-d >= 3 || d == days {
			c.XTicks = append(c.XTicks, tick{Pos: x(d), Label: strconv.Itoa(d)})
		}
	}
	legend := c.Top + 8
	worst := 100.0
	for _, b := range m.Banks {
		if b.Calls == 0 {
			continue
		}
		l := line{Bank: b.Bank, Color: colorOf(b.Bank), LegendY: legend}
		legend += 20
		var cur []string
		for _, d := range b.Daily {
			if d.Calls == 0 {
				if len(cur) > 0 {
					l.Paths = append(l.Paths, strings.Join(cur, " "))
				}
				cur = nil
				continue
			}
			px, py := x(d.Day), y(100*d.Rate())
			cur = append(cur, fmt.Sprintf("%g,%g", px, py))
			l.Points = append(l.Points, point{X: px, Y: py,
				Title: fmt.Sprintf("%s, day %d: %s%% of %d calls", b.Bank, d.Day, Percent(d.Rate()), d.Calls)})
			if r := 100 * d.Rate(); r < worst && r < 99 {
				worst = r
				c.Worst = &point{X: px, Y: py, Title: fmt.Sprintf("%s %s%% on day %d", b.Bank, Percent(d.Rate()), d.Day)}
			}
		}
		if len(cur) > 0 {
			l.Paths = append(l.Paths, strings.Join(cur, " "))
		}
		c.Lines = append(c.Lines, l)
	}
	if c.Worst != nil {
		c.WorstAnchor = "start"
		if c.Worst.X > float64(c.Right-160) {
			c.WorstAnchor = "end"
		}
	}
	return c
}

// barChart is every bank's latency percentiles as horizontal bars.
type barChart struct {
	W, H, Left, Right int
	XTicks            []tick
	Groups            []barGroup
}

type barGroup struct {
	Bank, Color string
	Y, LabelY   int
	Bars        []bar
}

type bar struct {
	Name          string
	Y, W, Opacity float64
	Ms            int64
	TextX         float64
}

func latencyChart(m *Month) barChart {
	c := barChart{W: chartW, Left: 110, Right: chartW - 90}
	var top int64 = 1
	for _, b := range m.Banks {
		top = max(top, b.P99Ms)
	}
	scale := niceCeil(top)
	for i := 0; i <= 4; i++ {
		v := scale * float64(i) / 4
		c.XTicks = append(c.XTicks, tick{Pos: round1(float64(c.Left) + v/scale*float64(c.Right-c.Left)),
			Label: strconv.FormatFloat(v, 'f', -1, 64) + " ms"})
	}
	y := 8
	for _, b := range m.Banks {
		if b.Calls == 0 {
			continue
		}
		g := barGroup{Bank: b.Bank, Color: colorOf(b.Bank), Y: y, LabelY: y + (3*barH+2*barGap)/2 + 5}
		for i, p := range []struct {
			name string
			ms   int64
		}{{"p50", b.P50Ms}, {"p95", b.P95Ms}, {"p99", b.P99Ms}} {
			w := round1(float64(p.ms) / scale * float64(c.Right-c.Left))
			g.Bars = append(g.Bars, bar{Name: p.name, Ms: p.ms, Y: float64(y + i*(barH+barGap)), W: w,
				Opacity: []float64{1, 0.7, 0.45}[i], TextX: float64(c.Left) + w + 6})
		}
		y += 3*barH + 2*barGap + barGroupGap
		c.Groups = append(c.Groups, g)
	}
	c.H = y + 24
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v int64) float64 {
	f := float64(v)
	p := math.Pow(10, math.Floor(math.Log10(f)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= f {
			return m * p
		}
	}
	return 10 * p
}

// grouped puts thousands separators in a yuan figure: "1,234,567.89".
func grouped(yuan string) string {
	whole, frac, _ := strings.Cut(yuan, ".")
	sign := ""
	if strings.HasPrefix(whole, "-") {
		sign, whole = "-", whole[1:]
	}
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"add":   func(a, b int) int { return a + b },
	"addf":  func(a float64, b int) float64 { return a + float64(b) },
	"label": func(f Failure) string { return f.Label() },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", sans-serif; color: #1d2433; margin: 0; background: #f4f6f9; }
main { max-width: 1060px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.sub { color: #5b6475; margin: 0 0 18px; }
.card { background: #fff; border: 1px solid #dde2ea; border-radius: 8px; padding: 14px 16px; margin-bottom: 14px; }
.headline { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 6px; }
.stat { background: #fff; border: 1px solid #dde2ea; border-radius: 8px; padding: 10px 14px; min-width: 150px; flex: 1; }
.stat b { display: block; font-size: 20px; }
.stat span { color: #5b6475; font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 6px 7px; text-align: right; border-bottom: 1px solid #e6e9ef; white-space: nowrap; }
td.wrap { white-space: normal; }
th { font-size: 12px; color: #5b6475; font-weight: 600; }
th:first-child, td:first-child, td.l, th.l { text-align: left; }
tr:last-child td { border-bottom: 0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.bar { display: inline-block; width: 80px; height: 8px; background: #e6e9ef; border-radius: 4px; margin-left: 8px; vertical-align: 1px; overflow: hidden; }
.bar i { display: block; height: 100%; background: #2f9e62; }
.bad { color: #b42318; font-weight: 600; }
.muted { color: #8a93a3; }
.banks { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
ol { margin: 4px 0 0; padding-left: 20px; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", "Noto Sans", sans-serif; fill: #3b4456; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p class="sub">{{.Period}} · generated {{.Generated}}</p>
{{if not .Banks}}<div class="card">No bank transactions and no bank calls in this month.</div>{{else}}
<div class="headline">
{{with index .Rows 0}}<div class="stat"><span>Best bank</span><b>{{.Bank.Bank}}</b><span>{{.Rate}}% of calls succeeded</span></div>{{end}}
<div class="stat"><span>Banks called</span><b>{{len .Rows}}</b><span>ranked by success rate, then p95 latency</span></div>
{{if .WorstDownBank}}<div class="stat"><span>Longest down</span><b class="bad">{{.WorstDownBank}}</b><span>{{.WorstDownCount}} minutes with every call failing</span></div>{{end}}
</div>

<h2>Ranking</h2>
<div class="card">
<table id="ranking">
<thead><tr><th class="l">Rank</th><th class="l">Bank</th><th>Calls</th><th>Succeeded</th><th>Success rate</th><th>p50</th><th>p95</th><th>p99</th><th>Down</th><th>Busiest minute</th><th class="l">Top failure</th></tr></thead>
<tbody>
{{range .Rows}}<tr data-bank="{{.Bank.Bank}}">
<td data-field="rank">{{.Rank}}</td>
<td class="l"><span class="swatch" style="background:{{.Color}}"></span>{{.Bank.Bank}}</td>
<td data-field="calls">{{.Calls}}</td>
<td data-field="ok">{{.OK}}</td>
<td><span data-field="success_rate">{{.Rate}}</span>%<span class="bar"><i style="width:{{.RateWidth}}%"></i></span></td>
<td><span data-field="p50_ms">{{.P50Ms}}</span> ms</td>
<td><span data-field="p95_ms">{{.P95Ms}}</span> ms</td>
<td><span data-field="p99_ms">{{.P99Ms}}</span> ms</td>
<td{{if .DownMinutes}} class="bad"{{end}}><span data-field="down_minutes">{{.DownMinutes}}</span> min</td>
<td><span data-field="busiest_minute">{{.Busiest}}</span> · <span data-field="busiest_calls">{{.BusiestCalls}}</span> {{if eq .BusiestCalls 1}}call{{else}}calls{{end}}</td>
<td class="l wrap">{{if .TopFailure}}{{.TopFailure}}{{else}}<span class="muted">none</span>{{end}}</td>
</tr>
{{end}}</tbody>
</table>
</div>

{{if .HasCalls}}
<h2>Daily success rate of calls</h2>
<div class="card">
{{with .Daily}}<svg id="daily-chart" role="img" aria-label="Daily success rate per bank" viewBox="0 0 {{.W}} {{.H}}" width="100%">
{{range .YTicks}}<line x1="{{$.Daily.Left}}" x2="{{$.Daily.Right}}" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#e6e9ef"/>
<text x="{{add $.Daily.Left -8}}" y="{{.Pos}}" dy="4" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.Pos}}" y="{{add $.Daily.Bottom 20}}" text-anchor="middle">{{.Label}}</text>
{{end}}<text x="{{$.Daily.Right}}" y="{{add $.Daily.Bottom 20}}" dx="-2" dy="14" text-anchor="end" class="muted">day of month</text>
{{range .Lines}}<g data-bank="{{.Bank}}">
{{$c := .Color}}{{range .Paths}}<polyline points="{{.}}" fill="none" stroke="{{$c}}" stroke-width="2" stroke-linejoin="round"/>
{{end}}{{range .Points}}<circle cx="{{.X}}" cy="{{.Y}}" r="2.6" fill="{{$c}}"><title>{{.Title}}</title></circle>
{{end}}<rect x="{{add $.Daily.Right 16}}" y="{{add .LegendY -9}}" width="12" height="12" rx="2" fill="{{.Color}}"/>
<text x="{{add $.Daily.Right 34}}" y="{{.LegendY}}" dy="1">{{.Bank}}</text>
</g>
{{end}}{{with .Worst}}<text x="{{addf .X 8}}" y="{{.Y}}" dy="4" text-anchor="{{$.Daily.WorstAnchor}}" font-weight="600" fill="#b42318">{{.Title}}</text>
{{end}}</svg>{{end}}
</div>

<h2>Latency of calls</h2>
<div class="card">
{{with .Latency}}<svg id="latency-chart" role="img" aria-label="Latency percentiles per bank" viewBox="0 0 {{.W}} {{.H}}" width="100%">
{{range .XTicks}}<line x1="{{.Pos}}" x2="{{.Pos}}" y1="4" y2="{{add $.Latency.H -22}}" stroke="#e6e9ef"/>
<text x="{{.Pos}}" y="{{add $.Latency.H -6}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Groups}}<g data-bank="{{.Bank}}">
<text x="{{add $.Latency.Left -12}}" y="{{.LabelY}}" text-anchor="end" font-weight="600">{{.Bank}}</text>
{{$c := .Color}}{{range .Bars}}<rect x="{{$.Latency.Left}}" y="{{.Y}}" width="{{.W}}" height="14" rx="2" fill="{{$c}}" fill-opacity="{{.Opacity}}"><title>{{.Name}} {{.Ms}} ms</title></rect>
<text x="{{.TextX}}" y="{{addf .Y 11}}">{{.Name}} {{.Ms}} ms</text>
{{end}}</g>
{{end}}</svg>{{end}}
</div>
{{end}}

<h2>Transactions and money</h2>
<div class="card">
<table id="money">
<thead><tr><th class="l">Bank</th>{{range .KindTitles}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr data-bank="{{.Bank.Bank}}"><td class="l"><span class="swatch" style="background:{{.Color}}"></span>{{.Bank.Bank}}</td>
{{range .Txns}}<td data-kind="{{.Kind}}"><b data-field="amount">{{.Amount}}</b> yuan<br><span data-field="succeeded">{{.Succeeded}}</span> ok{{if .Failed}} · <span class="bad"><span data-field="failed">{{.Failed}}</span> failed</span>{{else}} · <span data-field="failed">0</span> failed{{end}}{{if .Open}} · <span data-field="open">{{.Open}}</span> open{{end}}</td>
{{end}}</tr>
{{end}}</tbody>
</table>
</div>

<h2>Failures by bank</h2>
<div class="banks">
{{range .Rows}}<div class="card" data-bank="{{.Bank.Bank}}">
<h3><span class="swatch" style="background:{{.Color}}"></span>{{.Bank.Bank}} · <span data-field="failed_calls">{{.FailedCalls}}</span> failed calls</h3>
{{if .Failures}}<ol>{{range .Failures}}<li data-failure="{{label .}}"><span>{{label .}}</span>: <b data-field="count">{{.Count}}</b></li>{{end}}</ol>{{else}}<p class="muted">No failed calls.</p>{{end}}
</div>
{{end}}</div>
{{end}}
</main>
</body>
</html>
`
