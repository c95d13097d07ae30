package http

import (
	"fmt"
	nethttp "net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

var keysCases = []struct {
	body string
	want scanResult
	dup  string
}{
	{`{"out_trade_no":"b1","subject":"bench","total_amount":"1.00","mode":"instant"}`, scanNoDuplicate, ""},
	{`{"method":"balance"}`, scanNoDuplicate, ""},
	{` {"a": [1, -2.5e+3, true, false, null, {"a": 0}], "b": {"a": {}, "c": []}} `, scanNoDuplicate, ""},
	{`[{"a":1},{"a":2}]`, scanNoDuplicate, ""},
	{`{"s":"x\"y\\z\u00e9\n"}`, scanNoDuplicate, ""},
	{`{"amount":"1.00","amount":"9999.00"}`, scanDuplicate, "amount"},
	{`{"a":{"b":1,"c":{"d":1,"d":2}}}`, scanDuplicate, "d"},
	{`{"":1,"":2}`, scanDuplicate, ""},
	// encoding/json sets a field from a key in any case.
	{`{"total_amount":"1.00","TOTAL_AMOUNT":"9999.00"}`, scanDuplicate, "TOTAL_AMOUNT"},
	{`{"a":1,"b":{"Mode":"x","mODE":"y"}}`, scanDuplicate, "mODE"},
	{`{"id":1,"ID_":2}`, scanNoDuplicate, ""},
	// Beyond ASCII, case is Unicode's (the Kelvin sign folds to k), left to the token walk.
	{"{\"k\":1,\"\u212a\":2}", scanUnsure, ""},
	// Escaped keys are compared after unescaping, by the token walk.
	{`{"id":1,"i\u0064":2}`, scanUnsure, ""},
	// Whatever is not valid JSON is left to the token walk and the decoder.
	{`{"a":01,"a":2}`, scanUnsure, ""},
	{`{"a":1,"a":2`, scanDuplicate, "a"},
	{`{"a":1} {"a":1,"a":2}`, scanUnsure, ""},
	{`{"a":tru}`, scanUnsure, ""},
	{`{"a":1,}`, scanUnsure, ""},
	{`{"a"`, scanUnsure, ""},
	{"{\"a\":\"\x01\"}", scanUnsure, ""},
	{``, scanUnsure, ""},
	{strings.Repeat(`[`, jsonNestingMax) + strings.Repeat(`]`, jsonNestingMax), scanUnsure, ""},
}

func TestScanKeys(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range 5000 {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
	}
	many.WriteString(`"K4321":0}`)
	cases := append(keysCases[:len(keysCases):len(keysCases)], struct {
		body string
		want scanResult
		dup  string
	}{many.String(), scanDuplicate, "K4321"})
	for _, c := range cases {
		dup, r := scanKeys([]byte(c.body))
		if r != c.want || dup != c.dup {
			t.Errorf("scanKeys(%.60q) = %q, %d; want %q, %d", c.body, dup, r, c.dup, c.want)
		}
		agree(t, []byte(c.body))
	}
	// Through checkDuplicateKeys, the escaped key is still found twice and
	// the nesting still refused, by the token walk.
	for body, want := range map[string]string{
		`{"id":1,"i\u0064":2}`:                            "names id twice",
		"{\"k\":1,\"\u212a\":2}":                          "twice",
		strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40): "nested too deeply",
	} {
		if err := checkDuplicateKeys([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkDuplicateKeys(%.40q) = %v, want %q", body, err, want)
		}
	}
}

// TestDecodeJSONCaseVariant: a second spelling of a field in another case
// would set it again (encoding/json matches keys case-insensitively), so
// that a reader keeping the first key and this one disagree on the amount.
func TestDecodeJSONCaseVariant(t *testing.T) {
	for _, body := range []string{
		`{"total_amount":"1.00","TOTAL_AMOUNT":"9999.00"}`,
		"{\"total_amount\":\"1.00\",\"total_amount\":\"9999.00\"}",
		`{"total_amount":"1.00","Total_Amount":"2"}`,
	} {
		var v struct {
			TotalAmount string `json:"total_amount"`
		}
		r, _ := nethttp.NewRequest("POST", "/v1/trades", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := decodeJSON(r, &v); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%s: decoded (total_amount %q, error %v), want it refused for naming a key twice", body, v.TotalAmount, err)
		}
	}
}

// agree checks that where scanKeys answers, the token walk answers the same.
func agree(t *testing.T, b []byte) {
	t.Helper()
	if !utf8.Valid(b) || checkSurrogates(b) != nil {
		return // checkJSONText refuses such a body before keys are looked at
	}
	dup, r := scanKeys(b)
	walked := walkDuplicateKeys(b)
	switch r {
	case scanNoDuplicate:
		if walked != nil {
			t.Fatalf("%q: scanKeys finds no duplicate, the token walk says %v", b, walked)
		}
	case scanDuplicate:
		if walked == nil || walked.Error() != duplicateKey(dup).Error() {
			t.Fatalf("%q: scanKeys finds %q twice, the token walk says %v", b, dup, walked)
		}
	}
}

func FuzzScanKeys(f *testing.F) {
	for _, c := range keysCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) { agree(t, b) })
}

func BenchmarkCheckDuplicateKeys(b *testing.B) {
	body := []byte(`{"out_trade_no":"b1234567","subject":"bench","total_amount":"1.00","mode":"instant"}`)
	for _, bc := range []struct {
		name string
		fn   func([]byte) error
	}{{"scan", checkDuplicateKeys}, {"walk", walkDuplicateKeys}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := bc.fn(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
