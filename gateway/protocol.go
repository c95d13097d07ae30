// Package gateway speaks the Alipay Open Platform protocol at /gateway.do,
// so that merchants' existing Alipay SDKs work against zhifu unchanged:
// requests by GET or POST with their parameters in the query string, the
// form body or both, signed RSA2 with the merchant's key; JSON responses,
// refusals included, signed with the platform's key over the exact bytes of
// the response node; Alipay's result codes, yuan strings and Beijing time.
//
// Gateway trades are the native API's trades: the gateway only translates
// and calls the trade service.
package gateway

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Limits and protocol constants.
const (
	// timestampSkewMax is how far a request's timestamp may be from ours.
	timestampSkewMax = 10 * time.Minute
	// timeLayout is Alipay's timestamp format, in Beijing time.
	timeLayout = "2006-01-02 15:04:05"
	// bizContentBytesMax bounds biz_content.
	bizContentBytesMax = 64 << 10
	// BodyBytesMax bounds a whole gateway request.
	BodyBytesMax = 1 << 20
)

// beijing is UTC+8, Alipay's time zone. China keeps no daylight saving
// time, so a fixed zone is exact and needs no time zone database.
var beijing = time.FixedZone("CST", 8*3600)

// FormatTime writes t as Alipay does.
func FormatTime(t time.Time) string { return t.In(beijing).Format(timeLayout) }

// Result codes of the Alipay protocol.
const (
	CodeSuccess          = "10000"
	CodeWaitUserPay      = "10003"
	CodeUnavailable      = "20000"
	CodeMissingArguments = "40001"
	CodeInvalidArguments = "40002"
	CodeBusinessFailed   = "40004"
	CodeNoPermission     = "40006"
)

var codeMessages = map[string]string{
	CodeSuccess:          "Success",
	CodeWaitUserPay:      "Order Success Pay Inprocess",
	CodeUnavailable:      "Service Currently Unavailable",
	CodeMissingArguments: "Missing Required Arguments",
	CodeInvalidArguments: "Invalid Arguments",
	CodeBusinessFailed:   "Business Failed",
	CodeNoPermission:     "Insufficient Permissions",
}

// Error is a refusal in Alipay's terms.
type Error struct {
	Code    string
	SubCode string
	SubMsg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s: %s", e.Code, e.SubCode, e.SubMsg) }

func errorf(code, sub, format string, args ...any) *Error {
	return &Error{Code: code, SubCode: sub, SubMsg: fmt.Sprintf(format, args...)}
}

// Call is a parsed gateway request before its signature is checked.
type Call struct {
	Values    url.Values
	AppID     string
	Method    string
	NotifyURL string
	Biz       json.RawMessage
}

// ResponseName is the JSON key of a method's response node:
// alipay.trade.query → alipay_trade_query_response. A call that names no
// method, or nothing that looks like one, is answered as error_response.
func ResponseName(method string) string {
	if !methodName.MatchString(method) {
		return "error_response"
	}
	return strings.ReplaceAll(method, ".", "_") + "_response"
}

// ParseCall checks the common parameters every method shares. The
// signature is checked afterwards, once the app's key is known.
func ParseCall(values url.Values, now time.Time) (*Call, *Error) {
	c := &Call{Values: values, AppID: values.Get("app_id"), Method: values.Get("method"),
		NotifyURL: values.Get("notify_url")}
	for _, p := range []struct{ name, sub string }{
		{"method", "isv.missing-method"}, {"app_id", "isv.missing-app-id"},
		{"sign", "isv.missing-signature"}, {"sign_type", "isv.missing-signature-type"},
		{"timestamp", "isv.missing-timestamp"}, {"version", "isv.missing-version"},
	} {
		if values.Get(p.name) == "" {
			return c, errorf(CodeMissingArguments, p.sub, "missing %s", p.name)
		}
	}
	if cs := values.Get("charset"); cs != "" && !strings.EqualFold(cs, "utf-8") {
		return c, errorf(CodeInvalidArguments, "isv.invalid-charset", "charset must be utf-8")
	}
	if values.Get("sign_type") != "RSA2" {
		return c, errorf(CodeInvalidArguments, "isv.invalid-signature-type", "sign_type must be RSA2")
	}
	if f := values.Get("format"); f != "" && !strings.EqualFold(f, "JSON") {
		return c, errorf(CodeInvalidArguments, "isv.invalid-format", "format must be JSON")
	}
	if values.Get("app_auth_token") != "" {
		// An ISV's call on behalf of another merchant: zhifu has no such
		// delegation, and acting as the ISV's own app would pay the wrong
		// merchant.
		return c, errorf(CodeInvalidArguments, "aop.invalid-app-auth-token", "app_auth_token is not supported")
	}
	if values.Get("version") != "1.0" {
		return c, errorf(CodeInvalidArguments, "isv.invalid-version", "version must be 1.0")
	}
	ts, err := time.ParseInLocation(timeLayout, values.Get("timestamp"), beijing)
	if err != nil {
		return c, errorf(CodeInvalidArguments, "isv.invalid-timestamp", "timestamp must be yyyy-MM-dd HH:mm:ss in Beijing time")
	}
	if d := now.Sub(ts); d > timestampSkewMax || d < -timestampSkewMax {
		return c, errorf(CodeInvalidArguments, "isv.invalid-timestamp", "timestamp is more than %v away", timestampSkewMax)
	}
	biz := values.Get("biz_content")
	if len(biz) > bizContentBytesMax {
		return c, errorf(CodeInvalidArguments, "isv.invalid-parameter", "biz_content is too large")
	}
	if biz == "" {
		biz = "{}"
	}
	if !json.Valid([]byte(biz)) || strings.TrimSpace(biz)[0] != '{' {
		return c, errorf(CodeInvalidArguments, "isv.invalid-parameter", "biz_content must be a JSON object")
	}
	c.Biz = json.RawMessage(biz)
	return c, nil
}

// EncodeResponse writes {"<method>_response":<node>,"sign":"…"} where the
// signature covers the exact bytes of node as written. sign is last, where
// the SDKs that cut the node out of the answer's text look for it; it is
// left out only when there is no key to sign with.
func EncodeResponse(method string, node []byte, sign string) []byte {
	var b strings.Builder
	b.WriteString(`{"`)
	b.WriteString(ResponseName(method))
	b.WriteString(`":`)
	b.Write(node)
	if sign != "" {
		b.WriteString(`,"sign":"`)
		b.WriteString(sign)
		b.WriteString(`"`)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// Node builds a response node: the code fields first, then the method's own
// fields. A nil err means code 10000 (or 10003 when wait is set).
func Node(fields map[string]any, e *Error) ([]byte, error) {
	out := make(map[string]any, len(fields)+4)
	for k, v := range fields {
		out[k] = v
	}
	if e == nil {
		out["code"], out["msg"] = CodeSuccess, codeMessages[CodeSuccess]
	} else {
		out["code"], out["msg"] = e.Code, codeMessages[e.Code]
		if e.SubCode != "" {
			out["sub_code"], out["sub_msg"] = e.SubCode, e.SubMsg
		}
	}
	return json.Marshal(out)
}
