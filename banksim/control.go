package banksim

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"

	"zhifu/bankapi"
)

func (s *Sim) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /control/banks/{bank}", s.control(s.getBehaviour))
	mux.HandleFunc("PUT /control/banks/{bank}", s.control(s.putScenario))
	mux.HandleFunc("PATCH /control/banks/{bank}", s.control(s.patchScenario))
	mux.HandleFunc("DELETE /control/banks/{bank}", s.control(s.resetScenario))
	mux.HandleFunc("GET /control/banks", s.control(s.getScenarios))
	mux.HandleFunc("PUT /control/banks", s.control(s.putScenarios))
	mux.HandleFunc("GET /control/stats", s.control(s.getStats))
	mux.HandleFunc("GET /control/books", s.control(s.getBooks))
	mux.HandleFunc("POST /control/banks/{bank}/differences", s.control(s.postDifference))
}

// control guards a control endpoint with the bearer token. Without a token
// configured the control API does not exist.
func (s *Sim) control(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.ControlToken == "" {
			writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "the control API is disabled")
			return
		}
		want := "Bearer " + s.cfg.ControlToken
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "control token required")
			return
		}
		h(w, r)
	}
}

// getBehaviour answers the bank's behaviour now.
func (s *Sim) getBehaviour(w http.ResponseWriter, r *http.Request) {
	b, ok := s.Behaviour(r.PathValue("bank"))
	if !ok {
		writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "no such bank")
		return
	}
	writeJSONStatus(w, http.StatusOK, b)
}

// putScenario replaces one bank's scenario with the body.
func (s *Sim) putScenario(w http.ResponseWriter, r *http.Request) {
	s.changeScenario(w, r, func(_ Scenario, body []byte) (Scenario, error) {
		var sc Scenario
		err := decodeStrict(body, &sc)
		return sc, err
	})
}

// patchScenario changes the fields of one bank's scenario that the body
// names: {"outage":""} ends an outage and keeps the rest.
func (s *Sim) patchScenario(w http.ResponseWriter, r *http.Request) {
	s.changeScenario(w, r, mergeScenario)
}

// resetScenario puts one bank back on the scenario the simulator started
// with.
func (s *Sim) resetScenario(w http.ResponseWriter, r *http.Request) {
	bank := r.PathValue("bank")
	if s.banks[bank] == nil {
		writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "no such bank")
		return
	}
	if err := s.SetScenario(bank, s.cfg.Scenarios.For(bank)); err != nil {
		writeError(w, http.StatusInternalServerError, bankapi.CodeSystemError, err.Error())
		return
	}
	s.getBehaviour(w, r)
}

// changeScenario reads the body, makes the bank's new scenario of it and
// the current one, installs it, and answers the behaviour that results.
// The bank's lock is not held meanwhile: two operators changing one bank
// at once each get a whole scenario, the last one's.
func (s *Sim) changeScenario(w http.ResponseWriter, r *http.Request, change func(Scenario, []byte) (Scenario, error)) {
	bank := r.PathValue("bank")
	cur, ok := s.Scenario(bank)
	if !ok {
		writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "no such bank")
		return
	}
	body, ok := readControlBody(w, r)
	if !ok {
		return
	}
	sc, err := change(cur, body)
	if err == nil {
		err = s.SetScenario(bank, sc)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, err.Error())
		return
	}
	s.getBehaviour(w, r)
}

func (s *Sim) getScenarios(w http.ResponseWriter, _ *http.Request) {
	ss := Scenarios{Banks: make(map[string]Scenario, len(s.banks))}
	for name := range s.banks {
		ss.Banks[name], _ = s.Scenario(name)
	}
	writeJSONStatus(w, http.StatusOK, ss)
}

// putScenarios replaces every bank's scenario: banks named in the body get
// theirs, the others the default.
func (s *Sim) putScenarios(w http.ResponseWriter, r *http.Request) {
	body, ok := readControlBody(w, r)
	if !ok {
		return
	}
	var ss Scenarios
	if err := decodeStrict(body, &ss); err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, err.Error())
		return
	}
	if err := s.SetScenarios(ss); err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, err.Error())
		return
	}
	s.getScenarios(w, r)
}

// readControlBody reads a control request's body; on failure it has
// answered.
func readControlBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, scenarioFileBytesMax))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, bankapi.CodeRequestTooLarge, "body too large")
		} else {
			writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "could not read body")
		}
		return nil, false
	}
	return body, true
}

func (s *Sim) getStats(w http.ResponseWriter, _ *http.Request) {
	out := make(map[string]Stats, len(s.banks))
	for name, b := range s.banks {
		out[name] = b.stats.snapshot()
	}
	writeJSONStatus(w, http.StatusOK, out)
}

// booksReport is the answer of GET /control/books.
type booksReport struct {
	OK     bool             `json:"ok"`
	Banks  map[string]Books `json:"banks"`
	Errors []string         `json:"errors,omitempty"`
}

func (s *Sim) getBooks(w http.ResponseWriter, _ *http.Request) {
	rep := booksReport{OK: true, Banks: make(map[string]Books, len(s.banks))}
	for _, name := range s.cfg.Banks {
		b, err := s.Books(name)
		if err == nil {
			err = b.Check()
		}
		if err != nil {
			rep.OK = false
			rep.Errors = append(rep.Errors, err.Error())
		}
		rep.Banks[name] = b
	}
	writeJSONStatus(w, http.StatusOK, rep)
}
