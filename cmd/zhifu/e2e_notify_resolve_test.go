package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"

	"zhifu/egress"
	"zhifu/egress/egresstest"
	"zhifu/notify"
)

// A name is judged by what it resolves to when the platform connects, at
// every attempt: a notify_url whose name resolves to a forbidden address
// is saved (nothing can be known then) and every delivery to it is refused
// before connecting, recorded with the reason, and retried on the schedule.

// nfObserver collects the notify worker's attempts, so tests wait on them.
type nfObserver struct {
	mu      sync.Mutex
	list    []notify.Attempt
	changed chan struct{}
}

func newNfObserver() *nfObserver { return &nfObserver{changed: make(chan struct{})} }

func (o *nfObserver) observe(a notify.Attempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, a)
	close(o.changed)
	o.changed = make(chan struct{})
}

// waitFor waits until pred holds of the attempts so far.
func (o *nfObserver) waitFor(t *testing.T, what string, pred func([]notify.Attempt) bool) []notify.Attempt {
	t.Helper()
	deadline := time.After(notifyWaitMax)
	for {
		o.mu.Lock()
		list, ch := append([]notify.Attempt(nil), o.list...), o.changed
		o.mu.Unlock()
		if pred(list) {
			return list
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %s; attempts: %+v", notifyWaitMax, what, list)
		}
	}
}

// attemptsOf counts the attempts made of notification id.
func attemptsOf(list []notify.Attempt, id string) int {
	n := 0
	for _, a := range list {
		if a.NotifyID == id {
			n++
		}
	}
	return n
}

// newResolvingEnv starts the platform resolving names with dns and
// reporting attempts to obs.
func newResolvingEnv(t *testing.T, backend string, vars map[string]string, dns *egresstest.DNS, obs *nfObserver) *env {
	return newNotifyEnv(t, backend, vars, func(tm *testMain) {
		tm.ConfigureEgress = func(c *egress.Config) { c.Resolver = dns.Resolver() }
		tm.ConfigureNotify = func(c *notify.Config) { c.Observe = obs.observe }
	})
}

// nfNotifyTargets save a notify_url in one of the three places and make a
// notification go to it; each returns the trade notified.
func nfNotifyTargets(t *testing.T, w *trWorld, app *gwApp) map[string]func(u string) string {
	ctx := context.Background()
	closeTrade := func(w *trWorld, no string) {
		if s, out := w.move(no, "close", nil); s != http.StatusOK {
			t.Fatalf("close: %d %v", s, out)
		}
	}
	return map[string]func(string) string{
		"merchant": func(u string) string {
			mw := *w
			mw.mk = w.newMerchant(w.seller, u)
			no := mw.mustCreate(nil)
			closeTrade(&mw, no)
			return no
		},
		"trade": func(u string) string {
			no := w.mustCreate(map[string]any{"notify_url": u})
			closeTrade(w, no)
			return no
		},
		"gateway": func(u string) string {
			out := fmt.Sprintf("nfr%d", trSeq.Add(1))
			cr, err := app.client.TradeCreate(ctx, alipay.TradeCreate{Trade: alipay.Trade{OutTradeNo: out, Subject: "Tea",
				TotalAmount: "1.00", NotifyURL: u}})
			if err != nil || !cr.IsSuccess() {
				t.Fatalf("gateway create with %s: %v %+v", u, err, cr)
			}
			cl, err := app.client.TradeClose(ctx, alipay.TradeClose{OutTradeNo: out})
			if err != nil || !cl.IsSuccess() {
				t.Fatalf("gateway close: %v %+v", err, cl)
			}
			return cr.TradeNo
		},
	}
}

// TestNotifyResolvedRefused: names resolving to each forbidden class are
// accepted on save and refused at delivery, on merchants, trades and the
// gateway; nothing connects, and the attempt is retried.
func TestNotifyResolvedRefused(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dns := egresstest.NewDNS(t)
			obs := newNfObserver()
			e := newResolvingEnv(t, backend, nil, dns, obs)
			rc := newNotifyReceiver(t)
			w := nfWorld(t, e)
			app := gwNewApp(t, w, w.seller, "")
			apiPort := e.url[strings.LastIndex(e.url, ":")+1:]
			type nameCase struct {
				name, addr, port, reason string
			}
			cases := []nameCase{
				{"meta", "169.254.169.254", rc.Port(), egress.ReasonLinkLocal},
				{"ec2", "fd00:ec2::254", rc.Port(), egress.ReasonMetadata},
				{"mapped", "::ffff:169.254.169.254", rc.Port(), egress.ReasonLinkLocal},
				{"nat64", "64:ff9b::a9fe:a9fe", rc.Port(), egress.ReasonLinkLocal},
				{"aliyun", "100.100.100.200", rc.Port(), egress.ReasonMetadata},
				{"zero", "0.0.0.0", rc.Port(), egress.ReasonUnspecified},
				{"mcast", "224.0.0.1", rc.Port(), egress.ReasonMulticast},
				{"private", "10.0.0.5", rc.Port(), egress.ReasonPrivate},
				{"shared", "100.64.0.1", rc.Port(), egress.ReasonShared},
				{"ula", "fd12::1", rc.Port(), egress.ReasonPrivate},
				{"own", "127.0.0.1", apiPort, egress.ReasonOwn},
				{"loop", "127.0.0.1", rc.Port(), egress.ReasonLoopback}, // admitted by the embedded default
			}
			loopbackAllowed := backend == "sqlite"
			type sent struct {
				c     nameCase
				where string
				trade string
			}
			var all []sent
			for where, notifyAt := range nfNotifyTargets(t, w, app) {
				for _, c := range cases {
					name := fmt.Sprintf("%s-%s.shop.test", c.name, strings.ReplaceAll(where, " ", ""))
					dns.Set(name, c.addr)
					all = append(all, sent{c, where, notifyAt(fmt.Sprintf("http://%s:%s/notify", name, c.port))})
				}
			}
			ids := map[string]string{} // trade → notify_id
			for _, s := range all {
				rows := e.outbox(s.trade)
				if len(rows) != 1 {
					t.Fatalf("%s %s: %d notifications, want 1", s.where, s.c.name, len(rows))
				}
				ids[s.trade] = rows[0].NotifyID
			}
			obs.waitFor(t, "every first attempt", func(l []notify.Attempt) bool {
				for _, id := range ids {
					if attemptsOf(l, id) == 0 {
						return false
					}
				}
				return true
			})
			delivered := 0
			for _, s := range all {
				r := e.outbox(s.trade)[0]
				if s.c.name == "loop" && loopbackAllowed {
					if r.Status != "delivered" {
						t.Errorf("%s %s: %+v, want delivered to loopback by the embedded default", s.where, s.c.name, r)
					}
					delivered++
					continue
				}
				want := "notify_url points to " + s.c.reason
				if r.Status != "pending" || r.Attempts != 1 || !strings.Contains(r.LastError, want) || !strings.Contains(r.LastError, "not connected") {
					t.Errorf("%s %s (%s): %+v, want one refused attempt: %q", s.where, s.c.name, s.c.addr, r, want)
				}
			}
			if got := rc.connections(); got != delivered {
				t.Errorf("the receiver accepted %d connections, want %d: a refused delivery connected", got, delivered)
			}
			if !strings.Contains(e.m.stderr.String(), "notify attempt") || !strings.Contains(e.m.stderr.String(), "level=WARN msg=\"notify attempt\"") {
				t.Errorf("no warning logged for refused attempts:\n%s", e.m.stderr.String())
			}
			// Refused attempts are retried on the schedule: 15 s later each
			// is tried again, and refused again.
			e.clock.Advance(notify.RetrySchedule()[0])
			obs.waitFor(t, "every retry", func(l []notify.Attempt) bool {
				for _, s := range all {
					if !(s.c.name == "loop" && loopbackAllowed) && attemptsOf(l, ids[s.trade]) < 2 {
						return false
					}
				}
				return true
			})
			if got := rc.connections(); got != delivered {
				t.Errorf("after the retries the receiver accepted %d connections, want %d", got, delivered)
			}
		})
	}
}

// TestNotifyRebinding: the check is made at every attempt, on what the
// name resolves to then: a name that pointed at a private address and now
// points at an allowed one is delivered on the retry, and one that turns
// to the metadata address is refused.
func TestNotifyRebinding(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dns := egresstest.NewDNS(t)
			obs := newNfObserver()
			e := newResolvingEnv(t, backend, map[string]string{"ZHIFU_NOTIFY_ALLOW_CIDRS": "127.0.0.1/32"}, dns, obs)
			rc := newNotifyReceiver(t)
			// Every delivery connects anew: a kept-alive connection would go
			// on to the address it was opened to, whatever the name says now.
			rc.srv.Config.SetKeepAlivesEnabled(false)
			w := nfWorld(t, e)
			u := "http://flip.shop.test:" + rc.Port() + "/notify"
			dns.Set("flip.shop.test", "10.0.0.5")
			w.mk = w.newMerchant(w.seller, u)

			first := w.mustCreate(nil)
			if s, out := w.move(first, "close", nil); s != http.StatusOK {
				t.Fatalf("close: %d %v", s, out)
			}
			id := e.outbox(first)[0].NotifyID
			obs.waitFor(t, "the first attempt", func(l []notify.Attempt) bool { return attemptsOf(l, id) == 1 })
			if r := e.outbox(first)[0]; r.Status != "pending" || !strings.Contains(r.LastError, egress.ReasonPrivate) {
				t.Fatalf("while the name points at 10.0.0.5: %+v, want refused as private", r)
			}
			dns.Set("flip.shop.test", "127.0.0.1")
			e.clock.Advance(notify.RetrySchedule()[0])
			rc.waitNotes("the retry", func(n []nrNote) bool { return len(n) == 1 })
			obs.waitFor(t, "the retry recorded", func(l []notify.Attempt) bool { return attemptsOf(l, id) == 2 })
			if r := e.outbox(first)[0]; r.Status != "delivered" {
				t.Errorf("after the name moved to 127.0.0.1: %+v, want delivered", r)
			}

			dns.Set("flip.shop.test", "169.254.169.254", "127.0.0.2")
			second := w.mustCreate(nil)
			if s, out := w.move(second, "close", nil); s != http.StatusOK {
				t.Fatalf("close: %d %v", s, out)
			}
			id2 := e.outbox(second)[0].NotifyID
			obs.waitFor(t, "the second notification's attempt", func(l []notify.Attempt) bool { return attemptsOf(l, id2) == 1 })
			r := e.outbox(second)[0]
			if r.Status != "pending" || !strings.Contains(r.LastError, "notify_url points to") {
				t.Errorf("after the name moved to 169.254.169.254 and 127.0.0.2: %+v, want refused", r)
			}
			if got := len(rc.all()); got != 1 {
				t.Errorf("the receiver got %d notifications, want 1", got)
			}
		})
	}
}

// TestNotifyEmbeddedDefault: zhifu serve on SQLite with no allow-list
// delivers to loopback and says so once at start; on PostgreSQL it says
// that only public addresses are admitted.
func TestNotifyEmbeddedDefault(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			obs := newNfObserver()
			e := newNotifyEnv(t, backend, nil, func(tm *testMain) {
				tm.ConfigureNotify = func(c *notify.Config) { c.Observe = obs.observe }
			})
			logs := e.m.stderr.String()
			line := "notifications may go to loopback addresses, the embedded default"
			if backend == "sqlite" {
				if strings.Count(logs, line) != 1 {
					t.Errorf("the start logs say %d times %q, want once:\n%s", strings.Count(logs, line), line, logs)
				}
				rc := newNotifyReceiver(t)
				w := nfWorld(t, e)
				w.mk = w.newMerchant(w.seller, rc.URL())
				no := w.mustCreate(nil)
				if s, out := w.move(no, "close", nil); s != http.StatusOK {
					t.Fatalf("close: %d %v", s, out)
				}
				n := rc.waitNotes("the notification", func(n []nrNote) bool { return len(n) == 1 })
				if n[0].TradeNo != no || n[0].Status != "TRADE_CLOSED" {
					t.Errorf("received %+v, want trade %s closed", n[0], no)
				}
				return
			}
			if strings.Contains(logs, line) || !strings.Contains(logs, "notifications go to public addresses only") {
				t.Errorf("PostgreSQL's start logs do not say that only public addresses are admitted:\n%s", logs)
			}
		})
	}
}
