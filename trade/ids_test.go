package trade

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second}, {"30m", 30 * time.Minute}, {"2h", 2 * time.Hour}, {"10d", 240 * time.Hour},
		{"1s", time.Second}, {"9999999s", 9999999 * time.Second},
	}
	for _, c := range good {
		got, ok := ParseDuration(c.in)
		if !ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, ok, c.want)
		}
		if back := FormatDuration(got); c.in != "9999999s" && back != c.in {
			t.Errorf("FormatDuration(%v) = %q, want %q", got, back, c.in)
		}
	}
	for _, in := range []string{"", "s", "0s", "05m", "-1m", "+1m", "1.5h", "1w", "1 m", " 1m", "1M", "1ms",
		"1h30m", "99999999d", "1e3s", "１m"} {
		if d, ok := ParseDuration(in); ok {
			t.Errorf("ParseDuration(%q) = %v, want refused", in, d)
		}
	}
}

func TestTradeNo(t *testing.T) {
	// 23:30 UTC is the next day in China: trade numbers carry China's date,
	// then the millisecond of that day (07:30:00.250 there).
	now := time.Date(2026, 3, 31, 23, 30, 0, 250e6, time.UTC)
	seen := map[string]bool{}
	for range 1000 {
		no := newTradeNo(now)
		if len(no) != TradeNoLen || !strings.HasPrefix(no, "20260401"+"27000250") || !ValidTradeNo(no) {
			t.Fatalf("trade_no %q: want 20260401, 27000250 and 12 digits", no)
		}
		if seen[no] {
			t.Fatalf("trade_no %q repeated", no)
		}
		seen[no] = true
	}
	// Later numbers sort later, across the day's end too.
	prev := ""
	for _, at := range []time.Time{now, now.Add(time.Millisecond), now.Add(16*time.Hour + 29*time.Minute + 59*time.Second),
		now.Add(16*time.Hour + 30*time.Minute), now.Add(40 * 24 * time.Hour)} {
		no := newTradeNo(at)
		if no <= prev {
			t.Errorf("trade_no at %v = %q, not after %q", at, no, prev)
		}
		prev = no
	}
	// Numbers made before the clock digits (date and 18 digits) stay valid.
	if !ValidTradeNo("20260401123456789012345678") {
		t.Error("a 26-digit trade_no is refused")
	}
	for _, bad := range []string{"", "2026040112345678901234567", "2026040112345678901234567a", "x",
		"202604011234567890123456789", "2026040112345678901234567890a"} {
		if ValidTradeNo(bad) {
			t.Errorf("ValidTradeNo(%q) = true", bad)
		}
	}
}

func TestNotifyID(t *testing.T) {
	now := time.Date(2026, 4, 1, 7, 30, 0, 0, time.UTC)
	a, b, c := newNotifyID(now), newNotifyID(now), newNotifyID(now.Add(time.Millisecond))
	if len(a) != 2*notifyIDBytes || a == b {
		t.Fatalf("notify ids %q, %q", a, b)
	}
	if a[:2*notifyIDClockBytes] != b[:2*notifyIDClockBytes] || c <= a || c <= b {
		t.Errorf("notify ids of one millisecond %q, %q; of the next %q: want the later to sort later", a, b, c)
	}
}

func TestAuthCode(t *testing.T) {
	for range 1000 {
		c := newAuthCode()
		if len(c) != 18 || !strings.HasPrefix(c, "28") || !ValidAuthCode(c) {
			t.Fatalf("auth_code %q: want 28 and 16 digits", c)
		}
	}
	for _, bad := range []string{"", "281234567890123456x", "181234567890123456", "2812345678901234567"} {
		if ValidAuthCode(bad) {
			t.Errorf("ValidAuthCode(%q) = true", bad)
		}
	}
}

func TestValidOutNo(t *testing.T) {
	for _, ok := range []string{"a", "A-1_b", strings.Repeat("x", 64)} {
		if !ValidOutNo(ok) {
			t.Errorf("ValidOutNo(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a b", "a~b", "订单", "a.b"} {
		if ValidOutNo(bad) {
			t.Errorf("ValidOutNo(%q) = true", bad)
		}
	}
}

func TestParamsHash(t *testing.T) {
	a := CreateParams{OutTradeNo: "o", Subject: "s", TotalAmount: 100, Mode: Instant}
	b := a
	b.TimeoutExpress = TimeoutExpressDefault
	if a.normalize() != nil || b.normalize() != nil || a.hash() != b.hash() {
		t.Error("a default timeout and the same timeout given hash differently")
	}
	c := a
	c.Subject = "s2"
	if c.hash() == a.hash() {
		t.Error("different subjects hash the same")
	}
}

func TestPrefixed(t *testing.T) {
	if got := prefixed("t.", "a, b,\n\tc"); got != "t.a, t.b, t.c" {
		t.Errorf("prefixed = %q", got)
	}
}
