package gateway

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Request is one gateway call as it arrived: the parameters of the URL's
// query string and those of the form body. Alipay's SDKs split them: the
// Java, PHP and Node.js SDKs put the common parameters (app_id, method,
// charset, sign_type, sign, timestamp, version, notify_url, …) in the
// query string and biz_content in the body; the Go SDKs put everything in
// the body; page methods put everything in the query string of a GET.
// Alipay accepts each, and so does the gateway.
type Request struct {
	Query url.Values
	Body  url.Values // nil for GET and for a POST without a body
	// Refusal, when set, is why the request cannot be read (body too large,
	// not a UTF-8 form, bad URL encoding).
	Refusal *Error
}

// formType is the only body the gateway reads, as Alipay's gateway.
const formType = "application/x-www-form-urlencoded"

// ReadRequest reads a gateway call: the query string's parameters and, for
// a method other than GET and HEAD, those of its form body, at most
// BodyBytesMax bytes of it. A body must be application/x-www-form-urlencoded;
// a charset on it must be utf-8. It never fails: what it cannot read it
// records as the Request's Refusal, for Handle to answer in Alipay's format.
func ReadRequest(r *http.Request) Request {
	q, err := url.ParseQuery(r.URL.RawQuery)
	req := Request{Query: q}
	if err != nil {
		req.Refusal = errorf(CodeInvalidArguments, "isv.invalid-parameter", "the query string is not valid URL encoding")
		return req
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Body == nil {
		return req
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, BodyBytesMax+1))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge) || len(body) > BodyBytesMax:
		req.Refusal = errorf(CodeInvalidArguments, "isv.invalid-parameter", "the request body is larger than %d bytes", BodyBytesMax)
		return req
	case err != nil:
		req.Refusal = errorf(CodeInvalidArguments, "isv.invalid-parameter", "the request body could not be read")
		return req
	case len(body) == 0:
		return req
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != formType {
		req.Refusal = errorf(CodeInvalidArguments, "isv.invalid-parameter", "the request body must be %s", formType)
		return req
	}
	if cs, ok := params["charset"]; ok && !isUTF8(cs) {
		req.Refusal = errorf(CodeInvalidArguments, "isv.invalid-charset", "the request body's charset must be utf-8")
		return req
	}
	if req.Body, err = url.ParseQuery(string(body)); err != nil {
		req.Refusal = errorf(CodeInvalidArguments, "isv.invalid-parameter", "the request body is not valid URL encoding")
	}
	return req
}

func isUTF8(charset string) bool {
	return strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8")
}

// Params joins the query string's and the body's parameters into the one
// set the call is parsed from and its signature verified over.
//
// A parameter given more than once with different values, in one place or
// in both, is refused. Alipay's servlet gateway would take the first value
// (the query string's) and ignore the other; refusing instead leaves no
// doubt which value was signed and which is acted on, and costs nothing:
// no SDK sends a parameter twice. The same value given twice is one
// parameter, signed once. Every name and value must be UTF-8, the only
// charset the gateway speaks.
func (r Request) Params() (url.Values, *Error) {
	if r.Refusal != nil {
		return nil, r.Refusal
	}
	out := make(url.Values, len(r.Query)+len(r.Body))
	for _, src := range []url.Values{r.Query, r.Body} {
		for k, vs := range src {
			for _, v := range vs {
				if !utf8.ValidString(k) || !utf8.ValidString(v) {
					return nil, errorf(CodeInvalidArguments, "isv.invalid-charset", "parameters must be UTF-8")
				}
				prev, ok := out[k]
				switch {
				case !ok:
					out[k] = []string{v}
				case prev[0] != v:
					return nil, errorf(CodeInvalidArguments, "isv.invalid-parameter",
						"parameter %q is given more than once with different values", truncate(k, 64))
				}
			}
		}
	}
	return out, nil
}

// Method is the method the request names, for the name of the answer's
// node: "" unless the query string and body name exactly one.
func (r Request) Method() string {
	m := ""
	for _, src := range []url.Values{r.Query, r.Body} {
		for _, v := range src["method"] {
			if m != "" && v != m {
				return ""
			}
			m = v
		}
	}
	return m
}

// methodName is what a method name may look like to name an answer's node.
var methodName = regexp.MustCompile(`^[A-Za-z0-9_.]{1,128}$`)
