package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"zhifu"
)

func formRequest(method, target, contentType, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// TestReadRequest: parameters come from the query string and, but for GET,
// a UTF-8 form body; anything else is a refusal to answer, not an error.
func TestReadRequest(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	big := "biz_content=" + strings.Repeat("a", BodyBytesMax)
	cases := []struct {
		name                     string
		method, target, ct, body string
		want                     url.Values // nil: refused with sub
		sub                      string
	}{
		{"split", "POST", "/gateway.do?app_id=1&method=m", form + ";charset=utf-8", "biz_content=%7B%7D",
			url.Values{"app_id": {"1"}, "method": {"m"}, "biz_content": {"{}"}}, ""},
		{"all in body", "POST", "/gateway.do", form, "app_id=1&method=m",
			url.Values{"app_id": {"1"}, "method": {"m"}}, ""},
		{"all in query, no body", "POST", "/gateway.do?app_id=1&method=m", "", "",
			url.Values{"app_id": {"1"}, "method": {"m"}}, ""},
		{"GET", "GET", "/gateway.do?app_id=1&timestamp=2026-01-01+10%3A00%3A00", "", "",
			url.Values{"app_id": {"1"}, "timestamp": {"2026-01-01 10:00:00"}}, ""},
		{"GET ignores a body", "GET", "/gateway.do?app_id=1", form, "app_id=2",
			url.Values{"app_id": {"1"}}, ""},
		{"charset UTF-8", "POST", "/gateway.do", form + "; charset=UTF-8", "a=1", url.Values{"a": {"1"}}, ""},
		{"same value twice", "POST", "/gateway.do?app_id=1", form, "app_id=1&app_id=1",
			url.Values{"app_id": {"1"}}, ""},
		{"conflict across", "POST", "/gateway.do?app_id=1", form, "app_id=2", nil, "isv.invalid-parameter"},
		{"conflict in body", "POST", "/gateway.do", form, "method=a&method=b", nil, "isv.invalid-parameter"},
		{"conflict in query", "GET", "/gateway.do?sign=a&sign=b", "", "", nil, "isv.invalid-parameter"},
		{"GBK body", "POST", "/gateway.do", form + ";charset=GBK", "a=1", nil, "isv.invalid-charset"},
		{"not UTF-8", "POST", "/gateway.do", form, "subject=%FF", nil, "isv.invalid-charset"},
		{"query not UTF-8", "GET", "/gateway.do?subject=%C3", "", "", nil, "isv.invalid-charset"},
		{"JSON body", "POST", "/gateway.do?app_id=1", "application/json", `{"a":1}`, nil, "isv.invalid-parameter"},
		{"no content type", "POST", "/gateway.do?app_id=1", "", "a=1", nil, "isv.invalid-parameter"},
		{"bad body escape", "POST", "/gateway.do", form, "a=%zz", nil, "isv.invalid-parameter"},
		{"bad query escape", "GET", "/gateway.do?a=%zz", "", "", nil, "isv.invalid-parameter"},
		{"too large", "POST", "/gateway.do", form, big, nil, "isv.invalid-parameter"},
		{"at the limit", "POST", "/gateway.do", form, big[:BodyBytesMax],
			url.Values{"biz_content": {strings.Repeat("a", BodyBytesMax-len("biz_content="))}}, ""},
	}
	for _, c := range cases {
		got, err := ReadRequest(formRequest(c.method, c.target, c.ct, c.body)).Params()
		if c.want == nil {
			if err == nil || err.SubCode != c.sub || err.Code != CodeInvalidArguments {
				t.Errorf("%s: got %v %v, want refusal %s", c.name, got, err, c.sub)
			}
			continue
		}
		if err != nil || got.Encode() != c.want.Encode() {
			t.Errorf("%s: got %v %v, want %v", c.name, got, err, c.want)
		}
	}

	// Behind http.MaxBytesReader, as the server wraps it, the limit holds too.
	r := formRequest("POST", "/gateway.do", form, big)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, BodyBytesMax)
	if _, err := ReadRequest(r).Params(); err == nil || !strings.Contains(err.SubMsg, "larger") {
		t.Errorf("over MaxBytesReader: %v", err)
	}
}

func TestRequestMethod(t *testing.T) {
	for _, c := range []struct {
		q, b url.Values
		want string
	}{
		{url.Values{"method": {"a.b"}}, nil, "a.b"},
		{nil, url.Values{"method": {"a.b"}}, "a.b"},
		{url.Values{"method": {"a.b"}}, url.Values{"method": {"a.b"}}, "a.b"},
		{url.Values{"method": {"a.b"}}, url.Values{"method": {"a.c"}}, ""},
		{nil, nil, ""},
	} {
		if got := (Request{Query: c.q, Body: c.b}).Method(); got != c.want {
			t.Errorf("Method(%v, %v) = %q, want %q", c.q, c.b, got, c.want)
		}
	}
	for method, want := range map[string]string{
		"alipay.trade.query":     "alipay_trade_query_response",
		"":                       "error_response",
		`a"b`:                    "error_response",
		strings.Repeat("a", 129): "error_response",
	} {
		if got := ResponseName(method); got != want {
			t.Errorf("ResponseName(%q) = %q, want %q", method, got, want)
		}
	}
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

var _ zhifu.Clock = fixedClock{}

// TestRefusalsSigned: refusals made before the caller is known carry a
// signature the platform's public key verifies over the node's exact bytes,
// under the node name the SDKs look for.
func TestRefusalsSigned(t *testing.T) {
	priv, _, _ := newKey(t)
	keys := &Keys{id: "pk_test", priv: priv}
	pub := &priv.PublicKey
	now := time.Now()
	s := New(Config{Keys: keys, Clock: fixedClock(now)})
	common := func() url.Values {
		return url.Values{"app_id": {"1"}, "method": {"alipay.trade.query"}, "sign": {"x"}, "sign_type": {"RSA2"},
			"timestamp": {FormatTime(now)}, "version": {"1.0"}}
	}
	noMethod := common()
	noMethod.Del("method")
	stale := common()
	stale.Set("timestamp", FormatTime(now.Add(-time.Hour)))
	cases := []struct {
		name string
		req  Request
		node string
		sub  string
	}{
		{"no method", Request{Query: noMethod}, "error_response", "isv.missing-method"},
		{"stale", Request{Query: stale}, "alipay_trade_query_response", "isv.invalid-timestamp"},
		{"conflict", Request{Query: common(), Body: url.Values{"method": {"alipay.trade.close"}}},
			"error_response", "isv.invalid-parameter"},
		{"conflict, one method", Request{Query: common(), Body: url.Values{"sign": {"y"}}},
			"alipay_trade_query_response", "isv.invalid-parameter"},
		{"unreadable", ReadRequest(formRequest("POST", "/gateway.do?method=alipay.trade.pay", "text/plain", "x")),
			"alipay_trade_pay_response", "isv.invalid-parameter"},
	}
	for _, c := range cases {
		out := s.Handle(context.Background(), c.req)
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(out, &raw); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, out)
		}
		var sig string
		json.Unmarshal(raw["sign"], &sig)
		if err := VerifyRSA2(pub, raw[c.node], sig); err != nil {
			t.Errorf("%s: %s does not verify: %v: %s", c.name, c.node, err, out)
			continue
		}
		var node map[string]string
		json.Unmarshal(raw[c.node], &node)
		if node["sub_code"] != c.sub || node["sub_msg"] == "" {
			t.Errorf("%s: %s", c.name, out)
		}
		if !strings.HasSuffix(string(out), `,"sign":"`+sig+`"}`) {
			t.Errorf("%s: sign is not last: %s", c.name, out)
		}
		if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
			t.Errorf("%s: sign is not base64: %v", c.name, err)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("app_id=1&method=alipay.trade.query", "biz_content=%7B%7D&sign=x", "application/x-www-form-urlencoded")
	f.Add("method=a", "method=b", "application/x-www-form-urlencoded; charset=gbk")
	f.Fuzz(func(t *testing.T, query, body, ct string) {
		r := httptest.NewRequest("POST", "/gateway.do", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", ct)
		req := ReadRequest(r)
		values, err := req.Params()
		req.Method()
		if err == nil {
			for _, vs := range values {
				if len(vs) != 1 {
					t.Fatalf("a parameter has %d values", len(vs))
				}
			}
			ParseCall(values, time.Now())
		}
	})
}

// TestRefusalSignaturesMemoized: a repeated refusal reuses its signature,
// a rotated key signs afresh, and the memo stays within its bound.
func TestRefusalSignaturesMemoized(t *testing.T) {
	priv, _, _ := newKey(t)
	keys := &Keys{id: "pk_a", priv: priv}
	s := New(Config{Keys: keys, Clock: fixedClock(time.Now())})
	stranger := Request{Query: url.Values{"method": {"alipay.trade.query"}}}
	first := s.Handle(context.Background(), stranger)
	if again := s.Handle(context.Background(), stranger); string(again) != string(first) {
		t.Fatalf("a repeated refusal changed: %s then %s", first, again)
	}
	other, _, _ := newKey(t)
	keys.mu.Lock()
	keys.id, keys.priv = "pk_b", other
	keys.mu.Unlock()
	var raw map[string]json.RawMessage
	json.Unmarshal(s.Handle(context.Background(), stranger), &raw)
	var sig string
	json.Unmarshal(raw["sign"], &sig)
	if err := VerifyRSA2(&other.PublicKey, raw["alipay_trade_query_response"], sig); err != nil {
		t.Fatalf("after rotation the refusal is not signed with the new key: %v", err)
	}
	s.sigMu.Lock()
	for i := range refusalSigsMax {
		s.refusalSigs[fmt.Sprint(i)] = "x"
	}
	s.sigMu.Unlock()
	s.Handle(context.Background(), Request{Query: url.Values{"sign": {"a"}}, Body: url.Values{"sign": {"b"}}})
	s.sigMu.Lock()
	n := len(s.refusalSigs)
	s.sigMu.Unlock()
	if n != 1 {
		t.Fatalf("%d memoized signatures after one past the bound of %d, want 1", n, refusalSigsMax)
	}
}
