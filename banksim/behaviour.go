package banksim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"zhifu/bankapi"
)

// A bank's state as Behaviour reports it.
const (
	StateUp          = "up"
	StateOutage      = "outage"
	StateMaintenance = "maintenance"
)

// Behaviour is how a bank behaves now, as GET /control/banks/{bank} shows
// it to a person about to change it (or checking the change took).
type Behaviour struct {
	Bank string `json:"bank"`
	// State is StateUp, StateOutage or StateMaintenance (a window in force
	// now, by the simulator's clock).
	State string `json:"state"`
	// Summary says in words what the bank does beyond answering promptly:
	// "no limits, no faults" for a perfect bank.
	Summary string `json:"summary"`
	// Scenario is the scenario in force with every field written out and
	// the defaults it implies filled in: PUT it back and nothing changes.
	Scenario Scenario `json:"-"`
}

// behaviourJSON is Behaviour on the wire: the scenario with no field left
// out.
type behaviourJSON struct {
	Bank     string   `json:"bank"`
	State    string   `json:"state"`
	Summary  string   `json:"summary"`
	Scenario fieldSet `json:"scenario"`
}

// fieldSet is a JSON object whose fields keep their order: a struct's, so
// that related settings read together.
type fieldSet []field

type field struct {
	name  string
	value any
}

func (fs fieldSet) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON writes every field of the scenario, zero or not: a setting
// left out reads as "not set", which is not what a person checking a bank
// wants to guess at.
func (b Behaviour) MarshalJSON() ([]byte, error) {
	return json.Marshal(behaviourJSON{Bank: b.Bank, State: b.State, Summary: b.Summary, Scenario: explicit(b.Scenario)})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (b *Behaviour) UnmarshalJSON(data []byte) error {
	var w struct {
		Bank     string   `json:"bank"`
		State    string   `json:"state"`
		Summary  string   `json:"summary"`
		Scenario Scenario `json:"scenario"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*b = Behaviour{Bank: w.Bank, State: w.State, Summary: w.Summary, Scenario: w.Scenario}
	return nil
}

// Behaviour returns bank's behaviour now; false for an unknown bank.
func (s *Sim) Behaviour(bank string) (Behaviour, bool) {
	sc, ok := s.Scenario(bank)
	if !ok {
		return Behaviour{}, false
	}
	return describe(bank, sc, s.now()), true
}

func describe(bank string, sc Scenario, now time.Time) Behaviour {
	b := Behaviour{Bank: bank, State: StateUp, Scenario: sc.withDefaults()}
	if _, ok := sc.maintenanceAt(now); ok {
		b.State = StateMaintenance
	}
	if sc.Outage != "" {
		b.State = StateOutage
	}
	parts := sc.summary(now)
	if sc.Ebank != nil {
		if e := sc.Ebank.summary(now); len(e) > 0 {
			parts = append(parts, "online banking: "+strings.Join(e, ", "))
		} else {
			parts = append(parts, "online banking: no limits, no faults")
		}
	}
	b.Summary = strings.Join(parts, "; ")
	if b.Summary == "" {
		b.Summary = "no limits, no faults"
	}
	return b
}

// withDefaults writes out what the zero fields mean. Putting the result
// back changes nothing.
func (s Scenario) withDefaults() Scenario {
	s = cloneScenario(s)
	if s.Overload == "" {
		s.Overload = OverloadReject
	}
	if s.RPS > 0 && s.Burst == 0 {
		s.Burst = int(max(1, math.Ceil(s.RPS)))
	}
	if s.QueueTimeoutMs == 0 {
		s.QueueTimeoutMs = queueTimeoutMsDefault
	}
	if s.CallbackRetryMs == 0 {
		s.CallbackRetryMs = callbackRetryMsDefault
	}
	if s.CallbackAttempts == 0 {
		s.CallbackAttempts = callbackAttemptsDefault
	}
	if s.Maintenance == nil {
		s.Maintenance = []bankapi.Window{}
	}
	if s.Ebank != nil {
		e := s.Ebank.withDefaults()
		s.Ebank = &e
	}
	return s
}

// summary lists, in words, what the scenario does beyond answering
// promptly.
func (s Scenario) summary(now time.Time) []string {
	var out []string
	switch s.Outage {
	case OutageReject:
		out = append(out, "outage: every request is answered 503 BANK_UNAVAILABLE")
	case OutageClose:
		out = append(out, "outage: every connection is closed without an answer")
	}
	for _, w := range s.Maintenance {
		switch {
		case w.Contains(now):
			out = append(out, fmt.Sprintf("in maintenance until %s", w.End.In(beijing).Format(time.RFC3339)))
		case w.Start.After(now):
			out = append(out, fmt.Sprintf("maintenance from %s to %s", w.Start.In(beijing).Format(time.RFC3339),
				w.End.In(beijing).Format(time.RFC3339)))
		}
	}
	if s.RPS > 0 {
		beyond := "refusing 503 SYSTEM_BUSY beyond"
		if s.Overload == OverloadQueue {
			beyond = fmt.Sprintf("queueing up to %d ms beyond, then 503", s.queueTimeout().Milliseconds())
		}
		out = append(out, fmt.Sprintf("capacity %g requests/s, %s", s.RPS, beyond))
	}
	if s.ConcurrencyMax > 0 {
		out = append(out, fmt.Sprintf("at most %d requests in flight", s.ConcurrencyMax))
	}
	switch l := s.Latency; {
	case l.MedianMs > 0:
		out = append(out, fmt.Sprintf("latency median %d ms, p99 %d ms", l.MedianMs, max(l.P99Ms, l.MedianMs)))
	case l.FixedMs > 0 || l.JitterMs > 0:
		out = append(out, fmt.Sprintf("latency %d ms + up to %d ms", l.FixedMs, l.JitterMs))
	}
	rates := []struct {
		rate float64
		what string
	}{
		{s.FailureRate, "of debits and credits fail (BANK_ERROR)"},
		{s.ErrorRate, "of requests answered 500/503 untouched"},
		{s.TimeoutRate, fmt.Sprintf("of debits and credits carried out, then unanswered for %d ms", s.TimeoutHoldMs)},
		{s.CallbackLossRate, "of callbacks lost"},
		{s.CallbackDuplicateRate, "of callbacks sent twice"},
		{s.CallbackReorderRate, fmt.Sprintf("of callbacks delayed up to %d ms more", s.CallbackReorderMs)},
	}
	for _, r := range rates {
		if r.rate > 0 {
			out = append(out, fmt.Sprintf("%g%% %s", r.rate*100, r.what))
		}
	}
	if s.SettleDelayMs > 0 {
		out = append(out, fmt.Sprintf("debits and credits settle %d ms after they are accepted", s.SettleDelayMs))
	}
	if s.CallbackDelayMs > 0 {
		out = append(out, fmt.Sprintf("callbacks sent %d ms late", s.CallbackDelayMs))
	}
	return out
}

// explicit renders a struct as a JSON object with every field, by its json
// name and in its order, whether or not the field says omitempty: nested
// structs the same way, a nil slice as [] and a nil pointer as null.
func explicit(v any) fieldSet {
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	out := make(fieldSet, 0, rt.NumField())
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fv := rv.Field(i)
		var value any
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]():
			value = explicit(fv.Interface())
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			if !fv.IsNil() {
				value = explicit(fv.Elem().Interface())
			}
		case f.Type.Kind() == reflect.Slice && fv.IsNil():
			value = []any{}
		default:
			value = fv.Interface()
		}
		out = append(out, field{name, value})
	}
	return out
}

// mergeScenario applies a PATCH body to sc: the fields the body names are
// replaced (a nested object merges into the nested settings), the others
// kept.
func mergeScenario(sc Scenario, body []byte) (Scenario, error) {
	sc = cloneScenario(sc)
	if err := decodeStrict(body, &sc); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}
