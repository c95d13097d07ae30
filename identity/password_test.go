package identity

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	h, err := s.hashPassword(ctx, "correct horse 马")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" || parts[1] != "310000" {
		t.Fatalf("stored form %q", h)
	}
	if h2, _ := s.hashPassword(ctx, "correct horse 马"); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for pw, want := range map[string]bool{"correct horse 马": true, "correct horse": false, "": false} {
		if ok, err := s.checkPassword(ctx, h, pw); err != nil || ok != want {
			t.Errorf("check %q = %v, %v; want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "md5$1$aa$bb", "pbkdf2-sha256$0$AAAA$" + parts[3],
		"pbkdf2-sha256$99999999$AAAA$" + parts[3], "pbkdf2-sha256$1$!!$" + parts[3], "pbkdf2-sha256$1$AAAA$AAAA"} {
		if _, err := s.checkPassword(ctx, bad, "x"); err == nil {
			t.Errorf("stored hash %q accepted", bad)
		}
	}
	if _, _, _, err := parsePasswordHash(dummyHash); err != nil {
		t.Fatalf("dummy hash does not parse: %v", err)
	}
}

// TestHashSlotsHonourContext checks that a caller waiting for a hashing slot
// gives up when its context ends.
func TestHashSlotsHonourContext(t *testing.T) {
	s := New(Config{})
	for range cap(s.hashSlots) {
		s.hashSlots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.hashPassword(ctx, "password1"); err == nil {
		t.Fatal("hashed without a free slot")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache[int, int](3)
	now := time.Unix(0, 0)
	for i := range 10 {
		c.put(i, i, now.Add(time.Minute), now)
	}
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3", c.len())
	}
	if v, ok := c.get(9, now); !ok || v != 9 {
		t.Fatalf("newest entry lost")
	}
	if _, ok := c.get(9, now.Add(time.Minute)); ok {
		t.Fatal("expired entry returned")
	}
}
