package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// AuthScheme names API.md's signature scheme in the Authorization header:
//
//	ZHIFU-HMAC-SHA256 merchant_id=<id>,timestamp=<unix seconds>,nonce=<random>,signature=<base64>
const AuthScheme = "ZHIFU-HMAC-SHA256"

// Bounds of the Authorization header's parts.
const (
	authHeaderLenMax = 512
	nonceLenMin      = 8
	nonceLenMax      = 64
	// timestampDigitsMax allows any time up to the year 33658 and keeps the
	// arithmetic far from overflow.
	timestampDigitsMax = 12
)

// Authorization is a parsed signed-request header.
type Authorization struct {
	MerchantID string
	Timestamp  int64 // unix seconds
	Nonce      string
	Signature  []byte // HMAC-SHA256, 32 bytes
}

// String writes the header back in API.md's order.
func (a Authorization) String() string {
	return fmt.Sprintf("%s merchant_id=%s,timestamp=%d,nonce=%s,signature=%s", AuthScheme,
		a.MerchantID, a.Timestamp, a.Nonce, base64.StdEncoding.EncodeToString(a.Signature))
}

// ParseAuthorization reads a signed request's Authorization header. The
// four parameters may come in any order, each exactly once, separated by
// commas (spaces around them are ignored). Errors say what is wrong without
// repeating the header, so they are safe to log.
func ParseAuthorization(header string) (Authorization, error) {
	var a Authorization
	if len(header) > authHeaderLenMax {
		return a, errors.New("authorization header too long")
	}
	rest, ok := strings.CutPrefix(header, AuthScheme+" ")
	if !ok {
		return a, errors.New("authorization scheme is not " + AuthScheme)
	}
	seen := make(map[string]bool, 4)
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.Trim(part, " "), "=")
		if !ok || seen[k] {
			return a, errors.New("authorization parameters malformed or repeated")
		}
		seen[k] = true
		if err := a.set(k, v); err != nil {
			return a, err
		}
	}
	if len(seen) != 4 {
		return a, errors.New("authorization parameters missing")
	}
	return a, nil
}

// set reads one parameter.
func (a *Authorization) set(k, v string) error {
	switch k {
	case "merchant_id":
		if !token(v, 1, merchantIDLenMax) {
			return errors.New("merchant_id malformed")
		}
		a.MerchantID = v
	case "timestamp":
		if v == "" || len(v) > timestampDigitsMax || strings.Trim(v, "0123456789") != "" {
			return errors.New("timestamp malformed")
		}
		a.Timestamp, _ = strconv.ParseInt(v, 10, 64) // digits only, at most 12: cannot fail
	case "nonce":
		if !token(v, nonceLenMin, nonceLenMax) {
			return errors.New("nonce malformed")
		}
		a.Nonce = v
	case "signature":
		sig, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(sig) != sha256.Size {
			return errors.New("signature malformed")
		}
		a.Signature = sig
	default:
		return errors.New("authorization parameter unknown")
	}
	return nil
}

// token reports whether s is min..max characters of [A-Za-z0-9_-].
func token(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBase64URL(s[i]) {
			return false
		}
	}
	return true
}

// Sign returns the HMAC-SHA256 a merchant sends for a request:
// HMAC(secret, "METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE\nBODY\n").
func Sign(secret, method, pathAndQuery string, timestamp int64, nonce string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%s\n%s\n%d\n%s\n", method, pathAndQuery, timestamp, nonce)
	mac.Write(body)
	mac.Write([]byte{'\n'})
	return mac.Sum(nil)
}

// VerifyMerchantRequest checks a signed merchant request and returns the
// merchant, spending the request's nonce in a transaction of its own. The
// checks run cheapest first, and the nonce is spent last, so that a request
// with a bad signature cannot burn a good client's nonce. Every refusal is
// the same 401 INVALID_SIGNATURE; the reason goes to the log, never the
// signature or the secret.
func (s *Service) VerifyMerchantRequest(ctx context.Context, authorization, method, pathAndQuery string, body []byte) (*Merchant, error) {
	m, guard, err := s.VerifyMerchantSignature(ctx, authorization, method, pathAndQuery, body)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Batcher.RunGuard(ledger.WithGuard(ctx, guard)); err != nil {
		return nil, err
	}
	return m, nil
}

// VerifyMerchantSignature checks everything about a signed merchant request
// but its nonce, and returns the guard that spends the nonce. A request that
// changes something puts the guard in its context (ledger.WithGuard), so the
// nonce is spent in the same transaction as the change and a replay changes
// nothing; one that changes nothing spends it with Batcher.RunGuard.
func (s *Service) VerifyMerchantSignature(ctx context.Context, authorization, method, pathAndQuery string, body []byte) (*Merchant, ledger.Guard, error) {
	a, err := ParseAuthorization(authorization)
	if err != nil {
		return nil, nil, s.refuseSignature(ctx, "", err.Error())
	}
	m, err := s.MerchantByID(ctx, a.MerchantID)
	if zhifu.ErrorCode(err) == zhifu.NotFound {
		return nil, nil, s.refuseSignature(ctx, a.MerchantID, "unknown merchant")
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.now().Unix()
	if skew := now - a.Timestamp; skew > int64(SignatureWindow/time.Second) || -skew > int64(SignatureWindow/time.Second) {
		return nil, nil, s.refuseSignature(ctx, a.MerchantID, "timestamp outside the window")
	}
	want := Sign(m.secret, method, pathAndQuery, a.Timestamp, a.Nonce, body)
	if !hmac.Equal(want, a.Signature) {
		return nil, nil, s.refuseSignature(ctx, a.MerchantID, "signature mismatch")
	}
	// The nonce must be remembered while its timestamp is still acceptable.
	return m, &nonceGuard{svc: s, merchantID: m.MerchantID, nonce: a.Nonce,
		expires: time.Unix(a.Timestamp, 0).Add(SignatureWindow)}, nil
}

func (s *Service) refuseSignature(ctx context.Context, merchantID, reason string) error {
	s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "merchant signature refused",
		slog.String("merchant_id", merchantID), slog.String("reason", reason))
	return zhifu.Errorf(zhifu.InvalidSignature, "the request signature is missing, invalid, stale or replayed")
}
