package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/smartwalle/alipay/v3"
)

// A merchant cannot make the platform call internal services: a notify_url
// whose host is an address (or localhost) is checked when it is saved, on
// merchants, on trades and through the gateway, and refused with the
// reason.

// nfSaveCase is one notify_url and why it is refused; loopback ones are
// admitted by the embedded default (SQLite with no allow-list) only.
type nfSaveCase struct {
	url, reason string
	loopback    bool
}

// nfAlwaysRefused are refused whatever the configuration.
var nfAlwaysRefused = []nfSaveCase{
	{url: "http://169.254.169.254/latest/meta-data/", reason: "a link-local address"},
	{url: "http://169.254.0.23/", reason: "a link-local address"},
	{url: "http://[fe80::1]/hook", reason: "a link-local address"},
	{url: "http://[fe80::1%25eth0]:8080/hook", reason: "a link-local address"},
	{url: "http://[::ffff:169.254.169.254]/", reason: "a link-local address"},
	{url: "http://[::ffff:a9fe:a9fe]/", reason: "a link-local address"},
	{url: "http://[::ffff:0:169.254.169.254]/", reason: "a link-local address"},
	{url: "http://[64:ff9b::169.254.169.254]/", reason: "a link-local address"},
	{url: "http://[64:ff9b::a9fe:a9fe]/", reason: "a link-local address"},
	{url: "http://2852039166/", reason: "a link-local address"}, // 169.254.169.254 as one number
	{url: "http://0xa9.0xfe.0xa9.0xfe/", reason: "a link-local address"},
	{url: "http://[fd00:ec2::254]/latest/meta-data/", reason: "a cloud metadata address"},
	{url: "http://100.100.100.200/latest/meta-data/", reason: "a cloud metadata address"},
	{url: "http://0.0.0.0:8080/", reason: "an unspecified address"},
	{url: "http://0.0.0.0/", reason: "an unspecified address"},
	{url: "http://[::]/", reason: "an unspecified address"},
	{url: "http://224.0.0.1/", reason: "a multicast address"},
	{url: "http://[ff02::1]/", reason: "a multicast address"},
	{url: "http://[::ffff:239.1.1.1]/", reason: "a multicast address"},
	{url: "http://255.255.255.255/", reason: "a broadcast address"},
}

// nfPrivate are refused unless an allow-list admits them.
var nfPrivate = []nfSaveCase{
	{url: "http://10.0.0.5/", reason: "a private address"},
	{url: "https://172.16.3.4:8443/", reason: "a private address"},
	{url: "http://192.168.1.1/", reason: "a private address"},
	{url: "http://100.64.0.1/", reason: "a shared address"},
	{url: "http://[fc00::1]/", reason: "a private address"},
	{url: "http://[fd12:3456:789a::1]/", reason: "a private address"},
	{url: "http://[::ffff:10.0.0.5]/", reason: "a private address"},
	{url: "http://[64:ff9b::10.0.0.5]/", reason: "a private address"},
	{url: "http://127.0.0.1:5432/", reason: "a loopback address", loopback: true},
	{url: "http://127.0.0.1:6379/", reason: "a loopback address", loopback: true},
	{url: "http://localhost:6379/", reason: "a loopback address", loopback: true},
	{url: "http://LocalHost./x", reason: "a loopback address", loopback: true},
	{url: "http://api.localhost:9000/x", reason: "a loopback address", loopback: true},
	{url: "http://[::1]:8080/", reason: "a loopback address", loopback: true},
	{url: "http://127.1:9000/", reason: "a loopback address", loopback: true},
	{url: "http://[::ffff:127.0.0.1]:9000/", reason: "a loopback address", loopback: true},
}

// nfOwn are the platform's own listen addresses: its API and its
// in-process banks.
func nfOwn(e *env) []nfSaveCase {
	port := e.url[strings.LastIndex(e.url, ":")+1:]
	return []nfSaveCase{
		{url: e.url + "/v1/admin/ledger/check", reason: "the platform's own address"},
		{url: "http://localhost:" + port + "/v1/admin/ledger/check", reason: "the platform's own address"},
		{url: "http://[::ffff:127.0.0.1]:" + port + "/", reason: "the platform's own address"},
		{url: e.m.BanksEndpoint() + "/", reason: "the platform's own address"},
	}
}

// nfWorld is a seller and its merchant, with no notify_url.
func nfWorld(t *testing.T, e *env) *trWorld {
	t.Helper()
	w := &trWorld{env: e}
	w.seller = w.user("seller")
	w.mk = w.newMerchant(w.seller, "")
	return w
}

// nfSaveTargets are the three places a notify_url is saved. Each returns
// whether it was accepted and, if not, the refusal's parameter and message.
type nfSaveTarget struct {
	name string
	save func(t *testing.T, u string) (accepted bool, param, msg string)
}

func nfSaveTargets(w *trWorld, app *gwApp) []nfSaveTarget {
	return []nfSaveTarget{
		{"merchant", func(t *testing.T, u string) (bool, string, string) {
			var out map[string]any
			s := w.admin("POST", "/v1/merchants", map[string]any{"name": "Shop", "user_id": w.seller.id, "notify_url": u}, &out)
			return nfRefusal(t, s, out)
		}},
		{"trade", func(t *testing.T, u string) (bool, string, string) {
			s, out := w.create(map[string]any{"notify_url": u})
			return nfRefusal(t, s, out)
		}},
		{"gateway create", func(t *testing.T, u string) (bool, string, string) {
			r, err := app.client.TradeCreate(context.Background(), alipay.TradeCreate{Trade: alipay.Trade{
				OutTradeNo: fmt.Sprintf("nfc%d", trSeq.Add(1)), Subject: "Tea", TotalAmount: "1.00", NotifyURL: u}})
			gwNoErr(t, "create", err)
			return nfGatewayRefusal(t, r.Error)
		}},
		{"gateway precreate", func(t *testing.T, u string) (bool, string, string) {
			r, err := app.client.TradePreCreate(context.Background(), alipay.TradePreCreate{Trade: alipay.Trade{
				OutTradeNo: fmt.Sprintf("nfp%d", trSeq.Add(1)), Subject: "Tea", TotalAmount: "1.00", NotifyURL: u}})
			gwNoErr(t, "precreate", err)
			return nfGatewayRefusal(t, r.Error)
		}},
	}
}

func nfRefusal(t *testing.T, status int, out map[string]any) (bool, string, string) {
	t.Helper()
	if status == http.StatusCreated {
		return true, "", ""
	}
	e, _ := out["error"].(map[string]any)
	if status != http.StatusBadRequest || errorCode(out) != "INVALID_REQUEST" {
		t.Fatalf("answer %d %v, want 201 or 400 INVALID_REQUEST", status, out)
	}
	p, _ := e["param"].(string)
	m, _ := e["message"].(string)
	return false, p, m
}

func nfGatewayRefusal(t *testing.T, e alipay.Error) (bool, string, string) {
	t.Helper()
	if e.IsSuccess() {
		return true, "", ""
	}
	if e.SubCode != "ACQ.INVALID_PARAMETER" {
		t.Fatalf("gateway: %s %s %s, want ACQ.INVALID_PARAMETER", e.Code, e.SubCode, e.SubMsg)
	}
	return false, "notify_url", e.SubMsg
}

// nfCheckSaves tries every case on every target: loopback ones are
// admitted when loopbackAllowed, the others refused with their reason.
func nfCheckSaves(t *testing.T, targets []nfSaveTarget, cases []nfSaveCase, loopbackAllowed bool) {
	t.Helper()
	for _, tg := range targets {
		for _, c := range cases {
			accepted, param, msg := tg.save(t, c.url)
			want := !(c.loopback && loopbackAllowed)
			switch {
			case !want && !accepted:
				t.Errorf("%s %s: refused (%s), want it admitted", tg.name, c.url, msg)
			case want && accepted:
				t.Errorf("%s %s: accepted, want refused: notify_url points to %s", tg.name, c.url, c.reason)
			case want && (param != "notify_url" || !strings.Contains(msg, "notify_url points to "+c.reason)):
				t.Errorf("%s %s: refused on %q with %q, want notify_url: %q", tg.name, c.url, param, msg,
					"notify_url points to "+c.reason)
			}
		}
	}
}

// TestNotifyURLRefusedOnSave: with no allow-list, the embedded default
// (SQLite) admits loopback and nothing else of the kind; PostgreSQL admits
// neither. The always-refused classes and the platform's own addresses are
// refused on both.
func TestNotifyURLRefusedOnSave(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := newNotifyEnv(t, backend, nil, nil)
			w := nfWorld(t, e)
			app := gwNewApp(t, w, w.seller, "")
			targets := nfSaveTargets(w, app)
			t.Run("always", func(t *testing.T) { nfCheckSaves(t, targets, nfAlwaysRefused, backend == "sqlite") })
			t.Run("own", func(t *testing.T) { nfCheckSaves(t, targets, nfOwn(e), backend == "sqlite") })
			t.Run("private", func(t *testing.T) { nfCheckSaves(t, targets, nfPrivate, backend == "sqlite") })
			t.Run("public", func(t *testing.T) {
				for _, tg := range targets {
					for _, u := range []string{"https://shop.example.com/notify", "http://203.0.114.7:8080/n",
						"http://[2001:4860:4860::8888]/n", "http://[64:ff9b::808:808]/n"} {
						if ok, _, msg := tg.save(t, u); !ok {
							t.Errorf("%s %s: refused (%s), want admitted", tg.name, u, msg)
						}
					}
				}
			})
		})
	}
}

// TestNotifyAllowList: an operator's allow-list admits exactly what it
// lists, replaces the embedded default, and cannot admit what is always
// refused; the flag wins over the environment variable.
func TestNotifyAllowList(t *testing.T) {
	cases := []struct {
		name    string
		backend string
		vars    map[string]string
		args    []string
		admit   []string
		refuse  map[string]string // URL → reason
	}{
		{name: "postgres env", backend: "postgres",
			vars:  map[string]string{"ZHIFU_NOTIFY_ALLOW_CIDRS": "10.1.0.0/16, 127.0.0.1/32,fd12::/16,169.254.0.0/16"},
			admit: []string{"http://10.1.2.3/", "http://10.1.255.255:81/", "http://127.0.0.1:9000/", "http://[fd12::5]/", "http://[::ffff:10.1.0.1]/"},
			refuse: map[string]string{"http://10.2.0.1/": "a private address", "http://127.0.0.2/": "a loopback address",
				"http://[::1]/": "a loopback address", "http://192.168.0.1/": "a private address",
				"http://169.254.169.254/": "a link-local address", "http://[fd00:ec2::254]/": "a cloud metadata address"}},
		{name: "sqlite flag replaces default", backend: "sqlite",
			vars:   map[string]string{"ZHIFU_NOTIFY_ALLOW_CIDRS": "127.0.0.0/8"},
			args:   []string{"--notify-allow-cidrs", "192.168.7.0/24"},
			admit:  []string{"http://192.168.7.9/"},
			refuse: map[string]string{"http://127.0.0.1:9000/": "a loopback address", "http://192.168.8.1/": "a private address"}},
		{name: "sqlite none", backend: "sqlite", args: []string{"--notify-allow-cidrs", "none"},
			refuse: map[string]string{"http://localhost:9000/": "a loopback address", "http://10.0.0.1/": "a private address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newNotifyEnv(t, c.backend, c.vars, nil, c.args...)
			w := nfWorld(t, e)
			app := gwNewApp(t, w, w.seller, "")
			for _, tg := range nfSaveTargets(w, app) {
				for _, u := range c.admit {
					if ok, _, msg := tg.save(t, u); !ok {
						t.Errorf("%s %s: refused (%s), want admitted", tg.name, u, msg)
					}
				}
				for u, reason := range c.refuse {
					ok, _, msg := tg.save(t, u)
					if ok || !strings.Contains(msg, "notify_url points to "+reason) {
						t.Errorf("%s %s: accepted %v (%s), want refused: %s", tg.name, u, ok, msg, reason)
					}
				}
			}
		})
	}
}

// TestNotifyAllowListInvalid: the flag exists, and a malformed allow-list
// stops the start with an error naming it.
func TestNotifyAllowListInvalid(t *testing.T) {
	for _, v := range []string{"10.0.0.0/33", "ten", "10.0.0.0/8,,x", "fe80::1%eth0"} {
		tm := newTestMain(nil)
		dir := t.TempDir()
		if err := tm.ParseFlags(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", dir,
			"--notify-allow-cidrs", v}); err != nil {
			t.Fatalf("--notify-allow-cidrs %q: %v, want the flag taken", v, err)
		}
		err := tm.Run(context.Background())
		tm.Close()
		if err == nil || !strings.HasPrefix(err.Error(), "--notify-allow-cidrs: ") {
			t.Errorf("--notify-allow-cidrs %q: %v, want the start refused naming the flag", v, err)
		}
	}
}
