package banksim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"zhifu/bankapi"
)

// CodeUnauthorized answers a control request without the control token;
// the bank API's own codes are bankapi's.
const CodeUnauthorized = "UNAUTHORIZED"

// bodyBytesMax bounds a request body; the API's bodies are a few hundred
// bytes.
const bodyBytesMax = 64 << 10

// bankHandler serves one bank endpoint with the scenario in force.
type bankHandler func(w http.ResponseWriter, r *http.Request, b *bankState, sc Scenario)

func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /banks/{bank}/cards/verify", s.bankRoute(channelAPI, s.handleVerify))
	mux.HandleFunc("POST /banks/{bank}/debits", s.bankRoute(channelAPI, s.handleTxn(bankapi.KindDebit)))
	mux.HandleFunc("POST /banks/{bank}/credits", s.bankRoute(channelAPI, s.handleTxn(bankapi.KindCredit)))
	mux.HandleFunc("GET /banks/{bank}/transactions/{request_id}", s.bankRoute(channelAPI, s.handleInquiry))
	mux.HandleFunc("GET /banks/{bank}/statements", s.bankRoute(channelAPI, s.handleStatement))
	mux.HandleFunc("GET /banks/{bank}/ebank", s.bankRoute(channelEbank, s.handleEbankPage))
	mux.HandleFunc("POST /banks/{bank}/ebank", s.bankRoute(channelEbank, s.handleEbankConfirm))
	// The maintenance notice stays readable while the bank is down or in
	// maintenance: that is when the platform needs it.
	mux.HandleFunc("GET /banks/{bank}/maintenance", s.noticeRoute(s.handleMaintenance))
	s.controlRoutes(mux)
	return mux
}

// bankRoute finds the bank, counts the request and puts it through the
// scenario's admission before h runs.
func (s *Sim) bankRoute(ch string, h bankHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := s.banks[r.PathValue("bank")]
		if b == nil {
			writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "no such bank")
			return
		}
		if !s.enter() {
			writeError(w, http.StatusServiceUnavailable, bankapi.CodeBankUnavailable, "the simulator is shutting down")
			return
		}
		defer s.inflight.Done()
		b.stats.requests.Add(1)
		sc, g := b.current(ch)
		release, ok := s.admit(w, r, b, sc, g)
		if !ok {
			return
		}
		defer release()
		h(w, r, b, sc)
	}
}

func (s *Sim) noticeRoute(h bankHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := s.banks[r.PathValue("bank")]
		if b == nil {
			writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "no such bank")
			return
		}
		sc, _ := b.current(channelAPI)
		h(w, r, b, sc)
	}
}

// admit applies the scenario before the bank does any work, in this order:
// outage, maintenance, capacity, latency, injected errors. When it refuses,
// it has answered (or cut the connection) and returns false.
func (s *Sim) admit(w http.ResponseWriter, r *http.Request, b *bankState, sc Scenario, g *gate) (func(), bool) {
	switch sc.Outage {
	case OutageReject:
		b.stats.outages.Add(1)
		writeError(w, http.StatusServiceUnavailable, bankapi.CodeBankUnavailable, "the bank is unavailable")
		return nil, false
	case OutageClose:
		b.stats.outages.Add(1)
		abortConn(w)
		return nil, false
	}
	if win, ok := sc.maintenanceAt(s.now()); ok {
		b.stats.maintenance.Add(1)
		writeMaintenance(w, win.End, s.now())
		return nil, false
	}
	release, ok := s.acquire(r.Context(), g)
	if !ok {
		b.stats.rejected.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, bankapi.CodeSystemBusy, "the bank is busy")
		return nil, false
	}
	if d := s.latency(sc.Latency); !s.sleep(r.Context(), d) {
		release()
		return nil, false
	}
	if s.chance(sc.ErrorRate) {
		release()
		b.stats.errors.Add(1)
		status, code := http.StatusInternalServerError, bankapi.CodeSystemError
		if s.chance(0.5) {
			status, code = http.StatusServiceUnavailable, bankapi.CodeSystemBusy
		}
		writeError(w, status, code, "injected error")
		return nil, false
	}
	return release, true
}

// latency draws a latency, drawing from the random source only what the
// distribution needs.
func (s *Sim) latency(l Latency) time.Duration {
	var u, z float64
	switch {
	case l.MedianMs > 0 && l.P99Ms > l.MedianMs:
		z = s.norm()
	case l.MedianMs == 0 && l.JitterMs > 0:
		u = s.uniform()
	}
	return l.Draw(u, z)
}

func writeMaintenance(w http.ResponseWriter, until, now time.Time) {
	secs := max(1, int64(until.Sub(now).Seconds()+0.999))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	u := until.In(beijing)
	writeJSONStatus(w, http.StatusServiceUnavailable, bankapi.ErrorBody{Error: bankapi.CodeMaintenance,
		Message: "the bank is in maintenance", Until: &u})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSONStatus(w, status, bankapi.ErrorBody{Error: code, Message: msg})
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("banksim: answer does not marshal: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// abortConn drops the connection without an answer: the client sees EOF or
// a reset, as from a bank whose front end fell over.
func abortConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
		return
	}
	// HTTP/2 cannot be hijacked; this panic is net/http's documented way
	// to abort a response.
	panic(http.ErrAbortHandler)
}

// readSigned reads a POST body and checks its Bank-Signature; on failure it
// has answered and returns false.
func (s *Sim) readSigned(w http.ResponseWriter, r *http.Request, b *bankState) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyBytesMax))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, bankapi.CodeRequestTooLarge, "body too large")
		} else {
			writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "could not read body")
		}
		return nil, false
	}
	if err := bankapi.Verify(b.secret, r.Header.Get(bankapi.SignatureHeader), body, s.now()); err != nil {
		writeError(w, http.StatusUnauthorized, bankapi.CodeInvalidSignature, "bad or missing "+bankapi.SignatureHeader)
		return nil, false
	}
	return body, true
}

// verifyGET checks a GET's signature over its request target.
func (s *Sim) verifyGET(w http.ResponseWriter, r *http.Request, b *bankState) bool {
	if err := bankapi.Verify(b.secret, r.Header.Get(bankapi.SignatureHeader), []byte(r.RequestURI), s.now()); err != nil {
		writeError(w, http.StatusUnauthorized, bankapi.CodeInvalidSignature, "bad or missing "+bankapi.SignatureHeader)
		return false
	}
	return true
}
