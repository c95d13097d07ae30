// Command zhifu runs the zhifu payment platform. It wires the packages
// together: a ledger store (SQLite by default, or PostgreSQL), the ledger's
// batcher, and the HTTP server. Main holds that wiring with ParseFlags, Run
// and Close, so tests run the real program on port 0 with a temp database.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"zhifu"
	"zhifu/gateway"
	zhttp "zhifu/http"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/notify"
	"zhifu/trade"
	"zhifu/wallet"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// after a SIGTERM before their connections are cut.
const shutdownTimeout = 20 * time.Second

const usage = `zhifu is a payment platform.

Usage:

	zhifu serve [flags]   run the HTTP API

Run "zhifu serve -h" for the flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := NewMain()
	if err := m.ParseFlags(ctx, os.Args[1:]); err != nil {
		os.Exit(reportParseError(err))
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		fmt.Fprintln(os.Stderr, "zhifu:", err)
		os.Exit(1)
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
	DataDir string // holds the SQLite database and the admin token file

	// adminToken is unexported so that it is never printed with the rest of
	// the configuration; AdminToken returns it.
	adminToken string

	// The outside world, replaceable by tests.
	Stdout io.Writer // the one-time admin token print
	Stderr io.Writer // logs
	Getenv func(string) string
	Rand   io.Reader // admin token generation
	Clock  zhifu.Clock
	Logger *slog.Logger
	// HTTPClient makes outside calls (merchant notifications); nil picks a
	// client with bounded timeouts.
	HTTPClient *http.Client

	store   ledger.Store
	batcher *ledger.Batcher
	server  *zhttp.Server

	// Services, exposed so in-process tests can drive timers and workers.
	Identity *identity.Service
	Wallet   *wallet.Service
	Trades   *trade.Service
	Notify   *notify.Worker
	Gateway  *gateway.Service

	stopWorkers context.CancelFunc
	workers     sync.WaitGroup
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
		return m.parseServeFlags(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, usage)
		return flag.ErrHelp
	}
	return &UsageError{Msg: fmt.Sprintf("unknown command %q", args[0]), Usage: usage}
}

// Run opens the store, starts the batcher and the HTTP server, and returns
// once the server listens. Close stops them.
func (m *Main) Run(ctx context.Context) error {
	if m.adminToken == "" {
		if err := m.loadAdminToken(); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, m.DB)
	if err != nil {
		return err
	}
	m.store = st
	m.batcher = ledger.NewBatcher(st, m.Clock.Now)
	if err := m.startServices(); err != nil {
		return err
	}
	m.server = zhttp.NewServer(zhttp.Config{
		Addr:       m.Addr,
		Ledger:     st,
		Batcher:    m.batcher,
		AdminToken: m.adminToken,
		Logger:     m.Logger,
		Clock:      m.Clock,
		Services: zhttp.Services{Identity: m.Identity, Wallet: m.Wallet, Trades: m.Trades,
			Gateway: m.Gateway},
	})
	if err := m.server.Open(); err != nil {
		return err
	}
	m.Logger.Info("listening", slog.String("url", m.server.URL()), slog.String("db", redactDB(m.DB)))
	return nil
}

// Close shuts down in dependency order: the server stops taking requests
// and lets those in flight finish (they may be waiting on the batcher), then
// the batcher commits what is queued, then the store closes. It may be
// called more than once.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		errs = append(errs, m.server.Close(ctx))
		cancel()
		m.server = nil
	}
	if m.stopWorkers != nil {
		m.stopWorkers()
		m.workers.Wait()
		m.stopWorkers = nil
	}
	if m.batcher != nil {
		m.batcher.Close()
		m.batcher = nil
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	return errors.Join(errs...)
}

// URL returns the HTTP server's base URL once Run has returned.
func (m *Main) URL() string {
	if m.server == nil {
		return ""
	}
	return m.server.URL()
}

// AdminToken returns the admin token in use, given or generated.
func (m *Main) AdminToken() string { return m.adminToken }
