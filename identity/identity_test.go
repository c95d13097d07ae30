package identity_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/sqlite"
)

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	svc   *identity.Service
	db    *sqlite.DB
	clock *clock
	logs  *syncBuffer
}

// newFixture runs the service over a real SQLite database.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b := ledger.NewBatcher(db, c.Now)
	t.Cleanup(func() {
		b.Close()
		db.Close()
	})
	logs := &syncBuffer{}
	svc := identity.New(identity.Config{Store: db, Batcher: b, Clock: c,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return &fixture{svc: svc, db: db, clock: c, logs: logs}
}

func wantCode(t *testing.T, err error, code, param string) {
	t.Helper()
	if got := zhifu.ErrorCode(err); got != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	if e, ok := err.(*zhifu.Error); ok && param != "" && e.Param != param {
		t.Fatalf("param = %q, want %q (%v)", e.Param, param, err)
	}
}

func TestCreateUserAndLogin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.svc.CreateUser(ctx, "alice@example.com", "correct horse", "Alice 张")
	if err != nil {
		t.Fatal(err)
	}
	if u.UserID != zhifu.UserIDOf(u.Num) || u.Login != "alice@example.com" {
		t.Fatalf("user = %+v", u)
	}
	// The user's ledger accounts exist, with the wallet rules.
	accounts, err := f.db.LookupAccounts(ctx, []int64{zhifu.WalletAccountID(u.Num), zhifu.FrozenAccountID(u.Num)})
	if err != nil || len(accounts) != 2 {
		t.Fatalf("accounts = %+v, %v", accounts, err)
	}
	for _, a := range accounts {
		if a.Flags != ledger.DebitsMustNotExceedCredits || a.Ledger != 156 {
			t.Errorf("account %+v", a)
		}
	}
	if accounts[0].Code != zhifu.AccountWallet || accounts[1].Code != zhifu.AccountFrozen {
		t.Errorf("codes %d %d", accounts[0].Code, accounts[1].Code)
	}

	_, err = f.svc.CreateUser(ctx, "alice@example.com", "another password", "Other")
	wantCode(t, err, zhifu.InvalidRequest, "login")

	token, lu, err := f.svc.Login(ctx, "alice@example.com", "correct horse")
	if err != nil || lu.UserID != u.UserID {
		t.Fatalf("login: %v %+v", err, lu)
	}
	got, err := f.svc.UserByToken(ctx, token)
	if err != nil || got.UserID != u.UserID || got.Num != u.Num {
		t.Fatalf("by token: %v %+v", err, got)
	}
	_, _, err = f.svc.Login(ctx, "alice@example.com", "wrong horse!")
	wantCode(t, err, zhifu.Unauthorized, "")
	_, _, err2 := f.svc.Login(ctx, "nobody", "correct horse")
	wantCode(t, err2, zhifu.Unauthorized, "")
	if err.Error() != err2.Error() {
		t.Errorf("wrong password %q and unknown login %q differ", err, err2)
	}
	for _, bad := range []string{"", "x", token + "x", strings.Repeat("A", len(token))} {
		_, err := f.svc.UserByToken(ctx, bad)
		wantCode(t, err, zhifu.Unauthorized, "")
	}

	// Sessions end after SessionTTL, cached or not.
	f.clock.Advance(identity.SessionTTL - time.Second)
	if _, err := f.svc.UserByToken(ctx, token); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	f.clock.Advance(time.Second)
	_, err = f.svc.UserByToken(ctx, token)
	wantCode(t, err, zhifu.Unauthorized, "")

	byID, err := f.svc.UserByID(ctx, u.UserID)
	if err != nil || byID.Login != u.Login {
		t.Fatalf("by id: %v %+v", err, byID)
	}
	for _, id := range []string{"", "2088000000009999", "nope"} {
		_, err := f.svc.UserByID(ctx, id)
		wantCode(t, err, zhifu.NotFound, "user_id")
	}
	if strings.Contains(f.logs.String(), token) || strings.Contains(f.logs.String(), "correct horse") {
		t.Error("a token or password reached the log")
	}
}

func TestCreateUserRefusals(t *testing.T) {
	f := newFixture(t)
	cases := []struct{ login, password, name, param string }{
		{"ab", "password1", "A", "login"},
		{strings.Repeat("a", 65), "password1", "A", "login"},
		{"has space", "password1", "A", "login"},
		{"semi;colon", "password1", "A", "login"},
		{"bob", "short", "A", "password"},
		{"bob", strings.Repeat("p", 129), "A", "password"},
		{"bob", "password1", "", "name"},
		{"bob", "password1", "   ", "name"},
		{"bob", "password1", strings.Repeat("名", 65), "name"},
		{"bob", "password1", "tab\there", "name"},
	}
	for _, c := range cases {
		_, err := f.svc.CreateUser(context.Background(), c.login, c.password, c.name)
		wantCode(t, err, zhifu.InvalidRequest, c.param)
	}
}

func TestConcurrentSameLogin(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.svc.CreateUser(context.Background(), "carol", "password1", "Carol")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantCode(t, err, zhifu.InvalidRequest, "login")
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 4 creations succeeded, want 1: %v", ok, errs)
	}
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCreateMerchant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.svc.CreateUser(ctx, "shop", "password1", "Shop owner")
	if err != nil {
		t.Fatal(err)
	}
	key := rsaKey(t, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	b64 := base64.StdEncoding.EncodeToString(der)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}))
	for name, text := range map[string]string{"pem": pemText, "base64": b64, "pkcs1": pkcs1,
		"wrapped base64": b64[:64] + "\n" + b64[64:]} {
		m, secret, err := f.svc.CreateMerchant(ctx, "Shop "+name, u.UserID, "https://shop.example/notify", text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.AppPublicKey != b64 {
			t.Errorf("%s: stored key %q, want normalized base64 DER", name, m.AppPublicKey)
		}
		if m.MerchantID != zhifu.MerchantIDOf(m.Num) || m.AppID != zhifu.AppIDOf(m.Num) || len(secret) < 40 || m.Secret() != secret {
			t.Errorf("%s: merchant %+v", name, m)
		}
		byID, err := f.svc.MerchantByID(ctx, m.MerchantID)
		if err != nil || byID.Secret() != secret || byID.UserID != u.UserID {
			t.Errorf("%s: by id %v %+v", name, err, byID)
		}
		byApp, err := f.svc.MerchantByAppID(ctx, m.AppID)
		if err != nil || byApp.MerchantID != m.MerchantID {
			t.Errorf("%s: by app id %v %+v", name, err, byApp)
		}
	}
	small := rsaKey(t, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for name, text := range map[string]string{
		"1024 bits": base64.StdEncoding.EncodeToString(smallDER),
		"ecdsa":     base64.StdEncoding.EncodeToString(ecDER),
		"garbage":   "not a key",
		"pem+junk":  pemText + "trailing",
		"cert type": strings.Replace(pemText, "PUBLIC KEY", "CERTIFICATE", 2),
	} {
		_, _, err := f.svc.CreateMerchant(ctx, "Shop", u.UserID, "", text)
		if e, ok := err.(*zhifu.Error); !ok || e.Code != zhifu.InvalidRequest || e.Param != "app_public_key" {
			t.Errorf("%s: %v, want INVALID_REQUEST app_public_key", name, err)
		}
	}
	for _, url := range []string{"ftp://x/y", "/relative", "https://", "http://a b/", "https://x/" + strings.Repeat("a", 1024)} {
		_, _, err := f.svc.CreateMerchant(ctx, "Shop", u.UserID, url, "")
		if e, ok := err.(*zhifu.Error); !ok || e.Code != zhifu.InvalidRequest || e.Param != "notify_url" {
			t.Errorf("notify_url %.20q: %v", url, err)
		}
	}
	_, _, err = f.svc.CreateMerchant(ctx, "Shop", "2088000000000999", "", "")
	wantCode(t, err, zhifu.NotFound, "user_id")
	_, err = f.svc.MerchantByID(ctx, "m9999999999")
	wantCode(t, err, zhifu.NotFound, "merchant_id")
	_, err = f.svc.MerchantByAppID(ctx, "2021000000009999")
	wantCode(t, err, zhifu.NotFound, "app_id")
}

// signed builds a request's Authorization header the way a merchant would.
func signed(id, secret, method, path string, ts time.Time, nonce string, body []byte) string {
	sig := identity.Sign(secret, method, path, ts.Unix(), nonce, body)
	return identity.Authorization{MerchantID: id, Timestamp: ts.Unix(), Nonce: nonce, Signature: sig}.String()
}

func TestVerifyMerchantRequest(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, _ := f.svc.CreateUser(ctx, "shop", "password1", "Shop")
	m, secret, err := f.svc.CreateMerchant(ctx, "Shop", u.UserID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	other, otherSecret, _ := f.svc.CreateMerchant(ctx, "Other", u.UserID, "", "")
	body := []byte(`{"out_trade_no":"A1","total_amount":"12.30"}`)
	now := f.clock.Now()
	n := 0
	nonce := func() string { n++; return fmt.Sprintf("nonce%08d", n) }

	ok := signed(m.MerchantID, secret, "POST", "/v1/trades?x=1", now, "firstnonce", body)
	got, err := f.svc.VerifyMerchantRequest(ctx, ok, "POST", "/v1/trades?x=1", body)
	if err != nil || got.MerchantID != m.MerchantID {
		t.Fatalf("good request: %v", err)
	}
	refused := map[string]struct {
		header, method, path string
		body                 []byte
	}{
		"replayed nonce":  {ok, "POST", "/v1/trades?x=1", body},
		"tampered body":   {signed(m.MerchantID, secret, "POST", "/v1/trades", now, nonce(), body), "POST", "/v1/trades", []byte(`{"out_trade_no":"A1","total_amount":"99.30"}`)},
		"other path":      {signed(m.MerchantID, secret, "POST", "/v1/trades", now, nonce(), body), "POST", "/v1/trades?x=2", body},
		"other method":    {signed(m.MerchantID, secret, "POST", "/v1/trades", now, nonce(), body), "PUT", "/v1/trades", body},
		"stale":           {signed(m.MerchantID, secret, "POST", "/v1/trades", now.Add(-301*time.Second), nonce(), body), "POST", "/v1/trades", body},
		"future":          {signed(m.MerchantID, secret, "POST", "/v1/trades", now.Add(301*time.Second), nonce(), body), "POST", "/v1/trades", body},
		"other's secret":  {signed(m.MerchantID, otherSecret, "POST", "/v1/trades", now, nonce(), body), "POST", "/v1/trades", body},
		"unknown":         {signed("m0000009999", secret, "POST", "/v1/trades", now, nonce(), body), "POST", "/v1/trades", body},
		"bearer":          {"Bearer abc", "POST", "/v1/trades", body},
		"empty":           {"", "POST", "/v1/trades", body},
		"short nonce":     {signed(m.MerchantID, secret, "POST", "/v1/trades", now, "abc", body), "POST", "/v1/trades", body},
		"other merchant":  {strings.Replace(signed(m.MerchantID, secret, "POST", "/v1/trades", now, nonce(), body), m.MerchantID, other.MerchantID, 1), "POST", "/v1/trades", body},
		"lowercase shout": {strings.Replace(signed(m.MerchantID, secret, "POST", "/v1/trades", now, nonce(), body), identity.AuthScheme, "zhifu-hmac-sha256", 1), "POST", "/v1/trades", body},
	}
	for name, c := range refused {
		_, err := f.svc.VerifyMerchantRequest(ctx, c.header, c.method, c.path, c.body)
		if zhifu.ErrorCode(err) != zhifu.InvalidSignature {
			t.Errorf("%s: %v, want INVALID_SIGNATURE", name, err)
		}
	}
	// At the window's edges the request is still good.
	for _, d := range []time.Duration{-300 * time.Second, 300 * time.Second} {
		h := signed(m.MerchantID, secret, "GET", "/v1/merchant", now.Add(d), nonce(), nil)
		if _, err := f.svc.VerifyMerchantRequest(ctx, h, "GET", "/v1/merchant", nil); err != nil {
			t.Errorf("skew %v: %v", d, err)
		}
	}
	logs := f.logs.String()
	for _, reason := range []string{"nonce reused", "signature mismatch", "timestamp outside the window", "unknown merchant"} {
		if !strings.Contains(logs, reason) {
			t.Errorf("log lacks %q", reason)
		}
	}
	sig := base64.StdEncoding.EncodeToString(identity.Sign(secret, "POST", "/v1/trades?x=1", now.Unix(), "firstnonce", body))
	if strings.Contains(logs, secret) || strings.Contains(logs, sig) || strings.Contains(logs, otherSecret) {
		t.Error("a secret or signature reached the log")
	}
}

func TestCleanup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, _ := f.svc.CreateUser(ctx, "shop", "password1", "Shop")
	m, secret, _ := f.svc.CreateMerchant(ctx, "Shop", u.UserID, "", "")
	h := signed(m.MerchantID, secret, "GET", "/v1/merchant", f.clock.Now(), "keepnonce1", nil)
	if _, err := f.svc.VerifyMerchantRequest(ctx, h, "GET", "/v1/merchant", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Login(ctx, "shop", "password1"); err != nil {
		t.Fatal(err)
	}
	count := func(table string) int {
		var n int
		if err := f.db.Reader().QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Within the window the nonce must stay, or a replay would pass.
	f.clock.Advance(identity.SignatureWindow)
	if err := f.svc.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if count("nonces") != 1 || count("sessions") != 1 {
		t.Fatalf("cleaned too early: nonces %d sessions %d", count("nonces"), count("sessions"))
	}
	f.clock.Advance(identity.SessionTTL)
	if err := f.svc.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if count("nonces") != 0 || count("sessions") != 0 {
		t.Fatalf("not cleaned: nonces %d sessions %d", count("nonces"), count("sessions"))
	}
}
