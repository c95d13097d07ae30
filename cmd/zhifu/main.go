// Command zhifu runs the zhifu payment platform. It wires the packages
// together: a ledger store (SQLite by default, or PostgreSQL), the ledger's
// batcher, the business services, the bank channels (with the simulated
// banks in-process unless --banks-url names others), and the HTTP server.
// "zhifu banksim" runs the simulated banks alone; "zhifu report bank"
// prints the banks' monthly report of a database; "zhifu recon" asks a
// running server to reconcile a bank's day; "zhifu bench" prepares and
// measures large ledgers. Main holds that wiring with ParseFlags, Run and
// Close, so tests run the real program on port 0 with a temp database.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"zhifu/campaign"

	"zhifu"
	"zhifu/approval"
	"zhifu/banksim"
	"zhifu/billpay"
	"zhifu/channel"
	"zhifu/checkout"
	"zhifu/egress"
	"zhifu/gateway"
	zhttp "zhifu/http"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/node"
	"zhifu/notify"
	"zhifu/recon"
	"zhifu/trade"
	"zhifu/wallet"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// after a SIGTERM before their connections are cut.
const shutdownTimeout = 20 * time.Second

const usage = `zhifu is a payment platform.

Usage:

	zhifu serve [flags]     run the HTTP API (with simulated banks in-process by default)
	zhifu banksim [flags]   run the simulated banks alone, for "zhifu serve --banks-url"
	zhifu bench prepare|ledger [flags]
	                        write a large ledger history, and measure the ledger on it
	zhifu report bank --month YYYY-MM   print the banks' monthly report
	zhifu recon [flags]     reconcile a bank's day on a running server

Run "zhifu serve -h", "zhifu banksim -h" or "zhifu recon -h" for the flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "report" {
		os.Exit(runReport(ctx, os.Args[2:], os.Stdout, os.Stderr, os.Getenv))
	}
	if len(os.Args) > 1 && os.Args[1] == "recon" {
		os.Exit(reconCommand(ctx, os.Args[2:], os.Stdout, os.Stderr, os.Getenv))
	}

	m := NewMain()
	if err := m.ParseFlags(ctx, os.Args[1:]); err != nil {
		os.Exit(reportParseError(err))
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		fmt.Fprintln(os.Stderr, "zhifu:", err)
		os.Exit(1)
	}
	if m.finished {
		m.Close()
		return
	}
	<-ctx.Done()
	// A second signal now kills the process at once, for an operator who
	// does not want to wait for the graceful shutdown.
	stop()
	m.Logger.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown failed", slog.Any("err", err))
		os.Exit(1)
	}
	m.Logger.Info("stopped")
}

// reportParseError prints what went wrong with the command line and returns
// the exit code: 0 for help, 2 for a usage mistake, 1 otherwise.
func reportParseError(err error) int {
	var ue *UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "zhifu: %s\n\n%s", ue.Msg, ue.Usage)
		return 2
	}
	fmt.Fprintln(os.Stderr, "zhifu:", err)
	return 1
}

// UsageError is a mistake on the command line; main exits 2 after printing
// Msg and Usage.
type UsageError struct {
	Msg   string
	Usage string
}

func (e *UsageError) Error() string { return e.Msg }

// Main is the program: its configuration, set by ParseFlags, and the running
// parts, started by Run and stopped by Close.
type Main struct {
	Addr    string // HTTP listen address; port 0 picks a free port
	DB      string // sqlite://path or postgres://…
	DataDir string // holds the SQLite database, the admin token file and the lock of the server using them

	// adminToken is unexported so that it is never printed with the rest of
	// the configuration; AdminToken returns it.
	adminToken string

	// The banks: BanksURL names an external "zhifu banksim" (or a real
	// gateway); empty runs the simulated banks in-process on their own
	// port, their books in the data folder. banksSecrets is "ICBC=…,CMB=…"
	// (unexported like the admin token); empty reads or generates
	// <data>/bank-secrets for the in-process banks.
	BanksURL      string
	BanksScenario string // scenario file for the in-process banks
	BankCapacity  string // "500" for every bank, or "ICBC=500,CMB=300"
	PublicURL     string // where banks send callbacks; default the server's URL
	// NotifyAllowCIDRs lists the networks merchant notifications may go to
	// although private or loopback ("10.0.0.0/8,127.0.0.1/32" or "none");
	// empty is loopback with SQLite and nothing with PostgreSQL.
	NotifyAllowCIDRs string
	// CampaignsSpec is --campaigns: the campaigns' limits and monitor.
	CampaignsSpec string
	// ConfigureCampaigns, when set, adjusts the campaign service's config
	// before it is built (in-process tests shorten its canary and tick).
	ConfigureCampaigns func(*campaign.Config)
	// DrainWait is how long a SIGTERM'd server goes on serving while
	// /readyz says 503, for a load balancer to stop sending it requests
	// (a duration; empty is none). NodeStaleAfter is how long another
	// node's heartbeat may stay unchanged before its claims are freed
	// (empty: node.StaleAfterDefault).
	DrainWait      string
	NodeStaleAfter string
	banksSecrets   string
	// bankSecrets and banksURL are what Run resolved them to.
	bankSecrets map[string]string
	banksURL    string

	// edge is admission control's configuration (config.go).
	edge edgeFlags

	// command is the subcommand ParseFlags read: "serve", "banksim" or
	// "bench".
	command string
	// finished is set by a command that is done once Run returns, rather
	// than serving until a signal.
	finished bool
	bench    benchConfig
	sim      simFlags

	// Tests adjust the channels' and the in-process banks' configuration
	// here before Run builds them.
	ConfigureChannels func(*channel.Config)
	ConfigureBanks    func(*banksim.Config)
	// Tests adjust the guard of caller-supplied addresses (its resolver)
	// and the notification worker (an observer) the same way.
	ConfigureEgress func(*egress.Config)
	ConfigureNotify func(*notify.Config)
	ConfigureRecon  func(*recon.Config)

	// The outside world, replaceable by tests.
	Stdout io.Writer // the one-time admin token print
	Stderr io.Writer // logs
	Getenv func(string) string
	Rand   io.Reader // admin token generation
	Clock  zhifu.Clock
	Logger *slog.Logger

	// dataLock keeps other servers off DataDir while this one runs.
	dataLock *dataLock
	// listener holds the port from the start of Run until the server
	// binds it.
	listener net.Listener
	// unsaved are the secrets made on this start, saved once the server
	// listens; tokenGenerated says the admin token is among them.
	unsaved        []unsavedSecret
	tokenGenerated bool

	store ledger.Store
	// egress guards every call to an address a caller supplied.
	egress  *egress.Guard
	batcher *ledger.Batcher
	server  *zhttp.Server
	keeper  *idempotency.Keeper
	// incarnation names this process's life among the nodes sharing the
	// database; node is its heartbeat and leases.
	incarnation string
	node        *node.Node
	drainWait   time.Duration

	// Services, exposed so in-process tests can drive timers and workers.
	Identity *identity.Service
	// Approvals is the four-eyes rule for operators' decisions.
	Approvals *approval.Service
	Wallet    *wallet.Service
	Trades    *trade.Service
	Checkout  *checkout.Service
	Notify    *notify.Worker
	Gateway   *gateway.Service
	Channels  *channel.Service
	// Recon is reconciliation, its review items and custody.
	Recon *recon.Service
	// Campaigns are the marketing campaigns and their discounts.
	Campaigns *campaign.Service
	// BillPay pays billers from wallets.
	BillPay *billpay.Service
	// Banks is the in-process bank simulator (nil with --banks-url), so
	// tests can change its scenarios and read its books.
	Banks *banksim.Sim

	stopWorkers context.CancelFunc
	workers     sync.WaitGroup
	// The channels' workers start once the server listens (callbacks need
	// its URL) and stop before the other workers.
	stopChannels   context.CancelFunc
	channelWorkers sync.WaitGroup
	// stopBanks ends the in-process banks' server; banksDone reports it.
	stopBanks   context.CancelFunc
	banksDone   chan error
	banksClient *http.Client // sends the in-process banks' callbacks
}

// NewMain returns a Main wired to the process's real environment.
func NewMain() *Main {
	m := &Main{
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		Rand:   rand.Reader,
		Clock:  zhifu.SystemClock{},
	}
	m.Logger = slog.New(slog.NewTextHandler(m.Stderr, nil))
	return m
}

// ParseFlags reads the subcommand and its flags. args excludes the program
// name.
func (m *Main) ParseFlags(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &UsageError{Msg: "no command given", Usage: usage}
	}
	switch args[0] {
	case "serve":
		m.command = "serve"
		return m.parseServeFlags(args[1:])
	case "banksim":
		m.command = "banksim"
		return m.parseBanksimFlags(args[1:])
	case "bench":
		m.command = "bench"
		return m.parseBenchFlags(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, usage)
		return flag.ErrHelp
	}
	return &UsageError{Msg: fmt.Sprintf("unknown command %q", args[0]), Usage: usage}
}

// Run starts "zhifu serve" and returns once the server listens; Close stops
// it. For "banksim" it runs the simulated banks alone.
//
// What can fail cheaply comes first: the flags, the data folder's lock, the
// port (bound now and held until the server takes it over) and the
// database. Only then are secrets read or made, and the ones made on this
// start (admin token, banks' secrets) are saved and the token printed only
// once the server listens, so a start that fails leaves the data folder as
// it found it, but for the lock file, and prints no token.
func (m *Main) Run(ctx context.Context) error {
	switch m.command {
	case "banksim":
		return m.runBanksim(ctx)
	case "bench":
		m.finished = true
		return m.runBench(ctx)
	}
	if m.BanksURL != "" && m.banksSecrets == "" {
		return errBanksSecretsRequired
	}
	var err error
	if m.drainWait, err = durationSetting("drain-wait", m.DrainWait); err != nil {
		return err
	}
	m.incarnation = node.NewID()
	lock, err := lockDataDir(m.DataDir)
	if err != nil {
		return err
	}
	m.dataLock = lock
	if m.listener, err = net.Listen("tcp", m.Addr); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	st, err := openStore(ctx, m.DB)
	if err != nil {
		return err
	}
	m.store = st
	if m.adminToken == "" {
		if err := m.loadAdminToken(); err != nil {
			return err
		}
	}
	m.batcher = ledger.NewBatcher(st, m.Clock.Now)
	if err := m.startBanks(ctx); err != nil {
		return err
	}
	if err := m.startServices(); err != nil {
		return err
	}
	m.server = zhttp.NewServer(zhttp.Config{
		Addr:       serverAddr(m.Addr, m.listener),
		Ledger:     st,
		Batcher:    m.batcher,
		AdminToken: m.adminToken,
		Logger:     m.Logger,
		Clock:      m.Clock,
		Services: zhttp.Services{Identity: m.Identity, Wallet: m.Wallet, Trades: m.Trades,
			Checkout: m.Checkout, Gateway: m.Gateway, Channels: m.Channels, Approvals: m.Approvals,
			Recon: m.Recon, Campaigns: m.Campaigns, BillPay: m.BillPay},
		Admission:   m.edge.config,
		ConnsMax:    m.edge.connsMax,
		Idempotency: m.keeper,
		Node:        m.incarnation,
	})
	registerChannelMetrics(m.server.Registerer(), m.Channels)
	registerReconMetrics(m.server.Registerer(), m.Recon)
	// The server binds the address itself: hand the port over.
	m.listener.Close()
	m.listener = nil
	if err := m.server.Open(); err != nil {
		return err
	}
	if err := m.saveSecrets(); err != nil {
		return err
	}
	if err := m.startNode(ctx); err != nil {
		return err
	}
	m.startChannels()
	m.Logger.Info("listening", slog.String("url", m.server.URL()), slog.String("db", redactDB(m.DB)),
		slog.String("incarnation", m.incarnation))
	return nil
}

// serverAddr is where the server listens: the address asked for, with the
// port the early listener was given if it asked for any free port.
func serverAddr(addr string, ln net.Listener) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "" && port != "0" {
		return addr
	}
	if _, got, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		return net.JoinHostPort(host, got)
	}
	return addr
}

// Close shuts down in dependency order. The server first says it is not
// ready (and, with DrainWait, goes on serving that long for a load
// balancer to notice); the node then hands back its leases, each as soon
// as its job stopped, for other nodes to take at once, while the server
// stops taking requests and lets those in flight finish (they may be
// waiting on the batcher). Then the workers stop, the node is marked
// stopped, the batcher commits what is queued, and the store closes. It
// may be called more than once.
func (m *Main) Close() error {
	var errs []error
	if m.banksClient != nil {
		// Connections the banks' callbacks dialled but never used would
		// hold the server's shutdown for seconds (net/http waits 5 s on a
		// connection that never sent a request).
		m.banksClient.CloseIdleConnections()
	}
	if m.server != nil {
		m.server.Drain()
		if m.drainWait > 0 {
			m.Logger.Info("draining: not ready, still serving", slog.Duration("for", m.drainWait))
			time.Sleep(m.drainWait)
		}
	}
	var drained sync.WaitGroup
	if m.node != nil {
		drained.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := m.node.Drain(ctx); err != nil {
				m.Logger.Warn("node: drain", slog.Any("err", err))
			}
		})
	}
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		errs = append(errs, m.server.Close(ctx))
		cancel()
		m.server = nil
	}
	drained.Wait()
	if m.stopChannels != nil {
		m.stopChannels()
		m.channelWorkers.Wait()
		m.stopChannels = nil
	}
	if m.stopWorkers != nil {
		m.stopWorkers()
		m.workers.Wait()
		m.stopWorkers = nil
	}
	if m.keeper != nil {
		m.keeper.Close()
		m.keeper = nil
	}
	if m.node != nil {
		errs = append(errs, m.node.Close())
		m.node = nil
	}
	if m.Channels != nil {
		m.Channels.CloseIdleConnections()
	}
	errs = append(errs, m.closeBanks())
	if m.batcher != nil {
		m.batcher.Close()
		m.batcher = nil
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	if m.listener != nil {
		m.listener.Close()
		m.listener = nil
	}
	// Last: until now the data folder's files were in use.
	errs = append(errs, m.dataLock.release())
	m.dataLock = nil
	return errors.Join(errs...)
}

// URL returns the HTTP server's base URL once Run has returned.
func (m *Main) URL() string {
	if m.server == nil {
		return ""
	}
	return m.server.URL()
}

// BanksEndpoint returns the banks' root URL once Run has returned: the
// in-process simulator's, the one --banks-url named, or for "zhifu banksim"
// its own.
func (m *Main) BanksEndpoint() string { return m.banksURL }

// AdminToken returns the admin token in use, given or generated.
func (m *Main) AdminToken() string { return m.adminToken }
