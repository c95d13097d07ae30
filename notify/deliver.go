package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"zhifu/egress"
	"zhifu/ledger"
)

// SignatureHeader carries the signature of a FormatZhifu notification.
const SignatureHeader = "Zhifu-Signature"

// errNoSigner is the error of an Alipay notification while no signer is set.
var errNoSigner = errors.New("alipay signer not configured")

// attempt delivers one claimed row and records the outcome.
func (w *Worker) attempt(ctx context.Context, r row) Outcome {
	start := time.Now()
	ok, refused, errText, secrets := w.deliver(ctx, r)
	a := Attempt{NotifyID: r.NotifyID, MerchantID: r.MerchantID, Number: r.attempts + 1, Err: errText, Refused: refused}
	// The outcome is written even when ctx has ended: a delivered
	// notification must not be sent again because the worker was stopping.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var err error
	switch {
	case ok:
		a.Outcome, err = w.recordDelivered(rctx, r)
	case ctx.Err() != nil:
		// Cut short by shutdown: the merchant may or may not have it. The
		// attempt is not counted and the row goes back to the pool.
		a.Outcome, err = w.recordInterrupted(rctx, r)
	default:
		a.Outcome, a.Next, err = w.recordFailure(rctx, r, errText)
	}
	a.Duration = time.Since(start)
	if err != nil {
		// The lease will expire and the attempt will be made again; the
		// merchant may see it twice, which API.md allows.
		w.log.Error("notify: record attempt", slog.String("notify_id", r.NotifyID),
			slog.String("merchant_id", r.MerchantID), slog.Any("err", redact(err.Error(), secrets...)))
		return a.Outcome
	}
	w.logAttempt(ctx, a)
	if w.observe != nil {
		w.observe(a)
	}
	return a.Outcome
}

func (w *Worker) logAttempt(ctx context.Context, a Attempt) {
	level := slog.LevelInfo
	switch {
	case a.Outcome == Failed, a.Outcome == LostLease, a.Refused:
		// A refused destination is the merchant's doing, or an attack:
		// operators should see it.
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("merchant_id", a.MerchantID),
		slog.String("notify_id", a.NotifyID),
		slog.Int("attempt", a.Number),
		slog.String("outcome", string(a.Outcome)),
		slog.Duration("duration", a.Duration),
	}
	if a.Err != "" {
		attrs = append(attrs, slog.String("err", a.Err))
	}
	if a.Outcome == Retry {
		attrs = append(attrs, slog.Time("next", a.Next))
	}
	w.log.LogAttrs(context.WithoutCancel(ctx), level, "notify attempt", attrs...)
}

// recordDelivered marks the row delivered, if our lease still holds.
func (w *Worker) recordDelivered(ctx context.Context, r row) (Outcome, error) {
	now := w.clock.Now().UnixNano()
	n, err := w.q.Exec(ctx, `UPDATE notifications SET status = 'delivered', attempts = ?, delivered_at = ?,
		last_error = '', lease_until = 0 WHERE notify_id = ? AND status = 'pending' AND lease_until = ?`,
		r.attempts+1, now, r.NotifyID, r.leaseUntil)
	if err != nil {
		return Delivered, fmt.Errorf("notify: record delivery: %w", err)
	}
	if n == 0 {
		return LostLease, nil
	}
	return Delivered, nil
}

// recordFailure counts the attempt and schedules the next one, or gives up
// after AttemptsMax.
func (w *Worker) recordFailure(ctx context.Context, r row, errText string) (Outcome, time.Time, error) {
	now := w.clock.Now()
	number := r.attempts + 1
	outcome, next := Failed, now
	if number < AttemptsMax {
		outcome, next = Retry, now.Add(retrySchedule[number-1])
	}
	status := "pending"
	if outcome == Failed {
		status = "failed"
	}
	n, err := w.q.Exec(ctx, `UPDATE notifications SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,
		lease_until = 0 WHERE notify_id = ? AND status = 'pending' AND lease_until = ?`,
		status, number, next.UnixNano(), errText, r.NotifyID, r.leaseUntil)
	if err != nil {
		return outcome, next, fmt.Errorf("notify: record failure: %w", err)
	}
	if n == 0 {
		return LostLease, time.Time{}, nil
	}
	return outcome, next, nil
}

// recordInterrupted gives the row back without counting the attempt.
func (w *Worker) recordInterrupted(ctx context.Context, r row) (Outcome, error) {
	_, err := w.q.Exec(ctx, `UPDATE notifications SET lease_until = 0
		WHERE notify_id = ? AND status = 'pending' AND lease_until = ?`, r.NotifyID, r.leaseUntil)
	if err != nil {
		return Interrupted, fmt.Errorf("notify: release lease: %w", err)
	}
	return Interrupted, nil
}

// deliver makes one call. It returns whether the merchant accepted it, or
// whether the guard refused the destination before connecting, and, if
// not accepted, why, cleaned for storage; secrets are the strings (key,
// signature) that must not appear in logs.
func (w *Worker) deliver(ctx context.Context, r row) (ok, refused bool, errText string, secrets []string) {
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	req, secrets, err := w.request(ctx, r)
	if err != nil {
		return false, false, clean(err.Error(), secrets...), secrets
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if rf, isRefusal := egress.IsRefusal(err); isRefusal {
			return false, true, clean("notify_url "+rf.Error()+": not connected", secrets...), secrets
		}
		return false, false, clean(transportError(err), secrets...), secrets
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, responseBytesMax))
	if err != nil {
		return false, false, clean("read answer: "+transportError(err), secrets...), secrets
	}
	if accepted(r.Format, resp.StatusCode, body) {
		return true, false, "", secrets
	}
	msg := "http " + strconv.Itoa(resp.StatusCode)
	if len(body) > 0 {
		msg += ": " + string(body)
	}
	return false, false, clean(msg, secrets...), secrets
}

// accepted applies API.md's rule: a FormatZhifu notification is accepted by
// any 2xx status or by the body "success"; Alipay's format, as Alipay's
// own, only by the body "success".
func accepted(format string, status int, body []byte) bool {
	success := string(bytes.TrimSpace(body)) == "success"
	if format == FormatAlipay {
		return success
	}
	return success || (status >= 200 && status < 300)
}

// request builds the signed call for r.
func (w *Worker) request(ctx context.Context, r row) (*nethttp.Request, []string, error) {
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, errors.New("notify_url is not an http or https URL")
	}
	var secrets []string
	switch r.Format {
	case FormatZhifu:
		secret, err := w.secret(ctx, r.MerchantID)
		if err != nil {
			return nil, nil, err
		}
		t := w.clock.Now().Unix()
		sig := Sign(secret, t, []byte(r.Body))
		secrets = []string{secret, sig}
		req, err := newPost(ctx, u.String(), r.Body, "application/json")
		if err != nil {
			return nil, secrets, err
		}
		req.Header.Set(SignatureHeader, "t="+strconv.FormatInt(t, 10)+",v1="+sig)
		return req, secrets, nil
	case FormatAlipay:
		if w.sign == nil {
			return nil, nil, errNoSigner
		}
		form, err := url.ParseQuery(r.Body)
		if err != nil {
			return nil, nil, errors.New("alipay notification body is not a form")
		}
		signed, err := w.sign(form)
		if err != nil {
			return nil, nil, fmt.Errorf("alipay sign: %w", err)
		}
		if s := signed.Get("sign"); s != "" {
			secrets = []string{s}
		}
		req, err := newPost(ctx, u.String(), signed.Encode(), "application/x-www-form-urlencoded; charset=utf-8")
		return req, secrets, err
	default:
		return nil, nil, fmt.Errorf("unknown notification format %q", r.Format)
	}
}

func newPost(ctx context.Context, u, body, contentType string) (*nethttp.Request, error) {
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, errors.New("cannot build a request for notify_url")
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "zhifu-notify/1")
	return req, nil
}

// Sign returns the hex HMAC-SHA256 of t + "." + body under secret: the v1
// part of the Zhifu-Signature header. Merchants verify it the same way.
func Sign(secret string, t int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(t, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// transportError describes a failed call without the URL, which may carry
// the merchant's own tokens in its query.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out after " + AttemptTimeout.String()
	}
	return err.Error()
}

// clean makes text fit to keep and log: secrets removed, control
// characters replaced, cut to lastErrorBytesMax on a character boundary.
func clean(s string, secrets ...string) string {
	s = redact(s, secrets...)
	var b strings.Builder
	for _, c := range s {
		if b.Len()+utf8.RuneLen(c) > lastErrorBytesMax {
			break
		}
		if c < ' ' || c == 0x7f || c == utf8.RuneError {
			c = ' '
		}
		b.WriteRune(c)
	}
	return strings.TrimSpace(b.String())
}

func redact(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "[redacted]")
		}
	}
	return s
}

// secret returns merchant m's HMAC key, from the cache when fresh.
func (w *Worker) secret(ctx context.Context, m string) (string, error) {
	now := w.clock.Now()
	if s, ok := w.secrets.get(m, now); ok {
		return s, nil
	}
	var s string
	err := w.q.QueryRow(ctx, `SELECT secret FROM merchants WHERE merchant_id = ?`, m).Scan(&s)
	if errors.Is(err, ledger.ErrNoRows) {
		return "", errors.New("merchant not found")
	}
	if err != nil {
		return "", fmt.Errorf("read merchant secret: %w", err)
	}
	w.secrets.put(m, s, now)
	return s, nil
}

// secretCache keeps merchants' secrets for secretCacheTTL, at most
// secretCacheMax of them; when full it starts again empty, which costs one
// read per merchant.
type secretCache struct {
	mu sync.Mutex
	m  map[string]cachedSecret
}

type cachedSecret struct {
	secret string
	until  time.Time
}

func (c *secretCache) get(m string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[m]
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.secret, true
}

func (c *secretCache) put(m, secret string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= secretCacheMax {
		c.m = make(map[string]cachedSecret)
	}
	c.m[m] = cachedSecret{secret: secret, until: now.Add(secretCacheTTL)}
}
