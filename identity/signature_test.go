package identity_test

import (
	"bytes"
	"strings"
	"testing"

	"zhifu/identity"
)

const goodHeader = "ZHIFU-HMAC-SHA256 merchant_id=m0000000001,timestamp=1767225600,nonce=abcdef0123456789," +
	"signature=K2X2mQv1V0oLw0hW6Nn1bq8m0yJ7QF2m8c1t3Fh5m2o="

func TestParseAuthorization(t *testing.T) {
	a, err := identity.ParseAuthorization(goodHeader)
	if err != nil {
		t.Fatal(err)
	}
	if a.MerchantID != "m0000000001" || a.Timestamp != 1767225600 || a.Nonce != "abcdef0123456789" || len(a.Signature) != 32 {
		t.Fatalf("parsed %+v", a)
	}
	if a.String() != goodHeader {
		t.Fatalf("String() = %q, want %q", a.String(), goodHeader)
	}
	// Any order, and spaces after the commas, are accepted.
	reordered := "ZHIFU-HMAC-SHA256 nonce=abcdef0123456789, signature=K2X2mQv1V0oLw0hW6Nn1bq8m0yJ7QF2m8c1t3Fh5m2o=, " +
		"timestamp=1767225600, merchant_id=m0000000001"
	if b, err := identity.ParseAuthorization(reordered); err != nil || b.String() != goodHeader {
		t.Fatalf("reordered: %v %q", err, b.String())
	}
	bad := map[string]string{
		"empty":            "",
		"bearer":           "Bearer abc",
		"scheme only":      "ZHIFU-HMAC-SHA256 ",
		"lowercase scheme": strings.Replace(goodHeader, "ZHIFU", "zhifu", 1),
		"missing nonce":    strings.Replace(goodHeader, "nonce=abcdef0123456789,", "", 1),
		"repeated":         goodHeader + ",nonce=abcdef0123456789",
		"unknown":          goodHeader + ",extra=1",
		"trailing comma":   goodHeader + ",",
		"signed ts":        strings.Replace(goodHeader, "=1767225600", "=+1767225600", 1),
		"negative ts":      strings.Replace(goodHeader, "=1767225600", "=-1767225600", 1),
		"huge ts":          strings.Replace(goodHeader, "=1767225600", "=17672256000000", 1),
		"short nonce":      strings.Replace(goodHeader, "abcdef0123456789", "abc", 1),
		"nonce charset":    strings.Replace(goodHeader, "abcdef0123456789", "abcdef01234567+9", 1),
		"long nonce":       strings.Replace(goodHeader, "abcdef0123456789", strings.Repeat("a", 65), 1),
		"short signature":  strings.Replace(goodHeader, "K2X2mQv1V0oLw0hW6Nn1bq8m0yJ7QF2m8c1t3Fh5m2o=", "K2X2", 1),
		"unpadded sig":     strings.Replace(goodHeader, "m2o=", "m2o", 1),
		"merchant charset": strings.Replace(goodHeader, "m0000000001", "m00/00001", 1),
		"no equals":        strings.Replace(goodHeader, "nonce=", "nonce", 1),
		"too long":         goodHeader + strings.Repeat(" ", 600),
	}
	for name, h := range bad {
		if a, err := identity.ParseAuthorization(h); err == nil {
			t.Errorf("%s: accepted %+v", name, a)
		}
	}
}

// FuzzParseAuthorization checks that the parser never panics and that
// whatever it accepts, written back, parses to the same thing.
func FuzzParseAuthorization(f *testing.F) {
	f.Add(goodHeader)
	f.Add("ZHIFU-HMAC-SHA256 merchant_id=a,timestamp=0,nonce=________,signature=" + strings.Repeat("A", 43) + "=")
	f.Add("ZHIFU-HMAC-SHA256 a=b,c=d")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := identity.ParseAuthorization(h)
		if err != nil {
			return
		}
		b, err := identity.ParseAuthorization(a.String())
		if err != nil {
			t.Fatalf("%q accepted, but its rewrite %q is not: %v", h, a.String(), err)
		}
		if a.MerchantID != b.MerchantID || a.Timestamp != b.Timestamp || a.Nonce != b.Nonce || !bytes.Equal(a.Signature, b.Signature) {
			t.Fatalf("round trip changed %+v to %+v", a, b)
		}
		if len(a.Signature) != 32 || len(a.Nonce) < 8 || len(a.Nonce) > 64 || a.MerchantID == "" || a.Timestamp < 0 {
			t.Fatalf("accepted out of bounds: %+v", a)
		}
	})
}
