package bankapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
)

func TestSignVerifyRotation(t *testing.T) {
	now := time.Unix(1_289_440_800, 0)
	payload := []byte(`{"x":1}`)
	h := bankapi.Sign("new", now, payload)
	old := bankapi.Sign("old", now, payload)
	both := h + "," + old[strings.Index(old, "v1="):]
	for _, secret := range []string{"new", "old"} {
		if err := bankapi.Verify(secret, both, payload, now); err != nil {
			t.Fatalf("secret %s: %v", secret, err)
		}
	}
	if err := bankapi.Verify("new", h, payload, now.Add(6*time.Minute)); err == nil {
		t.Fatal("a signature six minutes old verified")
	}
	if err := bankapi.Verify("new", h, payload, now.Add(-6*time.Minute)); err == nil {
		t.Fatal("a signature six minutes ahead verified")
	}
	if err := bankapi.Verify("new", h, payload, now.Add(4*time.Minute)); err != nil {
		t.Fatalf("a signature four minutes old: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Unix(1_289_440_800, 0)
	payload := []byte(`{"request_id":"a"}`)
	good := bankapi.Sign("s", now, payload)
	v1 := good[strings.Index(good, "v1="):]
	tests := []struct{ name, header string }{
		{"empty", ""},
		{"garbage", "hello"},
		{"no timestamp", v1},
		{"no v1", "t=1289440800"},
		{"bad hex", "t=1289440800,v1=zz"},
		{"timestamp not a number", "t=soon," + v1},
		{"timestamp overflows", "t=-9223372036854775808," + v1},
		{"timestamp beyond int64", "t=99999999999999999999," + v1},
		{"other secret", bankapi.Sign("guess", now, payload)},
		{"other payload", bankapi.Sign("s", now, []byte(`{"request_id":"b"}`))},
		{"too many v1", "t=1289440800" + strings.Repeat(",v1=00", 4) + "," + v1},
		{"too long", good + "," + strings.Repeat("x=y,", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := bankapi.Verify("s", tt.header, payload, now); err == nil {
				t.Fatalf("Verify(%q) = nil, want an error", tt.header)
			}
		})
	}
	if err := bankapi.Verify("s", " "+strings.ReplaceAll(good, ",", " , "), payload, now); err != nil {
		t.Fatalf("spaces around the parts: %v", err)
	}
}

func TestEbankQuerySignature(t *testing.T) {
	q := url.Values{"request_id": {"TU1"}, "amount": {"80000"}, "return_url": {"https://zhifu.example/r"},
		"expires": {"1289442600"}}
	q.Set("sig", bankapi.SignEbankQuery("s", q))
	if !bankapi.VerifyEbankQuery("s", q) {
		t.Fatal("a signed link does not verify")
	}
	extra := url.Values{}
	for k, v := range q {
		extra[k] = v
	}
	extra.Set("utm_source", "sms")
	if !bankapi.VerifyEbankQuery("s", extra) {
		t.Fatal("an unsigned extra parameter broke the signature")
	}
	for _, k := range bankapi.EbankSignedParams() {
		forged := url.Values{}
		for kk, v := range q {
			forged[kk] = v
		}
		forged.Set(k, forged.Get(k)+"1")
		if bankapi.VerifyEbankQuery("s", forged) {
			t.Errorf("changing %s kept the signature valid", k)
		}
	}
	if bankapi.VerifyEbankQuery("other", q) {
		t.Fatal("another secret verified the link")
	}
	if names := bankapi.EbankSignedParams(); len(names) > 0 {
		names[0] = "changed"
		if bankapi.EbankSignedParams()[0] == "changed" {
			t.Fatal("EbankSignedParams gave away its own slice")
		}
	}
}
