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
	// tradeNoRandomDigits follow the yyyymmdd date in a trade_no: 10^18
	// numbers a day make a collision (a failed insert) practically
	// impossible, and the number says nothing about the platform's volume.
	tradeNoRandomDigits = 18
	// TradeNoLen is the length of every trade_no.
	TradeNoLen = 8 + tradeNoRandomDigits
	// authCodePrefix begins every payment code, as Alipay's do, so a
	// merchant's scanner can tell them from other bar codes.
	authCodePrefix = "28"
	// AuthCodeLen is the length of every payment code.
	AuthCodeLen = 18
	// notifyIDBytes of randomness make each notify_id unique.
	notifyIDBytes = 16
)

// chinaTime is UTC+8, the time zone of trade_no dates and merchant bills
// (China keeps no daylight saving, so a fixed zone is exact and needs no
// time zone database on the host).
var chinaTime = time.FixedZone("UTC+8", 8*60*60)

// newTradeNo returns yyyymmdd (the date in UTC+8, as Alipay numbers its
// trades) followed by 18 random digits.
func newTradeNo(now time.Time) string {
	return now.In(chinaTime).Format("20060102") + randomDigits(tradeNoRandomDigits)
}

// ValidTradeNo reports whether s has the shape of a trade_no, so malformed
// ones are refused without a database lookup.
func ValidTradeNo(s string) bool { return len(s) == TradeNoLen && allDigits(s) }

// newAuthCode returns a payment code: "28" and 16 random digits.
func newAuthCode() string {
	return authCodePrefix + randomDigits(AuthCodeLen-len(authCodePrefix))
}

// ValidAuthCode reports whether s has the shape of a payment code.
func ValidAuthCode(s string) bool {
	return len(s) == AuthCodeLen && s[:len(authCodePrefix)] == authCodePrefix && allDigits(s)
}

// newNotifyID returns a random hex id for one notification.
func newNotifyID() string {
	b := make([]byte, notifyIDBytes)
	rand.Read(b) // never fails (crypto/rand's documented contract since Go 1.24)
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
