package ledger

import (
	"strings"
	"testing"
)

// assertWritten stops the process when the rows an update returned are not
// the balances written: a column set wrongly, a row missed or doubled.
func TestAssertWritten(t *testing.T) {
	a := Account{ID: 1, Ledger: 156, Code: 1, DebitsPosted: 500, CreditsPosted: 700}
	b := Account{ID: 2, Ledger: 156, Code: 1, CreditsPending: 90}
	swapped := a
	swapped.DebitsPosted, swapped.CreditsPosted = a.CreditsPosted, a.DebitsPosted
	for name, tc := range map[string]struct {
		written []Account
		panics  string
	}{
		"as written, in another order": {written: []Account{b, a}},
		"columns swapped":              {written: []Account{swapped, b}, panics: "account 1 reads back as"},
		"a row missed":                 {written: []Account{a}, panics: "wrote 2 accounts, read back 1"},
		"a row twice, another missed":  {written: []Account{a, a}, panics: "account 2 reads back as"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				switch {
				case tc.panics == "" && r != nil:
					t.Fatalf("panicked: %v", r)
				case tc.panics != "" && (r == nil || !strings.Contains(r.(string), tc.panics)):
					t.Fatalf("recovered %v, want a panic with %q", r, tc.panics)
				}
			}()
			assertWritten([]Account{a, b}, tc.written)
		})
	}
}
