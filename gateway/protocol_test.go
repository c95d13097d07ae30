package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"
)

func newKey(t testing.TB) (*rsa.PrivateKey, string, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, string(privPEM), base64.StdEncoding.EncodeToString(pub)
}

// TestSDKRequestVerifies: a request the unmodified SDK signs passes our
// parsing and signature check, and a tampered one does not.
func TestSDKRequestVerifies(t *testing.T) {
	_, privPEM, pubB64 := newKey(t)
	client, err := alipay.New("2021000000000001", privPEM, false, alipay.WithTimeLocation(beijing))
	if err != nil {
		t.Fatal(err)
	}
	form, err := client.EncodeParam(alipay.TradeQuery{OutTradeNo: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	values, _ := url.ParseQuery(form)
	call, perr := ParseCall(values, time.Now())
	if perr != nil {
		t.Fatalf("parse: %v", perr)
	}
	pub, err := ParsePublicKey(pubB64)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRSA2(pub, []byte(SignContent(values, "sign")), values.Get("sign")); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if call.Method != "alipay.trade.query" || !strings.Contains(string(call.Biz), "o-1") {
		t.Fatalf("call = %+v", call)
	}
	values.Set("biz_content", `{"out_trade_no":"o-2"}`)
	if err := VerifyRSA2(pub, []byte(SignContent(values, "sign")), values.Get("sign")); err == nil {
		t.Fatal("a tampered request verified")
	}
}

func TestParseCallRefusals(t *testing.T) {
	now := time.Now()
	good := url.Values{"app_id": {"1"}, "method": {"alipay.trade.query"}, "sign": {"x"}, "sign_type": {"RSA2"},
		"timestamp": {FormatTime(now)}, "version": {"1.0"}, "charset": {"utf-8"}, "biz_content": {`{}`}}
	cases := []struct {
		name, key, value, sub string
	}{
		{"no method", "method", "", "isv.missing-method"},
		{"no app", "app_id", "", "isv.missing-app-id"},
		{"no sign", "sign", "", "isv.missing-signature"},
		{"RSA", "sign_type", "RSA", "isv.invalid-signature-type"},
		{"gbk", "charset", "gbk", "isv.invalid-charset"},
		{"stale", "timestamp", FormatTime(now.Add(-11 * time.Minute)), "isv.invalid-timestamp"},
		{"future", "timestamp", FormatTime(now.Add(11 * time.Minute)), "isv.invalid-timestamp"},
		{"bad time", "timestamp", "2026/01/01", "isv.invalid-timestamp"},
		{"bad biz", "biz_content", `{"a":`, "isv.invalid-parameter"},
		{"array biz", "biz_content", `[1]`, "isv.invalid-parameter"},
		{"app auth token", "app_auth_token", "202401BB", "aop.invalid-app-auth-token"},
	}
	if _, err := ParseCall(good, now); err != nil {
		t.Fatalf("good call refused: %v", err)
	}
	for _, c := range cases {
		v := url.Values{}
		for k, vs := range good {
			v[k] = vs
		}
		v.Set(c.key, c.value)
		if _, err := ParseCall(v, now); err == nil || err.SubCode != c.sub {
			t.Errorf("%s: got %v, want %s", c.name, err, c.sub)
		}
	}
}

func FuzzParseCall(f *testing.F) {
	f.Add("app_id=1&method=alipay.trade.query&sign=x&sign_type=RSA2&timestamp=2026-01-01+00:00:00&version=1.0&biz_content=%7B%7D")
	f.Add("biz_content=%7B%22a%22%3A1%7D")
	f.Fuzz(func(t *testing.T, form string) {
		values, err := url.ParseQuery(form)
		if err != nil {
			return
		}
		ParseCall(values, time.Now())
		SignContent(values, "sign")
	})
}
