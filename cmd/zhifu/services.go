package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"zhifu/approval"
	"zhifu/banksim"
	"zhifu/billpay"
	"zhifu/channel"
	"zhifu/checkout"
	"zhifu/egress"
	"zhifu/gateway"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/node"
	"zhifu/notify"
	"zhifu/recon"
	"zhifu/trade"
	"zhifu/wallet"
)

// platformAccountsTimeout bounds creating the platform's ledger accounts at
// start, so a stuck database fails the start instead of hanging it.
const platformAccountsTimeout = 30 * time.Second

// bankCallbackTimeout bounds one callback of the in-process banks.
const bankCallbackTimeout = 5 * time.Second

// startServices builds the business services over the store and batcher
// and starts the background workers every node runs (notification
// delivery, the gateway's keys). It first makes sure the platform's ledger
// accounts exist. Close stops the workers before the batcher.
func (m *Main) startServices() error {
	if err := m.newEgress(); err != nil {
		return err
	}
	m.Identity = identity.New(identity.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Egress: m.egress})
	m.Approvals = approval.New(approval.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger})
	if err := m.newCampaigns(); err != nil {
		return err
	}
	m.Wallet = wallet.New(wallet.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity, Discounter: m.Campaigns})
	m.Trades = trade.New(trade.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity, Egress: m.egress})
	if err := m.newChannels(checkout.NewSettler(m.Trades)); err != nil {
		return err
	}
	m.Checkout = checkout.New(checkout.Config{Trades: m.Trades, Wallet: m.Wallet, Channels: m.Channels,
		Discounter: m.Campaigns})
	m.BillPay = billpay.New(billpay.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity, Wallet: m.Wallet, Discounter: m.Campaigns})
	if err := m.newRecon(); err != nil {
		return err
	}
	ensureCtx, cancelEnsure := context.WithTimeout(context.Background(), platformAccountsTimeout)
	err := m.Wallet.EnsurePlatformAccounts(ensureCtx)
	var keys *gateway.Keys
	if err == nil {
		keys, err = gateway.LoadKeys(ensureCtx, m.store, m.batcher, m.Clock)
	}
	cancelEnsure()
	if err != nil {
		return fmt.Errorf("platform accounts and keys: %w", err)
	}
	m.Gateway = gateway.New(gateway.Config{Trades: m.Trades, Identity: m.Identity, Keys: keys, Clock: m.Clock,
		Logger: m.Logger, BaseURL: m.URL})
	ncfg := notify.Config{Store: m.store, Clock: m.Clock, Logger: m.Logger, Egress: m.egress,
		AlipaySigner: keys.SignNotification, Holder: m.incarnation}
	if m.ConfigureNotify != nil {
		m.ConfigureNotify(&ncfg)
	}
	m.Notify = notify.New(ncfg)
	m.keeper = idempotency.New(idempotency.Config{Batcher: m.batcher, Reader: m.store.Reader(), Clock: m.Clock,
		Logger: m.Logger, ExternalSweep: true})
	ctx, cancel := context.WithCancel(context.Background())
	m.stopWorkers = cancel
	// Every node delivers notifications (each row is claimed under a
	// lease of its own) and reloads the gateway's keys; the jobs that one
	// node at a time runs start under the node's leases (startNode).
	// Every node also re-reads the campaigns and judges them, so that a
	// pause made anywhere stops every node's discounts within a tick.
	for _, run := range []func(context.Context){m.Notify.Run, keys.Run, m.Recon.Run, m.Campaigns.Run} {
		m.workers.Add(1)
		go func() {
			defer m.workers.Done()
			run(ctx)
		}()
	}
	return nil
}

// newEgress builds the guard of merchant-supplied addresses from
// --notify-allow-cidrs, says once which networks it admits, and refuses
// the platform's own addresses known so far: the in-process banks', and
// the API's if --addr names its port. ownAddresses adds the API's actual
// address once the server listens.
func (m *Main) newEgress() error {
	embedded := strings.HasPrefix(m.DB, "sqlite://")
	allow, err := parseNotifyAllow(m.NotifyAllowCIDRs, embedded)
	if err != nil {
		return err
	}
	cfg := egress.Config{Allow: allow}
	if m.ConfigureEgress != nil {
		m.ConfigureEgress(&cfg)
	}
	m.egress = egress.New(cfg)
	nets := make([]string, len(allow))
	for i, p := range allow {
		nets[i] = p.String()
	}
	switch {
	case m.NotifyAllowCIDRs == "" && embedded:
		m.Logger.Info("notifications may go to loopback addresses, the embedded default; set --notify-allow-cidrs to choose",
			slog.String("allow", strings.Join(nets, ",")))
	case len(allow) == 0:
		m.Logger.Info("notifications go to public addresses only; --notify-allow-cidrs admits private networks")
	default:
		m.Logger.Info("notifications may go to public addresses and the networks of --notify-allow-cidrs",
			slog.String("allow", strings.Join(nets, ",")))
	}
	m.egress.SetOwn(m.ownAddresses(m.Addr)...)
	return nil
}

// ownAddresses are the platform's listen addresses, the API's at api
// (host:port; "localhost" or no host stands for every address) and the
// in-process banks', for the guard to refuse. An address not known yet
// (port 0) is left out.
func (m *Main) ownAddresses(api string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, hp := range []string{api, strings.TrimPrefix(m.banksURL, "http://")} {
		if m.Banks == nil && hp != api {
			continue // external banks are not the platform's
		}
		host, port, err := net.SplitHostPort(hp)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || n == 0 {
			continue
		}
		a, ok := egress.ParseHostAddr(host)
		if host == "" || host == "localhost" {
			a, ok = netip.IPv6Unspecified(), true
		}
		if ok {
			out = append(out, netip.AddrPortFrom(a, uint16(n)))
		}
	}
	return out
}

// newChannels builds the bank channels over the banks startBanks resolved;
// settler pays the trades their card payments are for.
func (m *Main) newChannels(settler channel.TradeSettler) error {
	def, per, err := parseCapacity(m.BankCapacity)
	if err != nil {
		return err
	}
	cfg := channel.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger,
		Identity: m.Identity, Wallet: m.Wallet, Settler: settler, BanksURL: m.banksURL, Secrets: m.bankSecrets,
		PublicURL: m.PublicURL, Capacity: per, CapacityDefault: def, Discounter: m.Campaigns}
	if sim := m.Banks; sim != nil {
		cfg.Books = func(bank string) (channel.BankBooks, error) {
			b, err := sim.Books(bank)
			return channel.BankBooks{Settlement: b.Settlement, Debited: b.Debited, Credited: b.Credited,
				Unbalanced: b.Check()}, err
		}
	}
	if m.ConfigureChannels != nil {
		m.ConfigureChannels(&cfg)
	}
	m.Channels, err = channel.New(cfg)
	return err
}

// nodeJobs are the jobs that one node at a time runs, each under a lease
// of its name: the trade timers, the sweeps of expired nonces, sessions
// and Idempotency-Keys, and each bank's background work.
func (m *Main) nodeJobs() []node.Job {
	jobs := []node.Job{
		{Name: "trade-timers", Run: m.Trades.Run},
		{Name: "daily-bills", Run: m.Trades.RunBills},
		{Name: "identity-cleanup", Run: m.Identity.Run},
		{Name: "idempotency-sweep", Run: m.keeper.RunSweeps},
	}
	for _, bank := range m.Channels.Banks() {
		jobs = append(jobs, node.Job{Name: channel.BankLease(bank),
			Run: func(ctx context.Context) { m.Channels.LeadBank(ctx, bank) }})
	}
	return jobs
}

// startNode registers this process's incarnation among the nodes on the
// database and starts the leased jobs its share gives it. The channels
// then lead only the banks whose lease this node holds.
func (m *Main) startNode(ctx context.Context) error {
	dir, err := filepath.Abs(m.DataDir)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	stale, err := durationSetting("node-stale-after", m.NodeStaleAfter)
	if err != nil {
		return err
	}
	m.Channels.UseLeases(func(lease string) bool { return m.node != nil && m.node.Holding(lease) })
	release := func(ctx context.Context, tx ledger.Tx, inc string, _ time.Time) error {
		return notify.ReleaseHolder(ctx, tx, inc)
	}
	m.node, err = node.Start(ctx, node.Config{Store: m.store, Clock: m.Clock,
		Logger: m.Logger.With(slog.String("component", "node")), ID: m.incarnation, Addr: m.server.URL(),
		DataDir: dir, Jobs: m.nodeJobs(), Release: []node.Release{release}, Live: m.Channels.ShareCapacity,
		StaleAfter: stale})
	return err
}

// durationSetting reads a duration flag; empty is zero.
func durationSetting(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &UsageError{Msg: fmt.Sprintf("--%s: want a duration such as 5s, got %q", name, v)}
	}
	return d, nil
}

// newRecon builds reconciliation over the channels. Statement files banks
// send go in <data>/statements; the sort's temporary files in
// <data>/recon-tmp, made at the first run. The node's name is derived from
// the host and the data folder, so a restarted server (one per folder) is
// the same node and takes over at once the runs its last process left.
func (m *Main) newRecon() error {
	abs, err := filepath.Abs(m.DataDir)
	if err != nil {
		return fmt.Errorf("recon: data folder: %w", err)
	}
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host + "\n" + abs))
	cfg := recon.Config{Store: m.store, Batcher: m.batcher, Clock: m.Clock, Logger: m.Logger, Channels: m.Channels,
		Identity: m.Identity, Approvals: m.Approvals, Node: "node-" + hex.EncodeToString(sum[:8]),
		TempDir: filepath.Join(abs, reconTempDir), FilesDir: filepath.Join(abs, reconFilesDir)}
	if m.ConfigureRecon != nil {
		m.ConfigureRecon(&cfg)
	}
	if m.Recon, err = recon.New(cfg); err != nil {
		return err
	}
	m.Channels.UseBooksAdjustments(m.Recon.BooksAdjustments)
	return nil
}

// Where reconciliation keeps its files in the data folder.
const (
	reconFilesDir = "statements"
	reconTempDir  = "recon-tmp"
)

// startChannels starts the channels' workers once the server listens, so
// the callback URL they give the banks is known.
func (m *Main) startChannels() {
	// The API's actual address is known now, with the port chosen for
	// --addr port 0: merchant notifications must not reach it.
	m.egress.SetOwn(m.ownAddresses(strings.TrimPrefix(m.server.URL(), "http://"))...)
	if m.PublicURL == "" {
		m.Channels.SetPublicURL(m.server.URL())
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopChannels = cancel
	m.channelWorkers.Go(func() { m.Channels.Run(ctx) })
}

// startBanks resolves the banks: with --banks-url, the banks named there;
// otherwise the simulated banks, started in-process on their own
// 127.0.0.1 port with their books in the data folder, so that the embedded
// run needs nothing else.
func (m *Main) startBanks(ctx context.Context) error {
	secrets, err := m.loadBankSecrets()
	if err != nil {
		return err
	}
	m.bankSecrets = secrets
	if m.BanksURL != "" {
		m.banksURL = m.BanksURL
		return nil
	}
	cfg := banksim.Config{DBPath: filepath.Join(m.DataDir, banksDBFileName), Secrets: secrets, Seed: 1,
		Clock: m.Clock, Logger: m.Logger.With(slog.String("component", "banksim"))}
	if m.BanksScenario != "" {
		if cfg.Scenarios, err = banksim.LoadScenario(m.BanksScenario); err != nil {
			return err
		}
	}
	return m.serveBanks(cfg, "127.0.0.1:0")
}

// serveBanks opens a simulator and serves it on addr in the background.
func (m *Main) serveBanks(cfg banksim.Config, addr string) error {
	if m.ConfigureBanks != nil {
		m.ConfigureBanks(&cfg)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: bankCallbackTimeout}
	}
	m.banksClient = cfg.Client
	sim, err := banksim.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		sim.Close()
		return fmt.Errorf("banks: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Banks, m.stopBanks, m.banksDone = sim, cancel, make(chan error, 1)
	go func() { m.banksDone <- sim.Serve(ctx, ln) }()
	m.banksURL = "http://" + ln.Addr().String()
	return nil
}

// closeBanks stops the in-process banks, if any. Callbacks they had not
// delivered are dropped, as a restarting bank may drop them; the channels
// learn those outcomes by inquiry.
func (m *Main) closeBanks() error {
	if m.stopBanks == nil {
		return nil
	}
	m.stopBanks()
	err := <-m.banksDone
	m.stopBanks = nil
	return errors.Join(err, m.Banks.Close())
}

// runBanksim runs "zhifu banksim": the simulated banks alone, until the
// process is told to stop.
func (m *Main) runBanksim(ctx context.Context) error {
	seed, err := strconv.ParseUint(m.sim.seed, 10, 64)
	if err != nil {
		return fmt.Errorf("--seed: %w", err)
	}
	cfg := banksim.Config{DBPath: m.sim.db, Seed: seed, ControlToken: m.sim.controlToken, Logger: m.Logger}
	if m.sim.secrets != "" {
		if cfg.Secrets, err = parseBankSecrets(m.sim.secrets); err != nil {
			return err
		}
	} else {
		m.Logger.Warn("banksim: no --secrets: the banks use predictable secrets derived from the seed, for tests only")
	}
	if m.sim.scenario != "" {
		if cfg.Scenarios, err = banksim.LoadScenario(m.sim.scenario); err != nil {
			return err
		}
	}
	if err := m.serveBanks(cfg, m.sim.addr); err != nil {
		return err
	}
	m.Logger.Info("banksim listening", slog.String("url", m.banksURL), slog.Any("banks", m.Banks.Banks()),
		slog.Bool("control_api", m.sim.controlToken != ""))
	return nil
}

// registerReconMetrics exports the latest custody check and the review
// items open, read at scrape time.
func registerReconMetrics(reg prometheus.Registerer, r *recon.Service) {
	custody := func(f func(*recon.Custody) float64) func() float64 {
		return func() float64 {
			if c := r.LastCustody(); c != nil {
				return f(c)
			}
			return 0
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zhifu_custody_ok",
			Help: "1 when the latest custody check held: customer funds equal bank funds less platform funds, and bank funds cover them."},
			custody(func(c *recon.Custody) float64 {
				if c.OK {
					return 1
				}
				return 0
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zhifu_custody_difference_fen",
			Help: "Customer funds less (bank funds less platform funds) at the latest custody check, in fen; 0 when it holds."},
			custody(func(c *recon.Custody) float64 { return float64(c.Difference) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zhifu_custody_shortfall_fen",
			Help: "By how much customer funds exceeded bank funds at the latest custody check, in fen."},
			custody(func(c *recon.Custody) float64 { return float64(c.Shortfall) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zhifu_recon_items_open",
			Help: "Reconciliation review items waiting for an operator, at the latest custody check."},
			func() float64 { return float64(r.OpenItems()) }),
	)
}

// registerChannelMetrics exports each bank's breaker, success rate,
// latency, calls in flight and withdrawal queue, read at scrape time.
func registerChannelMetrics(reg prometheus.Registerer, ch *channel.Service) {
	if ch == nil {
		return
	}
	breakerValue := map[channel.BreakerState]float64{channel.Closed: 0, channel.HalfOpen: 1, channel.Open: 2}
	gauges := []struct {
		name, help string
		value      func(channel.BankHealth) float64
	}{
		{"zhifu_channel_breaker_state", "The bank's circuit breaker: 0 closed, 1 half-open, 2 open.",
			func(h channel.BankHealth) float64 { return breakerValue[h.Breaker] }},
		{"zhifu_channel_success_rate", "Share of the bank's calls that succeeded over the last 30 s.",
			func(h channel.BankHealth) float64 { return h.SuccessRate }},
		{"zhifu_channel_latency_p99_seconds", "99th percentile latency of the bank's calls over the last 30 s.",
			func(h channel.BankHealth) float64 { return h.P99.Seconds() }},
		{"zhifu_channel_calls_in_flight", "Calls to the bank awaiting an answer.",
			func(h channel.BankHealth) float64 { return float64(h.CallsInFlight) }},
		{"zhifu_channel_withdrawals_queued", "Withdrawals waiting in the bank's queue.",
			func(h channel.BankHealth) float64 { return float64(h.QueuedWithdrawals) }},
	}
	for _, bank := range ch.Banks() {
		for _, g := range gauges {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help,
				ConstLabels: prometheus.Labels{"bank": bank}}, func() float64 {
				h, _ := ch.BankHealth(bank)
				return g.value(h)
			}))
		}
	}
}
