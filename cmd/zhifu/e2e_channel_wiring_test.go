package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
	"zhifu/channel"
)

// How the banks are wired: in-process by default, with secrets generated
// once in the data folder; or an external "zhifu banksim" named by
// --banks-url.

func TestChannelInProcessBanks(t *testing.T) {
	e := newChannelEnv(t, "sqlite", chOptions{})
	dir := e.m.DataDir
	st, err := os.Stat(filepath.Join(dir, bankSecretsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bank secrets file: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, banksDBFileName)); err != nil {
		t.Fatalf("banks' books: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, bankSecretsFile))
	for _, bank := range allBanks {
		secret, _ := e.banks.Secret(bank)
		if !strings.Contains(string(b), bank+"="+secret) {
			t.Errorf("%s's secret is not the one saved", bank)
		}
		if strings.Contains(e.m.stderr.String(), secret) || strings.Contains(e.m.stdout.String(), secret) {
			t.Errorf("%s's secret appears in the output", bank)
		}
	}
	// The channels' gauges are on /metrics. A bank's queue reads 1 from the
	// moment this node takes the bank's lease until its first claim finds
	// the queue empty (channel.LeadBank), so the page is read until it
	// settles.
	wants := []string{`zhifu_channel_breaker_state{bank="ICBC"} 0`, `zhifu_channel_withdrawals_queued{bank="CEB"} 0`,
		`zhifu_channel_success_rate{bank="CMB"} 1`}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(e.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range missing {
		t.Errorf("/metrics lacks %q", want)
	}
}

func TestChannelWithdrawalQueueFull(t *testing.T) {
	e := newChannelEnv(t, "sqlite", chOptions{channels: func(c *channel.Config) { c.WithdrawalQueueMax = 2 }})
	u := e.newUsers(t, "queuer", 1, []string{"ABC"}, "100.00")[0]
	// ABC is in maintenance: its payouts wait in the queue.
	now := e.clock.Now()
	if err := e.banks.SetScenario("ABC", banksim.Scenario{Maintenance: []bankapi.Window{{Start: now, End: now.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.ch.RefreshMaintenance(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if s, _, out, err := e.do(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": "1.00", "card_id": u.cards["ABC"]}, ""); err != nil || s != 202 {
			t.Fatalf("withdrawal: %d %v %v", s, out, err)
		}
	}
	s, hdr, out, _ := e.do(u.token, "POST", "/v1/withdrawals", map[string]string{"amount": "1.00", "card_id": u.cards["ABC"]}, "")
	if s != 503 || errorCode(out) != "SYSTEM_BUSY" || hdr.Get("Retry-After") != "5" {
		t.Fatalf("withdrawal beyond the queue: %d %v Retry-After %q", s, out, hdr.Get("Retry-After"))
	}
	idWantBalance(t, e.env, u.idUser, "98.00")
	e.settle(t, 5*time.Minute, 2*time.Hour)
	e.verify(t, []*chUser{u}, map[string]int64{u.id: 100_00}, nil)
}

func TestChannelExternalBanksim(t *testing.T) {
	dir := t.TempDir()
	const secrets = "ICBC=s-icbc,CMB=s-cmb,CCB=s-ccb,ABC=s-abc,BOC=s-boc,CEB=s-ceb"
	sim := newTestMain(nil)
	if err := sim.ParseFlags(context.Background(), []string{"banksim", "--addr", "127.0.0.1:0",
		"--db", filepath.Join(dir, "banks.db"), "--control-token", "ctl", "--secrets", secrets}); err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	banksURL := sim.BanksEndpoint()
	if !strings.HasPrefix(banksURL, "http://127.0.0.1:") || !strings.Contains(sim.stderr.String(), "banksim listening") {
		t.Fatalf("banksim at %q: %s", banksURL, sim.stderr.String())
	}
	if strings.Contains(sim.stderr.String(), "s-icbc") {
		t.Error("a bank secret appears in the log")
	}

	// Without the secrets the platform refuses to start against it.
	bad := newTestMain(nil)
	bad.ParseFlags(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "bad"),
		"--banks-url", banksURL})
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "banks-secrets") {
		bad.Close()
		t.Fatalf("serve with --banks-url and no secrets: %v", err)
	}
	bad.Close()

	m := newTestMain(map[string]string{"ZHIFU_BANKS_SECRETS": secrets, "ZHIFU_BANKS_URL": banksURL})
	if err := m.ParseFlags(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "platform")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.Banks != nil || m.BanksEndpoint() != banksURL {
		t.Fatalf("the platform runs its own banks (%v) or not the external ones (%s)", m.Banks, m.BanksEndpoint())
	}
	e := &chEnv{env: &env{t: t, m: m, url: m.URL(), token: m.AdminToken(), clock: &manualClock{now: time.Now()}},
		ch: m.Channels, cl: http.DefaultClient}
	u := e.newUsers(t, "outside", 1, []string{"CCB"}, "")[0]
	_, _, tp, err := e.do(u.token, "POST", "/v1/topups", map[string]string{"amount": "12.00", "card_id": u.cards["CCB"]}, "")
	if err != nil || tp["status"] != "PROCESSING" {
		t.Fatalf("top-up: %v %v", tp, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for idBalance(t, e.env, u.idUser); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if avail, _ := idBalance(t, e.env, u.idUser); avail == "12.00" {
			break
		}
	}
	idWantBalance(t, e.env, u.idUser, "12.00")
	// The operator of the simulator drives it through its control API.
	cc := banksim.NewControlClient(banksURL, "ctl", nil)
	books, ok, err := cc.Books(context.Background())
	if err != nil || !ok || books["CCB"].Debited != 1200 {
		t.Fatalf("books: %v %v %+v", ok, err, books["CCB"])
	}
}
