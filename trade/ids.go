package trade

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
)

// Shapes of the identifiers this package hands out.
const (
	// tradeNoClockDigits follow the yyyymmdd date in a trade_no: the
	// millisecond of that day. Trade numbers made later sort later, so a
	// new trade's entry in every index keyed by trade_no (the trades' own,
	// the notifications', the payment transfer's "pay:<trade_no>") lands on
	// the rightmost page instead of a random one: a batch of trades
	// dirties one page of each index, not one page per trade.
	tradeNoClockDigits = 8
	// tradeNoRandomDigits end a trade_no: 10^12 numbers a millisecond make
	// a collision (a failed insert) practically impossible (about one in
	// 10^7 milliseconds at 15,000 trades a second), and the number says
	// nothing about the platform's volume.
	tradeNoRandomDigits = 12
	// TradeNoLen is the length of every trade_no made now, 28 digits as
	// Alipay's.
	TradeNoLen = 8 + tradeNoClockDigits + tradeNoRandomDigits
	// tradeNoLenDated is the length of trade numbers made before the clock
	// digits: the date and 18 random digits. They stay valid.
	tradeNoLenDated = 8 + 18
	// authCodePrefix begins every payment code, as Alipay's do, so a
	// merchant's scanner can tell them from other bar codes.
	authCodePrefix = "28"
	// AuthCodeLen is the length of every payment code.
	AuthCodeLen = 18
	// notifyIDClockBytes begin a notify_id: the Unix millisecond, so that
	// notifications, like trades, are inserted at the end of their index.
	notifyIDClockBytes = 6
	// notifyIDBytes in all, the rest random, make each notify_id unique.
	notifyIDBytes = 16
)

// chinaTime is UTC+8, the time zone of trade_no dates and merchant bills
// (China keeps no daylight saving, so a fixed zone is exact and needs no
// time zone database on the host).
var chinaTime = time.FixedZone("UTC+8", 8*60*60)

// newTradeNo returns yyyymmdd (the date in UTC+8, as Alipay numbers its
// trades), the millisecond of that day in eight digits and 12 random digits.
func newTradeNo(now time.Time) string {
	c := now.In(chinaTime)
	day := time.Date(c.Year(), c.Month(), c.Day(), 0, 0, 0, 0, chinaTime)
	b := make([]byte, 0, TradeNoLen)
	b = c.AppendFormat(b, "20060102")
	b = fmt.Appendf(b, "%0*d", tradeNoClockDigits, c.Sub(day).Milliseconds())
	return string(b) + randomDigits(tradeNoRandomDigits)
}

// ValidTradeNo reports whether s has the shape of a trade_no, so malformed
// ones are refused without a database lookup.
func ValidTradeNo(s string) bool {
	return (len(s) == TradeNoLen || len(s) == tradeNoLenDated) && allDigits(s)
}

// newAuthCode returns a payment code: "28" and 16 random digits.
func newAuthCode() string {
	return authCodePrefix + randomDigits(AuthCodeLen-len(authCodePrefix))
}

// ValidAuthCode reports whether s has the shape of a payment code.
func ValidAuthCode(s string) bool {
	return len(s) == AuthCodeLen && s[:len(authCodePrefix)] == authCodePrefix && allDigits(s)
}

// newNotifyID returns a hex id for one notification: the Unix millisecond
// of now in six bytes, then ten random bytes.
func newNotifyID(now time.Time) string {
	b := make([]byte, notifyIDBytes)
	ms := uint64(now.UnixMilli())
	for i := notifyIDClockBytes - 1; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[notifyIDClockBytes:]) // never fails (crypto/rand's documented contract since Go 1.24)
	return hex.EncodeToString(b)
}

// randomDigits returns n uniformly random decimal digits from crypto/rand.
func randomDigits(n int) string {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, limit)
	if err != nil {
		// crypto/rand does not fail on supported platforms; if it did,
		// handing out guessable numbers would be worse than stopping.
		panic(fmt.Sprintf("trade: crypto/rand: %v", err))
	}
	s := v.String()
	for len(s) < n {
		s = "0" + s
	}
	return s
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Limits of the durations a trade takes.
const (
	TimeoutExpressDefault = 30 * time.Minute
	TimeoutExpressMin     = time.Second
	TimeoutExpressMax     = 15 * 24 * time.Hour
	ConfirmTimeoutDefault = 10 * 24 * time.Hour
	ConfirmTimeoutMin     = time.Second
	ConfirmTimeoutMax     = 90 * 24 * time.Hour
	// durationDigitsMax bounds the number in a duration: seven digits of
	// seconds are more than the longest limit, 90 days.
	durationDigitsMax = 7
)

// ParseDuration reads the API's durations: a positive whole number and a
// unit, s, m, h or d ("90s", "30m", "2h", "10d"). Anything else (signs,
// fractions, spaces, leading zeros, other units) is refused, so every
// duration has one spelling.
func ParseDuration(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > durationDigitsMax+1 {
		return 0, false
	}
	num, unit := s[:len(s)-1], s[len(s)-1]
	if !allDigits(num) || num[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false
	}
	var u time.Duration
	switch unit {
	case 's':
		u = time.Second
	case 'm':
		u = time.Minute
	case 'h':
		u = time.Hour
	case 'd':
		u = 24 * time.Hour
	default:
		return 0, false
	}
	if n > int64(math.MaxInt64/u) {
		return 0, false // would overflow; far beyond any limit anyway
	}
	return time.Duration(n) * u, true
}

// FormatDuration writes d in the largest unit that divides it exactly, the
// inverse of ParseDuration for whole seconds.
func FormatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}
