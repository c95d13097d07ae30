package gateway

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// platformKeyBits is the size of the platform's RSA keys.
const platformKeyBits = 2048

// Keys holds the platform's RSA key pair: generated on first start, kept in
// the database so every node signs with the same key, and rotated by an
// operator. The private key lives in the database in clear; a production
// deployment would keep it in a key management service instead.
type Keys struct {
	store   ledger.Store
	batcher *ledger.Batcher
	clock   zhifu.Clock

	mu     sync.RWMutex
	id     string
	priv   *rsa.PrivateKey
	pubB64 string
}

// LoadKeys returns the active key pair, generating and storing one if there
// is none. Several nodes starting at once agree on one key: the generation
// runs as a keyed op and re-reads under it.
func LoadKeys(ctx context.Context, st ledger.Store, b *ledger.Batcher, clock zhifu.Clock) (*Keys, error) {
	k := &Keys{store: st, batcher: b, clock: clock}
	if err := k.load(ctx); err == nil {
		return k, nil
	} else if !errors.Is(err, ledger.ErrNoRows) {
		return nil, err
	}
	if err := k.replace(ctx, false); err != nil {
		return nil, err
	}
	return k, k.load(ctx)
}

func (k *Keys) load(ctx context.Context) error {
	var id, privB64, pubB64 string
	err := k.store.Reader().QueryRow(ctx, `SELECT key_id, private_der, public_der FROM platform_keys
		WHERE retired_at = 0 ORDER BY created_at DESC LIMIT 1`).Scan(&id, &privB64, &pubB64)
	if err != nil {
		return err
	}
	der, err := base64.StdEncoding.DecodeString(privB64)
	if err != nil {
		return fmt.Errorf("gateway: platform key %s: %w", id, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("gateway: platform key %s: %w", id, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("gateway: platform key %s is not RSA", id)
	}
	k.mu.Lock()
	k.id, k.priv, k.pubB64 = id, priv, pubB64
	k.mu.Unlock()
	return nil
}

// Rotate retires the active key and makes a new one. Merchants must then
// configure the new public key to verify responses and notifications.
func (k *Keys) Rotate(ctx context.Context) error {
	if err := k.replace(ctx, true); err != nil {
		return err
	}
	return k.load(ctx)
}

// PublicKey returns the active public key as base64 DER, the form Alipay's
// console shows as the "alipay public key".
func (k *Keys) PublicKey() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.pubB64
}

// KeyID names the active key.
func (k *Keys) KeyID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.id
}

// secretSeed is private material every node shares, for keys derived from
// it (never the key itself).
func (k *Keys) secretSeed() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.id + ":" + k.priv.D.String()
}

// Sign signs content with the active private key.
func (k *Keys) Sign(content []byte) (string, error) {
	k.mu.RLock()
	priv := k.priv
	k.mu.RUnlock()
	if priv == nil {
		return "", errors.New("gateway: no platform key loaded")
	}
	return SignRSA2(priv, content)
}

// signKeyed signs content with the active private key and names the key
// it used, read together so a rotation in between cannot mismatch them.
func (k *Keys) signKeyed(content []byte) (id, sig string, err error) {
	k.mu.RLock()
	id, priv := k.id, k.priv
	k.mu.RUnlock()
	if priv == nil {
		return "", "", errors.New("gateway: no platform key loaded")
	}
	sig, err = SignRSA2(priv, content)
	return id, sig, err
}

// replace generates a key pair and stores it as the active one, retiring
// the current one when rotate is set; without rotate it does nothing if an
// active key already exists.
func (k *Keys) replace(ctx context.Context, rotate bool) error {
	priv, err := rsa.GenerateKey(rand.Reader, platformKeyBits)
	if err != nil {
		return fmt.Errorf("gateway: generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return err
	}
	id := make([]byte, 8)
	rand.Read(id)
	keyID := "pk_" + hex.EncodeToString(id)
	if !rotate {
		// Nodes starting together race to create the first key; a fixed id
		// lets exactly one insert win.
		keyID = "pk_first"
	}
	op := &keyOp{rotate: rotate, id: keyID, now: k.clock.Now().UnixNano(),
		priv: base64.StdEncoding.EncodeToString(privDER), pub: base64.StdEncoding.EncodeToString(pubDER)}
	return k.batcher.Do(ctx, op)
}

// keyOp installs a new platform key in one transaction.
type keyOp struct {
	rotate        bool
	id, priv, pub string
	now           int64
	active        bool
}

func (o *keyOp) Keys() []string { return []string{"platform_key"} }

func (o *keyOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	var n int64
	err := tx.QueryRow(ctx, `SELECT count(*) FROM platform_keys WHERE retired_at = 0`).Scan(&n)
	o.active = n > 0
	return nil, err
}

func (o *keyOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	if !o.rotate {
		if o.active {
			return nil
		}
	} else if _, err := tx.Exec(ctx, `UPDATE platform_keys SET retired_at = ? WHERE retired_at = 0`, o.now); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO platform_keys (key_id, private_der, public_der, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING`, o.id, o.priv, o.pub, o.now)
	return err
}

// SignNotification signs an Alipay-format asynchronous notification: sign
// covers every field but sign and sign_type, and sign_type is RSA2. It is
// the notify worker's AlipaySigner.
func (k *Keys) SignNotification(form url.Values) (url.Values, error) {
	out := make(url.Values, len(form)+2)
	for key, v := range form {
		out[key] = v
	}
	out.Del("sign")
	out.Set("sign_type", "RSA2")
	sig, err := k.Sign([]byte(SignContent(out, "sign", "sign_type")))
	if err != nil {
		return nil, err
	}
	out.Set("sign", sig)
	return out, nil
}

// keysReloadInterval is how often a node rereads the active key, so a
// rotation made through another node reaches it.
const keysReloadInterval = 30 * time.Second

// Run rereads the active key every keysReloadInterval until ctx ends.
func (k *Keys) Run(ctx context.Context) {
	t := time.NewTicker(keysReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.load(ctx); err != nil && ctx.Err() == nil {
				// The key in memory stays in use; the next tick retries.
				continue
			}
		}
	}
}
