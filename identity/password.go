package identity

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Password hashing: PBKDF2 with HMAC-SHA-256, the one slow hash in Go's
// standard library. Each stored hash carries its own iteration count, so the
// count can be raised later without invalidating older passwords.
const (
	// passwordIterations follows OWASP's 2021 advice for PBKDF2-HMAC-SHA256:
	// about 45 ms of one CPU per hash.
	passwordIterations = 310_000
	// passwordIterationsMax refuses stored hashes whose count would let a
	// corrupted row pin a CPU for minutes.
	passwordIterationsMax = 10_000_000
	passwordSaltBytes     = 16
	passwordKeyBytes      = sha256.Size
	passwordScheme        = "pbkdf2-sha256"
)

var errBadHash = errors.New("identity: malformed password hash")

// hashPassword returns the stored form of password:
// "pbkdf2-sha256$<iterations>$<salt>$<hash>", salt and hash in unpadded
// standard base64.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, passwordSaltBytes)
	rand.Read(salt) // never fails (crypto/rand panics instead)
	key, err := s.derive(ctx, password, salt, passwordIterations)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s$%d$%s$%s", passwordScheme, passwordIterations,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the stored hash, comparing
// in constant time.
func (s *Service) checkPassword(ctx context.Context, stored, password string) (bool, error) {
	iter, salt, want, err := parsePasswordHash(stored)
	if err != nil {
		return false, err
	}
	got, err := s.derive(ctx, password, salt, iter)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// derive runs PBKDF2 in one of the service's hashing slots, waiting for a
// slot no longer than ctx allows.
func (s *Service) derive(ctx context.Context, password string, salt []byte, iter int) ([]byte, error) {
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.hashSlots }()
	return pbkdf2.Key(sha256.New, password, salt, iter, passwordKeyBytes)
}

func parsePasswordHash(stored string) (iter int, salt, key []byte, err error) {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != passwordScheme {
		return 0, nil, nil, errBadHash
	}
	iter, err = strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > passwordIterationsMax {
		return 0, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[2])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(key) != passwordKeyBytes {
		return 0, nil, nil, errBadHash
	}
	return iter, salt, key, nil
}

// dummyHash is checked against when a login names no user, so that an
// unknown login takes as long to refuse as a wrong password and the timing
// does not tell which logins exist.
var dummyHash = fmt.Sprintf("%s$%d$%s$%s", passwordScheme, passwordIterations,
	base64.RawStdEncoding.EncodeToString(make([]byte, passwordSaltBytes)),
	base64.RawStdEncoding.EncodeToString(make([]byte, passwordKeyBytes)))
