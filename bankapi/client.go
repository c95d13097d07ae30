package bankapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"zhifu"
)

// Limits of the client.
const (
	// answerBytesMax bounds a JSON answer or a callback body;
	// statementBytesMax a statement (a Double-11 day at one bank is a few
	// million lines).
	answerBytesMax    = 1 << 20
	statementBytesMax = 1 << 30
	// ebankLinkTTL is how long an online-banking link stays valid.
	ebankLinkTTL = 30 * time.Minute
	// clientTimeoutDefault bounds a call when NewClient gets no client;
	// callers should still pass a context with their own deadline.
	clientTimeoutDefault = 30 * time.Second
)

// Client speaks the protocol to one bank, signing every request. Every
// method honours its context's deadline: a bank that holds the answer is
// abandoned when the context ends, and the error wraps ctx.Err(). An answer
// other than 2xx is an *APIError; any other error means the bank's answer
// was not had (or not read whole).
type Client struct {
	BaseURL string // the banks' gateway, as "http://127.0.0.1:9090"
	Bank    string
	HTTP    *http.Client
	// Clock signs requests, dates online-banking links and judges
	// callbacks' timestamps; nil means the system clock.
	Clock  zhifu.Clock
	secret string
}

// NewClient returns a client of bank at baseURL with the bank's secret; a
// nil hc means a client with a 30 s timeout.
func NewClient(baseURL, bank, secret string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: clientTimeoutDefault}
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Bank: bank, HTTP: hc, secret: secret}
}

// APIError is an answer other than 2xx.
type APIError struct {
	Status  int
	Code    string // CodeSystemBusy, CodeMaintenance, …; "" if the body was not an error body
	Message string
	// Until is the end of the maintenance window for CodeMaintenance.
	Until time.Time
}

func (e *APIError) Error() string {
	return fmt.Sprintf("bankapi: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsNotFound reports whether err is the bank saying it has no such
// transaction (or bank).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// DecodeError makes the APIError of an answer with status and body; a body
// that is not an ErrorBody leaves Code empty.
func DecodeError(status int, body []byte) *APIError {
	e := &APIError{Status: status}
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil {
		e.Code, e.Message = eb.Error, eb.Message
		if eb.Until != nil {
			e.Until = *eb.Until
		}
	}
	return e
}

// CheckResponse returns nil for a 2xx answer. For any other it reads (a
// bounded part of) the body, closes it and returns the *APIError.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, answerBytesMax))
	return DecodeError(resp.StatusCode, b)
}

func (c *Client) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock.Now()
}

func (c *Client) path(format string, args ...any) string {
	return "/banks/" + url.PathEscape(c.Bank) + fmt.Sprintf(format, args...)
}

// VerifyCard asks the bank for the card's token.
func (c *Client) VerifyCard(ctx context.Context, cardNo, holder string) (Card, error) {
	var card Card
	err := c.postJSON(ctx, c.path("/cards/verify"), VerifyRequest{CardNo: cardNo, Holder: holder}, &card)
	return card, err
}

// Debit asks the bank to move req.Amount from the card to the platform's
// settlement account. Repeating it with the same request is safe.
func (c *Client) Debit(ctx context.Context, req TxnRequest) (Transaction, error) {
	var t Transaction
	err := c.postJSON(ctx, c.path("/debits"), req, &t)
	return t, err
}

// Credit asks the bank to pay req.Amount from the settlement account to the
// card. Repeating it with the same request is safe.
func (c *Client) Credit(ctx context.Context, req TxnRequest) (Transaction, error) {
	var t Transaction
	err := c.postJSON(ctx, c.path("/credits"), req, &t)
	return t, err
}

// Inquire asks for a transaction's current state; IsNotFound(err) when the
// bank never received it.
func (c *Client) Inquire(ctx context.Context, requestID string) (Transaction, error) {
	var t Transaction
	b, err := c.get(ctx, c.path("/transactions/%s", url.PathEscape(requestID)), answerBytesMax)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	return t, err
}

// probeRequestID is a request_id the platform never uses (its own begin
// with two capital letters and digits), for Probe.
const probeRequestID = "probe"

// Probe inquires about a transaction that does not exist, to learn whether
// the bank answers: its 404 NOT_FOUND is a healthy bank's answer, and nil
// is returned. A bank that is down, refusing or unreachable gives the
// error of any call.
func (c *Client) Probe(ctx context.Context) error {
	if _, err := c.Inquire(ctx, probeRequestID); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}

// Statement fetches and parses the statement of date (YYYY-MM-DD, Beijing).
func (c *Client) Statement(ctx context.Context, date string) (Statement, error) {
	body, err := c.OpenStatement(ctx, date)
	if err != nil {
		return Statement{}, err
	}
	defer body.Close()
	// Parsed as it streams in: a cut-short statement lacks its closing line
	// and is refused by ParseStatement.
	return ParseStatement(body)
}

// OpenStatement starts fetching the statement of date and returns its
// body, at most statementBytesMax of it, for a StatementReader; the caller
// closes it.
func (c *Client) OpenStatement(ctx context.Context, date string) (io.ReadCloser, error) {
	req, err := c.newGET(ctx, c.path("/statements?date=%s", url.QueryEscape(date)))
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, statementBytesMax), resp.Body}, nil
}

// Maintenance fetches the bank's current and future maintenance windows.
func (c *Client) Maintenance(ctx context.Context) (MaintenanceNotice, error) {
	var n MaintenanceNotice
	b, err := c.get(ctx, c.path("/maintenance"), answerBytesMax)
	if err == nil {
		err = json.Unmarshal(b, &n)
	}
	return n, err
}

// EbankURL returns a signed online-banking link for a debit of amount fen,
// valid for 30 minutes. The person who follows it pays with a card of their
// choice and comes back to returnURL.
func (c *Client) EbankURL(requestID string, amount int64, returnURL, callbackURL string) string {
	q := url.Values{}
	q.Set("request_id", requestID)
	q.Set("amount", strconv.FormatInt(amount, 10))
	q.Set("return_url", returnURL)
	if callbackURL != "" {
		q.Set("callback_url", callbackURL)
	}
	q.Set("expires", strconv.FormatInt(c.now().Add(ebankLinkTTL).Unix(), 10))
	q.Set("sig", SignEbankQuery(c.secret, q))
	return c.BaseURL + c.path("/ebank") + "?" + q.Encode()
}

// ParseCallback reads a callback request, checks its signature and returns
// the transaction it reports. The platform should answer 2xx only after it
// has durably applied the outcome.
func (c *Client) ParseCallback(r *http.Request) (Transaction, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, answerBytesMax+1))
	if err != nil {
		return Transaction{}, fmt.Errorf("bankapi: callback: %w", err)
	}
	if len(body) > answerBytesMax {
		return Transaction{}, errors.New("bankapi: callback: body too large")
	}
	return c.VerifyCallback(r.Header.Get(SignatureHeader), body)
}

// VerifyCallback checks a callback's signature header against its body and
// decodes it.
func (c *Client) VerifyCallback(header string, body []byte) (Transaction, error) {
	if err := Verify(c.secret, header, body, c.now()); err != nil {
		return Transaction{}, err
	}
	return DecodeCallback(c.Bank, body)
}

// DecodeCallback decodes a callback body whose signature was checked: a
// Transaction of bank.
func DecodeCallback(bank string, body []byte) (Transaction, error) {
	if len(body) > answerBytesMax {
		return Transaction{}, errors.New("bankapi: callback: body too large")
	}
	var t Transaction
	if err := json.Unmarshal(body, &t); err != nil {
		return Transaction{}, fmt.Errorf("bankapi: callback: %w", err)
	}
	if t.Bank != bank {
		return Transaction{}, fmt.Errorf("bankapi: callback from %q to the client of %q", t.Bank, bank)
	}
	return t, nil
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(c.secret, c.now(), body))
	b, err := c.do(req, answerBytesMax)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (c *Client) newGET(ctx context.Context, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(SignatureHeader, Sign(c.secret, c.now(), []byte(req.URL.RequestURI())))
	return req, nil
}

func (c *Client) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := c.newGET(ctx, path)
	if err != nil {
		return nil, err
	}
	return c.do(req, limit)
}

// do sends req and returns the body of a 2xx answer, or an error.
func (c *Client) do(req *http.Request, limit int64) ([]byte, error) {
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readBody(req, resp, limit)
}

// readBody reads the body of a 2xx answer to req, at most limit bytes: a
// longer one is an error.
func readBody(req *http.Request, resp *http.Response, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("bankapi: %s %s: %w", req.Method, req.URL.Path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("bankapi: %s %s: answer over %d bytes", req.Method, req.URL.Path, limit)
	}
	return b, nil
}

// send sends req and returns a 2xx answer for the caller to read and
// close; any other answer becomes an *APIError.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bankapi: %s %s: %w", req.Method, req.URL.Path, err)
	}
	if err := CheckResponse(resp); err != nil {
		return nil, err
	}
	return resp, nil
}
