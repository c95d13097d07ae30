package banksim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"zhifu/bankapi"
)

// Limits on what a scenario may ask for, so that a typo cannot make the
// simulator hold connections for days or allocate without bound.
const (
	scenarioMsMax        = 600_000 // ten minutes
	rpsMax               = 1_000_000
	burstMax             = 1_000_000
	concurrencyMax       = 100_000
	callbackAttemptsMax  = 10
	maintenanceWindowMax = 64
	scenarioFileBytesMax = 1 << 20
	// queueTimeoutMsDefault is how long a queueing bank keeps a request
	// before giving up on it.
	queueTimeoutMsDefault = 10_000
	// callbackRetryMsDefault is the first gap before a callback is retried;
	// each later gap doubles.
	callbackRetryMsDefault = 500
	// callbackAttemptsDefault is how many times a callback is tried.
	callbackAttemptsDefault = 5
	// duplicateGapMs separates the two copies of a duplicated callback.
	duplicateGapMs = 20
)

// What a bank does when its capacity is used up (Scenario.Overload).
const (
	// OverloadReject answers 503 SYSTEM_BUSY at once: a bank that sheds
	// load.
	OverloadReject = "reject"
	// OverloadQueue makes requests wait for capacity, up to QueueTimeoutMs,
	// and then fail slowly with 503: a bank that collapses under load, as
	// online banking did on Double 11.
	OverloadQueue = "queue"
)

// Kinds of outage (Scenario.Outage).
const (
	// OutageReject answers every request 503 BANK_UNAVAILABLE.
	OutageReject = "503"
	// OutageClose closes every connection without an answer, as a bank
	// whose front end is down.
	OutageClose = "close"
)

// Scenario is how one bank behaves. Rates are probabilities in [0, 1]; times
// are milliseconds. The zero value is a fast bank that never fails and has
// no capacity limit.
type Scenario struct {
	// RPS is the capacity in requests per second (a token bucket holding
	// Burst tokens); 0 means unlimited. Burst 0 means max(1, ceil(RPS)).
	RPS   float64 `json:"rps,omitempty"`
	Burst int     `json:"burst,omitempty"`
	// ConcurrencyMax bounds requests in flight; 0 means unlimited.
	ConcurrencyMax int `json:"concurrency_max,omitempty"`
	// Overload is OverloadReject (the default) or OverloadQueue.
	Overload string `json:"overload,omitempty"`
	// QueueTimeoutMs is the longest a queued request waits; 0 means 10 s.
	QueueTimeoutMs int `json:"queue_timeout_ms,omitempty"`
	// Latency is added to every request.
	Latency Latency `json:"latency,omitzero"`
	// FailureRate is the share of debits and credits answered FAILED with
	// reason BANK_ERROR (no money moves).
	FailureRate float64 `json:"failure_rate,omitempty"`
	// ErrorRate is the share of requests answered HTTP 500 or 503 before the
	// bank does anything.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// TimeoutRate is the share of debits and credits that the bank carries
	// out and then does not answer: it holds the response TimeoutHoldMs (or
	// until the client gives up) and closes the connection.
	TimeoutRate   float64 `json:"timeout_rate,omitempty"`
	TimeoutHoldMs int     `json:"timeout_hold_ms,omitempty"`
	// SettleDelayMs, when positive, makes debits and credits answer
	// ACCEPTED and settle that much later.
	SettleDelayMs int `json:"settle_delay_ms,omitempty"`
	// CallbackLossRate is the share of callbacks never sent.
	CallbackLossRate float64 `json:"callback_loss_rate,omitempty"`
	// CallbackDuplicateRate is the share of callbacks sent twice.
	CallbackDuplicateRate float64 `json:"callback_duplicate_rate,omitempty"`
	// CallbackDelayMs delays every callback.
	CallbackDelayMs int `json:"callback_delay_ms,omitempty"`
	// CallbackReorderRate is the share of callbacks delayed by a further
	// uniform [0, CallbackReorderMs), so that later ones overtake them.
	CallbackReorderRate float64 `json:"callback_reorder_rate,omitempty"`
	CallbackReorderMs   int     `json:"callback_reorder_ms,omitempty"`
	// CallbackRetryMs is the first gap before retrying a callback that was
	// not answered 2xx (0 means 500); CallbackAttempts bounds the tries (0
	// means 5, at most 10).
	CallbackRetryMs  int `json:"callback_retry_ms,omitempty"`
	CallbackAttempts int `json:"callback_attempts,omitempty"`
	// Outage is "" (none), OutageReject or OutageClose.
	Outage string `json:"outage,omitempty"`
	// Maintenance lists windows [start, end) in which every request is
	// answered 503 MAINTENANCE.
	Maintenance []bankapi.Window `json:"maintenance,omitempty"`
	// Ebank, when set, replaces this scenario for the online-banking pages,
	// which have their own capacity: quick pay held up on Double 11 while
	// online-banking redirects collapsed.
	Ebank *Scenario `json:"ebank,omitempty"`
}

// Latency is either fixed plus uniform jitter, or lognormal with a median
// and a 99th percentile (when MedianMs is set). The zero value adds nothing.
type Latency struct {
	FixedMs  int `json:"fixed_ms,omitempty"`
	JitterMs int `json:"jitter_ms,omitempty"`
	MedianMs int `json:"median_ms,omitempty"`
	P99Ms    int `json:"p99_ms,omitempty"`
}

// Scenarios is a scenario file: a default for every bank and overrides by
// bank name.
type Scenarios struct {
	Default Scenario            `json:"default"`
	Banks   map[string]Scenario `json:"banks,omitempty"`
}

// For returns bank's scenario.
func (ss Scenarios) For(bank string) Scenario {
	if s, ok := ss.Banks[bank]; ok {
		return s
	}
	return ss.Default
}

// LoadScenario reads a scenario file: JSON Scenarios. Unknown fields are an
// error, so that a misspelt setting is not silently ignored.
func LoadScenario(path string) (Scenarios, error) {
	f, err := os.Open(path)
	if err != nil {
		return Scenarios{}, fmt.Errorf("banksim: scenario: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, scenarioFileBytesMax+1))
	if err != nil {
		return Scenarios{}, fmt.Errorf("banksim: scenario: %w", err)
	}
	if len(b) > scenarioFileBytesMax {
		return Scenarios{}, errors.New("banksim: scenario file too large")
	}
	var ss Scenarios
	if err := decodeStrict(b, &ss); err != nil {
		return Scenarios{}, fmt.Errorf("banksim: scenario %s: %w", path, err)
	}
	if err := ss.validate(nil); err != nil {
		return Scenarios{}, fmt.Errorf("banksim: scenario %s: %w", path, err)
	}
	return ss, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing
// data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// validate checks every scenario; banks, when not nil, are the known banks.
func (ss Scenarios) validate(banks []string) error {
	if err := ss.Default.Validate(); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	for b, s := range ss.Banks {
		if banks != nil && !contains(banks, b) {
			return fmt.Errorf("unknown bank %q", b)
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Validate checks a scenario against the limits.
func (s Scenario) Validate() error {
	if err := s.validateOwn(); err != nil {
		return err
	}
	if s.Ebank != nil {
		if s.Ebank.Ebank != nil {
			return errors.New("ebank: may not have its own ebank")
		}
		if err := s.Ebank.validateOwn(); err != nil {
			return fmt.Errorf("ebank: %w", err)
		}
	}
	return nil
}

func (s Scenario) validateOwn() error {
	rates := map[string]float64{"failure_rate": s.FailureRate, "error_rate": s.ErrorRate,
		"timeout_rate": s.TimeoutRate, "callback_loss_rate": s.CallbackLossRate,
		"callback_duplicate_rate": s.CallbackDuplicateRate, "callback_reorder_rate": s.CallbackReorderRate}
	for name, r := range rates {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("%s must be between 0 and 1", name)
		}
	}
	ms := map[string]int{"queue_timeout_ms": s.QueueTimeoutMs, "timeout_hold_ms": s.TimeoutHoldMs,
		"settle_delay_ms": s.SettleDelayMs, "callback_delay_ms": s.CallbackDelayMs,
		"callback_reorder_ms": s.CallbackReorderMs, "callback_retry_ms": s.CallbackRetryMs,
		"latency.fixed_ms": s.Latency.FixedMs, "latency.jitter_ms": s.Latency.JitterMs,
		"latency.median_ms": s.Latency.MedianMs, "latency.p99_ms": s.Latency.P99Ms}
	for name, v := range ms {
		if v < 0 || v > scenarioMsMax {
			return fmt.Errorf("%s must be between 0 and %d", name, scenarioMsMax)
		}
	}
	switch {
	case !(s.RPS >= 0 && s.RPS <= rpsMax) || math.IsInf(s.RPS, 0):
		return fmt.Errorf("rps must be between 0 and %d", rpsMax)
	case s.Burst < 0 || s.Burst > burstMax:
		return fmt.Errorf("burst must be between 0 and %d", burstMax)
	case s.ConcurrencyMax < 0 || s.ConcurrencyMax > concurrencyMax:
		return fmt.Errorf("concurrency_max must be between 0 and %d", concurrencyMax)
	case s.Overload != "" && s.Overload != OverloadReject && s.Overload != OverloadQueue:
		return fmt.Errorf("overload must be %q or %q", OverloadReject, OverloadQueue)
	case s.Outage != "" && s.Outage != OutageReject && s.Outage != OutageClose:
		return fmt.Errorf("outage must be \"\", %q or %q", OutageReject, OutageClose)
	case s.CallbackAttempts < 0 || s.CallbackAttempts > callbackAttemptsMax:
		return fmt.Errorf("callback_attempts must be between 0 and %d", callbackAttemptsMax)
	case s.Latency.MedianMs > 0 && (s.Latency.FixedMs > 0 || s.Latency.JitterMs > 0):
		return errors.New("latency: either fixed_ms and jitter_ms, or median_ms and p99_ms")
	case s.Latency.P99Ms > 0 && s.Latency.P99Ms < s.Latency.MedianMs:
		return errors.New("latency: p99_ms must not be below median_ms")
	case len(s.Maintenance) > maintenanceWindowMax:
		return fmt.Errorf("at most %d maintenance windows", maintenanceWindowMax)
	}
	for _, w := range s.Maintenance {
		if !w.End.After(w.Start) {
			return errors.New("maintenance: end must be after start")
		}
	}
	return nil
}

// maintenanceAt returns the window containing now.
func (s Scenario) maintenanceAt(now time.Time) (bankapi.Window, bool) {
	for _, w := range s.Maintenance {
		if !now.Before(w.Start) && now.Before(w.End) {
			return w, true
		}
	}
	return bankapi.Window{}, false
}

func (s Scenario) queueTimeout() time.Duration {
	if s.QueueTimeoutMs == 0 {
		return queueTimeoutMsDefault * time.Millisecond
	}
	return time.Duration(s.QueueTimeoutMs) * time.Millisecond
}

func (s Scenario) callbackRetry() time.Duration {
	if s.CallbackRetryMs == 0 {
		return callbackRetryMsDefault * time.Millisecond
	}
	return time.Duration(s.CallbackRetryMs) * time.Millisecond
}

func (s Scenario) callbackAttempts() int {
	if s.CallbackAttempts == 0 {
		return callbackAttemptsDefault
	}
	return s.CallbackAttempts
}

// lognormalZ99 is the standard normal's 99th percentile.
const lognormalZ99 = 2.3263478740408408

// Draw returns the latency for a uniform draw u in [0, 1) and a standard
// normal draw z, capped at ten minutes. The simulator feeds it from its
// random source; z matters only for a lognormal latency and u only for
// jitter.
func (l Latency) Draw(u, z float64) time.Duration {
	var ms float64
	switch {
	case l.MedianMs > 0:
		sigma := 0.0
		if l.P99Ms > l.MedianMs {
			sigma = math.Log(float64(l.P99Ms)/float64(l.MedianMs)) / lognormalZ99
		}
		ms = float64(l.MedianMs) * math.Exp(sigma*z)
	default:
		ms = float64(l.FixedMs) + u*float64(l.JitterMs)
	}
	ms = min(ms, scenarioMsMax)
	return time.Duration(ms * float64(time.Millisecond))
}
