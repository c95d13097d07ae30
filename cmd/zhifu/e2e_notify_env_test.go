package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the notification tests: a platform started with chosen
// notify settings, and a merchant's receiver that records what arrives,
// when, and in what order.

// notifyWaitMax bounds how long a notification test waits for an event.
const notifyWaitMax = 30 * time.Second

// newNotifyEnv starts the platform on a fresh database of backend with the
// environment vars (ZHIFU_NOTIFY_ALLOW_CIDRS, …), extra command-line
// arguments, and configure adjusting Main before it runs (nil: nothing).
func newNotifyEnv(t *testing.T, backend string, vars map[string]string, configure func(*testMain), args ...string) *env {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, backend)
	clock := &manualClock{now: time.Now().UTC()}
	tm := newTestMain(vars)
	tm.Clock = clock
	if configure != nil {
		configure(tm)
	}
	serveTestMain(t, tm, append([]string{"--data", dir, "--db", db}, args...)...)
	return &env{t: t, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock}
}

// nrNote is one request a receiver got.
type nrNote struct {
	NotifyID  string
	TradeNo   string
	Status    string
	Sequence  int64     // 0 when absent (Alipay's format has none)
	EventTime string    // "" when absent
	Reception int       // 1 for the first time this notify_id arrived
	Arrived   time.Time // real time
	// Overtook is set on a first reception when an earlier notification
	// of the same trade had not yet finished its first reception.
	Overtook string
	Form     url.Values // Alipay's format
}

func (n nrNote) String() string {
	return fmt.Sprintf("{%.8s trade %s %s seq %d reception %d}", n.NotifyID, n.TradeNo, n.Status, n.Sequence, n.Reception)
}

// notifyReceiver is a merchant's notify_url on 127.0.0.1. It answers
// "success" unless respond says otherwise, and can hold requests.
type notifyReceiver struct {
	t   *testing.T
	srv *httptest.Server
	// respond, if set, decides the answer; it runs before the answer and
	// must not block.
	respond func(n nrNote) (int, string)
	hold    chan struct{} // closed to release held requests; nil holds none

	mu        sync.Mutex
	notes     []nrNote
	seen      map[string]int  // notify_id → receptions
	firstDone map[string]bool // notify_id → its first reception has been answered
	byTrade   map[string][]string
	conns     int // connections accepted
	inFlight  int
	arrived   chan nrNote
}

func newNotifyReceiver(t *testing.T) *notifyReceiver {
	rc := &notifyReceiver{t: t, seen: map[string]int{}, firstDone: map[string]bool{}, byTrade: map[string][]string{},
		arrived: make(chan nrNote, 4096)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.mu.Lock()
			rc.conns++
			rc.mu.Unlock()
		}
	}
	rc.srv.Start()
	t.Cleanup(func() {
		rc.release()
		rc.srv.CloseClientConnections()
		rc.srv.Close()
	})
	return rc
}

// URL is the receiver's notify_url.
func (rc *notifyReceiver) URL() string { return rc.srv.URL + "/notify" }

// Port is the receiver's port.
func (rc *notifyReceiver) Port() string {
	u, _ := url.Parse(rc.srv.URL)
	return u.Port()
}

func (rc *notifyReceiver) holdAll() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hold = make(chan struct{})
}

func (rc *notifyReceiver) release() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.hold != nil {
		select {
		case <-rc.hold:
		default:
			close(rc.hold)
		}
	}
}

func (rc *notifyReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	n := nrNote{Arrived: time.Now()}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		n.Form, _ = url.ParseQuery(string(body))
		n.NotifyID, n.TradeNo, n.Status = n.Form.Get("notify_id"), n.Form.Get("trade_no"), n.Form.Get("trade_status")
	} else {
		var msg struct {
			NotifyID  string `json:"notify_id"`
			EventTime string `json:"event_time"`
			Sequence  int64  `json:"sequence"`
			Trade     struct {
				TradeNo string `json:"trade_no"`
				Status  string `json:"status"`
			} `json:"trade"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			rc.t.Errorf("receiver: body %q: %v", body, err)
		}
		n.NotifyID, n.TradeNo, n.Status = msg.NotifyID, msg.Trade.TradeNo, msg.Trade.Status
		n.Sequence, n.EventTime = msg.Sequence, msg.EventTime
	}
	rc.mu.Lock()
	rc.seen[n.NotifyID]++
	n.Reception = rc.seen[n.NotifyID]
	if n.Reception == 1 {
		for _, id := range rc.byTrade[n.TradeNo] {
			if !rc.firstDone[id] {
				n.Overtook = id
			}
		}
		rc.byTrade[n.TradeNo] = append(rc.byTrade[n.TradeNo], n.NotifyID)
	}
	rc.notes = append(rc.notes, n)
	rc.inFlight++
	hold, respond := rc.hold, rc.respond
	rc.mu.Unlock()
	rc.arrived <- n
	defer func() {
		rc.mu.Lock()
		rc.inFlight--
		if n.Reception == 1 {
			rc.firstDone[n.NotifyID] = true
		}
		rc.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	status, text := http.StatusOK, "success"
	if respond != nil {
		status, text = respond(n)
	}
	// The answer is fully written before the handler returns and the
	// first reception counts as finished.
	w.Header().Set("Content-Length", strconv.Itoa(len(text)))
	w.WriteHeader(status)
	io.WriteString(w, text)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// waitNotes waits until pred holds of everything received so far.
func (rc *notifyReceiver) waitNotes(what string, pred func([]nrNote) bool) []nrNote {
	rc.t.Helper()
	deadline := time.After(notifyWaitMax)
	for {
		rc.mu.Lock()
		notes := append([]nrNote(nil), rc.notes...)
		rc.mu.Unlock()
		if pred(notes) {
			return notes
		}
		select {
		case <-rc.arrived:
		case <-deadline:
			rc.t.Fatalf("waited %v for %s; received %d: %v", notifyWaitMax, what, len(notes), notes)
		}
	}
}

func (rc *notifyReceiver) all() []nrNote {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]nrNote(nil), rc.notes...)
}

func (rc *notifyReceiver) connections() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.conns
}

func (rc *notifyReceiver) active() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.inFlight
}

// outboxRow is one notification as stored.
type outboxRow struct {
	NotifyID  string
	Status    string
	Attempts  int64
	LastError string
}

// outbox returns the notifications about tradeNo, oldest first.
func (e *env) outbox(tradeNo string) []outboxRow {
	e.t.Helper()
	rows, err := e.m.store.Reader().Query(context.Background(), `SELECT notify_id, status, attempts, last_error
		FROM notifications WHERE body LIKE ? ORDER BY created_at, notify_id`, "%"+tradeNo+"%")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.NotifyID, &r.Status, &r.Attempts, &r.LastError); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}
