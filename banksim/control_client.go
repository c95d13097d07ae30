package banksim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"zhifu/bankapi"
)

// Limits of the control client.
const (
	// controlTimeoutDefault bounds a call when NewControlClient gets no
	// client; controlAnswerBytesMax bounds an answer.
	controlTimeoutDefault = 30 * time.Second
	controlAnswerBytesMax = 1 << 20
)

// ControlClient drives a simulator running in another process through its
// control API, so that a test can make a bank fail, recover or stop for
// maintenance while the platform is talking to it.
type ControlClient struct {
	BaseURL string
	HTTP    *http.Client
	token   string
}

// NewControlClient returns a control client; a nil hc means a client with a
// 30 s timeout.
func NewControlClient(baseURL, token string, hc *http.Client) *ControlClient {
	if hc == nil {
		hc = &http.Client{Timeout: controlTimeoutDefault}
	}
	return &ControlClient{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: hc, token: token}
}

// Behaviour returns how bank behaves now.
func (c *ControlClient) Behaviour(ctx context.Context, bank string) (Behaviour, error) {
	var b Behaviour
	err := c.call(ctx, http.MethodGet, "/control/banks/"+url.PathEscape(bank), nil, &b)
	return b, err
}

// Scenario returns bank's scenario, its defaults written out.
func (c *ControlClient) Scenario(ctx context.Context, bank string) (Scenario, error) {
	b, err := c.Behaviour(ctx, bank)
	return b.Scenario, err
}

// SetScenario replaces bank's scenario.
func (c *ControlClient) SetScenario(ctx context.Context, bank string, sc Scenario) error {
	return c.call(ctx, http.MethodPut, "/control/banks/"+url.PathEscape(bank), sc, &Behaviour{})
}

// PatchScenario changes the fields of bank's scenario that patch names,
// a JSON object such as {"outage":""}, and returns the behaviour that
// results.
func (c *ControlClient) PatchScenario(ctx context.Context, bank string, patch json.RawMessage) (Behaviour, error) {
	var b Behaviour
	err := c.call(ctx, http.MethodPatch, "/control/banks/"+url.PathEscape(bank), patch, &b)
	return b, err
}

// ResetScenario puts bank back on the scenario the simulator started with.
func (c *ControlClient) ResetScenario(ctx context.Context, bank string) (Behaviour, error) {
	var b Behaviour
	err := c.call(ctx, http.MethodDelete, "/control/banks/"+url.PathEscape(bank), nil, &b)
	return b, err
}

// SetScenarios replaces every bank's scenario.
func (c *ControlClient) SetScenarios(ctx context.Context, ss Scenarios) error {
	return c.call(ctx, http.MethodPut, "/control/banks", ss, &Scenarios{})
}

// Stats returns every bank's counters.
func (c *ControlClient) Stats(ctx context.Context) (map[string]Stats, error) {
	var out map[string]Stats
	err := c.call(ctx, http.MethodGet, "/control/stats", nil, &out)
	return out, err
}

// Books returns every bank's books and whether they all balance.
func (c *ControlClient) Books(ctx context.Context) (map[string]Books, bool, error) {
	var rep booksReport
	err := c.call(ctx, http.MethodGet, "/control/books", nil, &rep)
	return rep.Banks, rep.OK, err
}

func (c *ControlClient) call(ctx context.Context, method, path string, in, out any) error {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("banksim: control %s %s: %w", method, path, err)
	}
	if err := bankapi.CheckResponse(resp); err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, controlAnswerBytesMax+1))
	switch {
	case err != nil:
		return fmt.Errorf("banksim: control %s %s: %w", method, path, err)
	case len(b) > controlAnswerBytesMax:
		return fmt.Errorf("banksim: control %s %s: answer over %d bytes", method, path, controlAnswerBytesMax)
	}
	return json.Unmarshal(b, out)
}
