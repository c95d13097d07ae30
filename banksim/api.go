package banksim

import (
	"context"
	"errors"
	"net/http"
	"time"

	"zhifu/bankapi"
)

func (s *Sim) handleVerify(w http.ResponseWriter, r *http.Request, b *bankState, _ Scenario) {
	body, ok := s.readSigned(w, r, b)
	if !ok {
		return
	}
	var req bankapi.VerifyRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "body must be {card_no, holder}")
		return
	}
	card, code, err := s.provision(r.Context(), b, req.CardNo, req.Holder)
	if err != nil {
		s.answerProvisionError(w, code, err)
		return
	}
	writeJSONStatus(w, http.StatusOK, card)
}

// provision checks a card and opens its account on first sight. On failure
// it returns the error code to answer.
func (s *Sim) provision(ctx context.Context, b *bankState, cardNo, holder string) (bankapi.Card, string, error) {
	holder, err := checkCard(cardNo, holder)
	if err != nil {
		return bankapi.Card{}, bankapi.CodeInvalidCard, err
	}
	card := bankapi.Card{Bank: b.name, CardToken: cardToken(b.tokenKey, cardNo), Last4: cardNo[len(cardNo)-4:]}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	err = s.store.provisionCard(ctx, b.name, card.CardToken, holder, card.Last4, s.cfg.StartingBalance, s.now())
	switch {
	case errors.Is(err, errHolderMismatch):
		return bankapi.Card{}, bankapi.CodeHolderMismatch, err
	case err != nil:
		return bankapi.Card{}, bankapi.CodeSystemError, err
	}
	return card, "", nil
}

func (s *Sim) answerProvisionError(w http.ResponseWriter, code string, err error) {
	if code == bankapi.CodeSystemError {
		s.log.Error("verify failed", "err", err)
		writeError(w, http.StatusInternalServerError, bankapi.CodeSystemError, "system error")
		return
	}
	writeError(w, http.StatusBadRequest, code, err.Error())
}

func (s *Sim) handleTxn(kind string) bankHandler {
	return func(w http.ResponseWriter, r *http.Request, b *bankState, sc Scenario) {
		body, ok := s.readSigned(w, r, b)
		if !ok {
			return
		}
		var req bankapi.TxnRequest
		if err := decodeStrict(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "body must be {request_id, card_token, amount, callback_url}")
			return
		}
		in := txnIn{Bank: b.name, RequestID: req.RequestID, Kind: kind, Channel: channelAPI,
			CardToken: req.CardToken, Amount: req.Amount, CallbackURL: req.CallbackURL}
		if err := checkTxn(in); err != nil {
			writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, err.Error())
			return
		}
		t, res, err := s.submit(r.Context(), b, sc, in)
		switch {
		case err != nil:
			s.log.Error("transaction failed", "bank", b.name, "request_id", in.RequestID, "err", err)
			writeError(w, http.StatusInternalServerError, bankapi.CodeSystemError, "system error")
			return
		case res == submitConflict:
			writeError(w, http.StatusConflict, bankapi.CodeRequestIDConflict, "request_id was used for a different transaction")
			return
		}
		if s.injectTimeout(w, r, b, sc) {
			return
		}
		writeJSONStatus(w, http.StatusOK, t)
	}
}

// submit records a transaction and, once it is decided, sends its
// callback. The write is not cancelled with the request: a bank that
// received an instruction carries it out whether or not the caller is
// still listening.
func (s *Sim) submit(ctx context.Context, b *bankState, sc Scenario, in txnIn) (bankapi.Transaction, submitResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	async := sc.SettleDelayMs > 0
	fail := !async && s.chance(sc.FailureRate)
	r, res, err := s.store.submit(ctx, in, s.now(), async, fail)
	if err != nil || res != submitCreated {
		return r.transaction(), res, err
	}
	b.stats.accepted.Add(1)
	if async {
		due := time.Now().Add(time.Duration(sc.SettleDelayMs) * time.Millisecond)
		if s.sched.add(due, s.settleJob(b, in.Channel, in.RequestID)) {
			return r.transaction(), res, nil
		}
		// No room to settle later: settle now rather than leave the
		// transaction undecided.
		if r, _, err = s.store.settle(ctx, b.name, in.RequestID, s.chance(sc.FailureRate), s.now()); err != nil {
			return bankapi.Transaction{}, res, err
		}
	}
	s.decided(b, sc, r)
	return r.transaction(), res, nil
}

// settleJob settles an ACCEPTED transaction with the scenario in force
// then.
func (s *Sim) settleJob(b *bankState, ch, requestID string) func(context.Context) {
	return func(ctx context.Context) {
		sc, _ := b.current(ch)
		r, changed, err := s.store.settle(ctx, b.name, requestID, s.chance(sc.FailureRate), s.now())
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("settle failed; will retry", "bank", b.name, "request_id", requestID, "err", err)
				s.sched.add(time.Now().Add(settleRetryDelay), s.settleJob(b, ch, requestID))
			}
			return
		}
		if changed {
			s.decided(b, sc, r)
		}
	}
}

// decided counts a transaction's outcome and sends its callback.
func (s *Sim) decided(b *bankState, sc Scenario, r row) {
	if r.Status == bankapi.StatusSuccess {
		b.stats.succeeded.Add(1)
	} else {
		b.stats.failed.Add(1)
	}
	s.sendCallback(b, sc, r)
}

// injectTimeout, with the scenario's probability, withholds the answer to a
// request already carried out: it holds the connection TimeoutHoldMs (less
// if the client gives up) and drops it.
func (s *Sim) injectTimeout(w http.ResponseWriter, r *http.Request, b *bankState, sc Scenario) bool {
	if !s.chance(sc.TimeoutRate) {
		return false
	}
	b.stats.timeouts.Add(1)
	s.sleep(r.Context(), time.Duration(sc.TimeoutHoldMs)*time.Millisecond)
	abortConn(w)
	return true
}

func (s *Sim) handleInquiry(w http.ResponseWriter, r *http.Request, b *bankState, _ Scenario) {
	if !s.verifyGET(w, r, b) {
		return
	}
	row, found, err := s.store.get(r.Context(), b.name, r.PathValue("request_id"))
	switch {
	case err != nil:
		s.log.Error("inquiry failed", "bank", b.name, "err", err)
		writeError(w, http.StatusInternalServerError, bankapi.CodeSystemError, "system error")
	case !found:
		writeError(w, http.StatusNotFound, bankapi.CodeNotFound, "the bank has no such transaction")
	default:
		writeJSONStatus(w, http.StatusOK, row.transaction())
	}
}

// handleMaintenance lists the current and future maintenance windows, so
// that the platform can announce them ahead.
func (s *Sim) handleMaintenance(w http.ResponseWriter, r *http.Request, b *bankState, sc Scenario) {
	if !s.verifyGET(w, r, b) {
		return
	}
	now := s.now()
	n := bankapi.MaintenanceNotice{Windows: []bankapi.Window{}}
	for _, win := range sc.Maintenance {
		if win.End.After(now) {
			n.Windows = append(n.Windows, bankapi.Window{Start: win.Start.In(beijing), End: win.End.In(beijing)})
		}
	}
	writeJSONStatus(w, http.StatusOK, n)
}
