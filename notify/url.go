package notify

import (
	"net/url"
	"strconv"
	"strings"

	"zhifu"
	"zhifu/egress"
)

// URLLenMax bounds a notify_url, in bytes.
const URLLenMax = 1024

// strict is the guard of a caller that configures none: nothing but the
// internet.
var strict = egress.New(egress.Config{})

// CheckURL decides whether raw may be saved as a notify_url, on a merchant
// or a trade: "" (none), or an absolute http or https URL of at most
// URLLenMax bytes, without a user name or password, whose host, when it is
// an address or localhost, guard admits (nil: a guard that admits only
// the internet). A name passes here; what it resolves to is checked at
// every delivery. A refusal is INVALID_REQUEST on notify_url, saying why.
func CheckURL(guard *egress.Guard, raw string) error {
	if raw == "" {
		return nil
	}
	if guard == nil {
		guard = strict
	}
	bad := &zhifu.Error{Code: zhifu.InvalidRequest, Param: "notify_url", Message: "notify_url must be an absolute http or https URL of at most " +
		strconv.Itoa(URLLenMax) + " bytes, without a user name or password"}
	if len(raw) > URLLenMax || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.User != nil {
		return bad
	}
	if err := guard.CheckURL(u); err != nil {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "notify_url", Message: "notify_url " + err.Error()}
	}
	return nil
}
