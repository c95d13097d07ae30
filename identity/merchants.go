package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"zhifu/ledger"
	"zhifu/notify"
)

// Bounds on what a merchant is created with.
const (
	// appKeyTextLenMax bounds the public key text we parse; a 4096-bit key
	// in PEM is under 1 KiB.
	appKeyTextLenMax = 8 << 10
	// appKeyBitsMin is the smallest RSA key Alipay accepts for RSA2.
	appKeyBitsMin = 2048
	// merchantIDLenMax bounds ids looked up, whatever their source.
	merchantIDLenMax = 64
)

// CreateMerchant registers a merchant whose money goes to userID's wallet.
// notifyURL and appPublicKey are optional. The returned secret is the HMAC
// key the merchant signs with; the API shows it once.
func (s *Service) CreateMerchant(ctx context.Context, name, userID, notifyURL, appPublicKey string) (*Merchant, string, error) {
	if err := checkName(name, "name"); err != nil {
		return nil, "", err
	}
	if err := notify.CheckURL(s.cfg.Egress, notifyURL); err != nil {
		return nil, "", err
	}
	key, err := normalizeAppPublicKey(appPublicKey)
	if err != nil {
		return nil, "", err
	}
	// Users are never deleted, so the user found now still exists when the
	// merchant row commits.
	if _, err := s.UserByID(ctx, userID); err != nil {
		return nil, "", err
	}
	raw := make([]byte, secretBytes)
	rand.Read(raw)
	secret := base64.RawURLEncoding.EncodeToString(raw)
	tmp := make([]byte, 16)
	rand.Read(tmp)
	op := &createMerchantOp{
		m:   Merchant{Name: name, UserID: userID, NotifyURL: notifyURL, AppPublicKey: key, secret: secret},
		now: s.now(), tmp: "new:" + hex.EncodeToString(tmp),
	}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, "", fmt.Errorf("create merchant: %w", err)
	}
	m := op.created
	s.cacheMerchant(m, op.now)
	return &m, secret, nil
}

// MerchantByID returns a merchant by merchant_id, or 404 NOT_FOUND.
func (s *Service) MerchantByID(ctx context.Context, merchantID string) (*Merchant, error) {
	return s.merchantBy(ctx, s.merchants, "merchant_id", merchantID)
}

// MerchantByAppID returns a merchant by its gateway app_id, or 404
// NOT_FOUND.
func (s *Service) MerchantByAppID(ctx context.Context, appID string) (*Merchant, error) {
	return s.merchantBy(ctx, s.apps, "app_id", appID)
}

// merchantBy looks a merchant up by one of its unique columns; column is
// one of two constants, never caller input.
func (s *Service) merchantBy(ctx context.Context, c *cache[string, Merchant], column, id string) (*Merchant, error) {
	missing := notFound(column, "no such merchant")
	if id == "" || len(id) > merchantIDLenMax {
		return nil, missing
	}
	now := s.now()
	if m, ok := c.get(id, now); ok {
		return &m, nil
	}
	var m Merchant
	var created int64
	err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT num, merchant_id, app_id, name, user_id, secret,
		notify_url, app_public_key, created_at FROM merchants WHERE `+column+` = ?`, id).
		Scan(&m.Num, &m.MerchantID, &m.AppID, &m.Name, &m.UserID, &m.secret, &m.NotifyURL, &m.AppPublicKey, &created)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, missing
	}
	if err != nil {
		return nil, fmt.Errorf("merchant by %s: %w", column, err)
	}
	m.CreatedAt = time.Unix(0, created).UTC()
	s.cacheMerchant(m, now)
	return &m, nil
}

func (s *Service) cacheMerchant(m Merchant, now time.Time) {
	s.merchants.put(m.MerchantID, m, now.Add(recordCacheTTL), now)
	s.apps.put(m.AppID, m, now.Add(recordCacheTTL), now)
}

// normalizeAppPublicKey accepts a merchant's RSA public key as PEM ("PUBLIC
// KEY" or "RSA PUBLIC KEY") or as the bare base64 DER that Alipay's console
// shows, and returns it as base64 PKIX DER, the one form we store. "" stays
// "": the key is optional until the merchant uses the gateway.
func normalizeAppPublicKey(text string) (string, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return "", nil
	}
	bad := invalid("app_public_key", fmt.Sprintf(
		"app_public_key must be an RSA public key of at least %d bits, PEM or base64 DER", appKeyBitsMin))
	if len(text) > appKeyTextLenMax {
		return "", bad
	}
	var der []byte
	if strings.HasPrefix(text, "-----BEGIN") {
		block, rest := pem.Decode([]byte(text))
		if block == nil || (block.Type != "PUBLIC KEY" && block.Type != "RSA PUBLIC KEY") ||
			strings.TrimSpace(string(rest)) != "" {
			return "", bad
		}
		der = block.Bytes
	} else {
		var err error
		der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
		if err != nil {
			return "", bad
		}
	}
	pub := parseRSAPublicKey(der)
	if pub == nil || pub.N.BitLen() < appKeyBitsMin {
		return "", bad
	}
	out, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", bad
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// parseRSAPublicKey reads PKIX DER, or PKCS#1 DER as older tools write it.
func parseRSAPublicKey(der []byte) *rsa.PublicKey {
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		pub, _ := k.(*rsa.PublicKey)
		return pub
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return pub
	}
	return nil
}
