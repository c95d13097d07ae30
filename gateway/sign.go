package gateway

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// SignContent is the string Alipay's RSA2 signatures cover: every parameter
// except the excluded ones and those with empty values, as key=value, sorted
// by key, joined with &. Values are taken as they are, not URL-encoded.
func SignContent(values url.Values, exclude ...string) string {
	skip := make(map[string]bool, len(exclude))
	for _, k := range exclude {
		skip[k] = true
	}
	pairs := make([]string, 0, len(values))
	for k, vs := range values {
		if skip[k] {
			continue
		}
		for _, v := range vs {
			if v != "" {
				pairs = append(pairs, k+"="+v)
			}
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// SignRSA2 signs content with SHA256withRSA (PKCS#1 v1.5) and returns the
// signature in standard base64, as Alipay does.
func SignRSA2(key *rsa.PrivateKey, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("gateway: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyRSA2 checks a base64 SHA256withRSA signature over content.
func VerifyRSA2(key *rsa.PublicKey, content []byte, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return errors.New("gateway: signature is not base64")
	}
	sum := sha256.Sum256(content)
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig)
}

// rsaKeyBitsMin refuses keys too short to trust.
const rsaKeyBitsMin = 2048

// ParsePublicKey reads an RSA public key as Alipay's console shows it: a PEM
// block, or the bare base64 of the DER (PKIX, or PKCS#1 for older tools).
func ParsePublicKey(s string) (*rsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, errors.New("public key is neither PEM nor base64 DER")
		}
		der = b
	}
	var pub *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("public key is not RSA")
		}
		pub = rk
	} else if rk, err := x509.ParsePKCS1PublicKey(der); err == nil {
		pub = rk
	} else {
		return nil, errors.New("public key does not parse as PKIX or PKCS#1")
	}
	if pub.N.BitLen() < rsaKeyBitsMin {
		return nil, fmt.Errorf("RSA key has %d bits, at least %d are required", pub.N.BitLen(), rsaKeyBitsMin)
	}
	return pub, nil
}
