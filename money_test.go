package zhifu_test

import (
	"strings"
	"testing"

	"zhifu"
)

func TestParseAmount(t *testing.T) {
	good := map[string]zhifu.Amount{
		"0.01": 1, "1": 100, "1.5": 150, "12.30": 1230, "12.3": 1230, "100000000.00": 100_000_000_00,
		"100000000": 100_000_000_00, "007.50": 750, "99999999.99": 99_999_999_99,
	}
	for in, want := range good {
		got, err := zhifu.ParseAmount(in, "amount")
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := []string{
		"", "0", "0.00", "0.0", "12.345", "-1", "-0.01", "+1", "1e3", "1E3", "12,30", " 1", "1 ", " 12.30 ",
		"1.", ".5", "1..2", "1.2.3", "0x10", "100000000.01", "1000000000", "NaN", "Inf", "１２", "12.3a",
		"1_000", "\"1.00\"", "999999999999999999999", strings.Repeat("9", 40), "12.30\n",
	}
	for _, in := range bad {
		a, err := zhifu.ParseAmount(in, "amount")
		if err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", in, a)
			continue
		}
		e, ok := err.(*zhifu.Error)
		if !ok || e.Code != zhifu.InvalidAmount || e.Param != "amount" {
			t.Errorf("ParseAmount(%q) error = %#v, want INVALID_AMOUNT on amount", in, err)
		}
	}
}

func TestAmountString(t *testing.T) {
	for a, want := range map[zhifu.Amount]string{
		0: "0.00", 1: "0.01", 10: "0.10", 1230: "12.30", 100_000_000_00: "100000000.00", -310: "-3.10", -1: "-0.01",
	} {
		if got := a.String(); got != want {
			t.Errorf("Amount(%d).String() = %q, want %q", int64(a), got, want)
		}
	}
}

// FuzzParseAmount checks that parsing never panics, that everything
// accepted is in range and reads back from its own String, and that String
// always writes exactly two decimals.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.30", "0.01", "100000000.00", "12.345", "-1", "1e3", "12,30", " 1", "1.", ".1", "00.10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := zhifu.ParseAmount(s, "amount")
		if err != nil {
			if zhifu.ErrorCode(err) != zhifu.InvalidAmount {
				t.Fatalf("ParseAmount(%q): error code %q", s, zhifu.ErrorCode(err))
			}
			return
		}
		if a < zhifu.AmountMin || a > zhifu.AmountMax {
			t.Fatalf("ParseAmount(%q) = %d, out of range", s, a)
		}
		str := a.String()
		if dot := strings.IndexByte(str, '.'); dot < 1 || len(str)-dot != 3 {
			t.Fatalf("String() = %q, not two decimals", str)
		}
		b, err := zhifu.ParseAmount(str, "amount")
		if err != nil || b != a {
			t.Fatalf("%q parsed to %d, whose String %q reads back as %d, %v", s, a, str, b, err)
		}
		for _, c := range s {
			if (c < '0' || c > '9') && c != '.' {
				t.Fatalf("ParseAmount(%q) accepted a character other than digits and '.'", s)
			}
		}
	})
}
