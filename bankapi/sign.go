package bankapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of every request the platform sends
// a bank and of every callback a bank sends the platform.
const SignatureHeader = "Bank-Signature"

// signatureToleranceSec is how far a signature's timestamp may be from the
// verifier's clock: enough for skewed clocks, short enough that a captured
// request cannot be replayed for long.
const signatureToleranceSec = 300

// Limits of a Bank-Signature value: signatureBytesMax bounds its length and
// signaturesMax its v1 values (two are enough to rotate a secret; a few more
// leave room for a slow rotation).
const (
	signatureBytesMax = 1024
	signaturesMax     = 4
)

// ErrSignature is returned by Verify for a missing, malformed, stale or wrong
// signature.
var ErrSignature = errors.New("bankapi: invalid signature")

// Sign returns the Bank-Signature value for payload at time t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<payload>")>".
func Sign(secret string, t time.Time, payload []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, payload))
}

func mac(secret, ts string, payload []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(payload)
	return m.Sum(nil)
}

// Verify checks a Bank-Signature value against payload: one of its v1 MACs
// must match and its timestamp be within five minutes of now. Several v1
// values are allowed so that a secret can be rotated.
func Verify(secret, header string, payload []byte, now time.Time) error {
	if len(header) > signatureBytesMax {
		return ErrSignature
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(sigs) == signaturesMax {
				return ErrSignature
			}
			sigs = append(sigs, b)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignature
	}
	// Compared without subtracting, which could overflow for a forged t.
	if at := now.Unix(); unix < at-signatureToleranceSec || unix > at+signatureToleranceSec {
		return fmt.Errorf("%w: timestamp %d is more than %ds from %d", ErrSignature, unix, signatureToleranceSec, at)
	}
	want := mac(secret, ts, payload)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignature
}

// ebankSignedParams are the online-banking link's parameters covered by
// sig, in name order.
var ebankSignedParams = [...]string{"amount", "callback_url", "expires", "request_id", "return_url"}

// EbankSignedParams returns the names of the online-banking link's
// parameters that sig covers, in name order.
func EbankSignedParams() []string { return append([]string(nil), ebankSignedParams[:]...) }

// SignEbankQuery returns the sig parameter of an online-banking link: hex
// HMAC-SHA256(secret, canonical), canonical being q's signed parameters
// (request_id, amount, return_url, callback_url, expires) form-encoded in
// name order. Other parameters, sig included, are ignored.
func SignEbankQuery(secret string, q url.Values) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ebankCanonical(q)))
	return hex.EncodeToString(m.Sum(nil))
}

func ebankCanonical(q url.Values) string {
	c := url.Values{}
	for _, k := range ebankSignedParams {
		if v, ok := q[k]; ok {
			c[k] = v
		}
	}
	return c.Encode()
}

// VerifyEbankQuery reports whether q carries a valid sig.
func VerifyEbankQuery(secret string, q url.Values) bool {
	got, err := hex.DecodeString(q.Get("sig"))
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(SignEbankQuery(secret, q))
	return hmac.Equal(got, want)
}
