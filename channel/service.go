package channel

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/wallet"
)

// Defaults and limits of the channels.
const (
	// CapacityDefault is the calls per second the platform allows itself
	// at a bank whose capacity is not configured.
	CapacityDefault = 500.0
	// BackgroundShareDefault is the share of a bank's capacity that
	// payouts, inquiries and statements may use; the rest is kept for
	// payments.
	BackgroundShareDefault = 0.5
	// backgroundReserve is the share of the payment bucket background work
	// must leave untouched: payments arriving meanwhile find tokens.
	backgroundReserve = 0.2
	// CallsInFlightMaxDefault bounds the calls in flight to one bank.
	CallsInFlightMaxDefault = 32
	// WithdrawalQueueMaxDefault bounds each bank's queue of withdrawals.
	WithdrawalQueueMaxDefault = 200_000
	// CallTimeoutDefault bounds one call to a bank.
	CallTimeoutDefault = 10 * time.Second
	// AcceptInFlightMaxDefault bounds the withdrawal acceptances waiting
	// in the batcher's background lane at once: a batch then carries at
	// most that many beside the payments, so a flood of withdrawals never
	// makes a batch long enough to delay a payment much; the rest wait
	// here, in memory, each caller holding its own request.
	AcceptInFlightMaxDefault = 8
	// jobsQueueMax bounds the jobs waiting for a bank's workers.
	jobsQueueMax = 1024
	// claimBatchMax bounds the withdrawals claimed in one op.
	claimBatchMax = 256
	// queueRecheckInterval is how often, in clock time, a withdrawal
	// queue that looks empty in memory is claimed from all the same.
	queueRecheckInterval = time.Second
	// pollInterval is how often the workers look for due work (real
	// time; what is due is decided by the clock).
	pollInterval = 50 * time.Millisecond
	// refreshInterval is how often announcements and queue lengths are
	// read again (real time), for several nodes on one database.
	refreshInterval = 10 * time.Second
	// opTimeout bounds one bookkeeping op of a worker.
	opTimeout = 30 * time.Second
	// txnAmountMax bounds one top-up or withdrawal.
	txnAmountMax = zhifu.AmountMax
	// cardsPerUserMax bounds the cards one user may bind.
	cardsPerUserMax = 20
	// retryAfterBusy is what a full withdrawal queue tells the client.
	retryAfterBusy = 5 * time.Second
)

// Config is what the service needs.
type Config struct {
	Store    ledger.Store
	Batcher  *ledger.Batcher
	Clock    zhifu.Clock
	Logger   *slog.Logger
	Identity *identity.Service
	Wallet   *wallet.Service
	// Settler pays the trade a card payment is for when its top-up
	// succeeds (package checkout's); without one, a top-up that carries a
	// trade's payment cannot be resolved.
	Settler TradeSettler
	// Discounter decides the campaign discounts of card repayments; nil
	// means campaign.None{}, no discounts.
	Discounter campaign.Discounter

	// Banks are the banks' adapters, by name (of zhifu.Banks). When nil,
	// every bank with a secret in Secrets is reached over bankapi at
	// BanksURL (the banks' gateway, such as a simulator's root URL); a bank
	// with neither has no channel.
	Banks    map[string]Bank
	BanksURL string
	Secrets  map[string]string
	// PublicURL is the platform's own root URL, where banks send
	// callbacks and online banking sends people back. SetPublicURL sets it
	// when it is known only once the server listens.
	PublicURL string
	// HTTP calls the banks; nil means a client sized for CallsInFlightMax.
	HTTP *http.Client
	// CallTimeout bounds one call; 0 means CallTimeoutDefault.
	CallTimeout time.Duration

	// Capacity is each bank's capacity in calls per second, as agreed
	// with the bank; CapacityDefault is used for banks not named (0 means
	// the package's CapacityDefault).
	Capacity        map[string]float64
	CapacityDefault float64
	// BackgroundShare is the share of capacity payouts and inquiries may
	// use; 0 means BackgroundShareDefault.
	BackgroundShare float64
	// CallsInFlightMax bounds the calls in flight per bank; 0 means the
	// default.
	CallsInFlightMax int
	// Breaker tunes every bank's breaker; the zero value means
	// DefaultBreakerConfig.
	Breaker BreakerConfig
	// Policy times inquiries and the statement; the zero value means
	// DefaultPolicy.
	Policy Policy
	// WithdrawalQueueMax bounds each bank's queue; 0 means the default.
	WithdrawalQueueMax int
	// AcceptInFlightMax bounds the withdrawals being accepted at once; 0
	// means AcceptInFlightMaxDefault.
	AcceptInFlightMax int
	// Books reads a bank's own books, when the platform can (the
	// simulator running in-process); nil leaves custody to the ledger.
	Books func(bank string) (BankBooks, error)
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = zhifu.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Discounter == nil {
		c.Discounter = campaign.None{}
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = CallTimeoutDefault
	}
	if c.CapacityDefault <= 0 {
		c.CapacityDefault = CapacityDefault
	}
	if c.BackgroundShare <= 0 || c.BackgroundShare > 1 {
		c.BackgroundShare = BackgroundShareDefault
	}
	if c.CallsInFlightMax <= 0 {
		c.CallsInFlightMax = CallsInFlightMaxDefault
	}
	if c.Breaker == (BreakerConfig{}) {
		c.Breaker = DefaultBreakerConfig
	}
	if c.Policy == (Policy{}) {
		c.Policy = DefaultPolicy
	}
	if c.WithdrawalQueueMax <= 0 {
		c.WithdrawalQueueMax = WithdrawalQueueMaxDefault
	}
	if c.AcceptInFlightMax <= 0 {
		c.AcceptInFlightMax = AcceptInFlightMaxDefault
	}
	if c.HTTP == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = c.CallsInFlightMax * len(zhifu.Banks)
		c.HTTP = &http.Client{Transport: t}
	}
	return c
}

// Service is the platform's side of its banks: cards, top-ups, card repayments,
// withdrawals, card payments of trades, and each bank's health.
type Service struct {
	cfg      Config
	ledgerID uint32
	banks    map[string]*bank
	order    []*bank // zhifu.Banks order
	public   atomic.Pointer[string]

	// inflight names the transactions a worker of this process is busy
	// with, so the poller does not hand them out twice.
	inflightMu sync.Mutex
	inflight   map[string]bool

	acceptSlots chan struct{}
	kick        chan struct{}
	cards       cardCache
	sweeps      sync.WaitGroup // statement sweeps running
	// quiet is set by a poll that found nothing to do, and cleared by a
	// kick or a poll that handed out work.
	quiet atomic.Bool

	// pace is which banks this node leads, among several (pace.go).
	pace  pace
	calls *CallLog
	// adjust reads what reconciliation found the banks moved beyond the
	// bank transactions, for Custody; nil counts nothing.
	adjust func(context.Context) (map[string]BooksAdjustment, error)

	announceMu    sync.RWMutex
	announcements []Announcement // the operator's, ending after the last refresh
	// announceReads numbers the reads of announcements as they start, and
	// announceRead is the number of the read stored: a read that started
	// earlier and ends later never overwrites a fresher one.
	announceReads atomic.Int64
	announceRead  int64
}

// bank is one bank's channel.
type bank struct {
	name    string
	index   int
	client  Bank // recorded: every call leaves a Call in the service's CallLog
	window  *Window
	breaker *Breaker
	bucket  *Bucket // the bank's capacity
	bg      *Bucket // the share background work may use
	urgent  chan job
	jobs    chan job
	queued  atomic.Int64 // withdrawals QUEUED
	calls   atomic.Int64 // calls in flight
	sweep   atomic.Bool  // a statement sweep is running
	probing atomic.Bool  // a health probe is out
	// Only the poller touches these: its account of the bank's bad
	// health, and when it last claimed from a queue that looked empty.
	spell        spell
	queueChecked time.Time

	mu          sync.Mutex
	maintenance []bankapi.Window // the bank's own notice
}

// job is a transaction for a bank worker to call the bank about.
type job struct {
	txnID string
	// t is the row as the dispatcher read it (it may be stale by the
	// time the job runs: the ops that follow the call check under the
	// row's lock).
	t *BankTxn
	// admitted: the request that created it took the breaker's and the
	// bucket's permission already (probe says whether as a probe).
	admitted bool
	probe    bool
	// probeOnly: no transaction, a health probe of a half-open bank.
	probeOnly bool
}

// New returns the service with a channel for every bank of zhifu.Banks
// that has an adapter in Config.Banks or, without those, a secret.
func New(cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	l, _ := zhifu.LedgerOf(zhifu.CNY)
	s := &Service{cfg: cfg, ledgerID: l, banks: make(map[string]*bank), inflight: make(map[string]bool),
		acceptSlots: make(chan struct{}, cfg.AcceptInFlightMax), kick: make(chan struct{}, 1),
		calls: NewCallLog(cfg.Batcher, cfg.Clock, cfg.Logger)}
	s.SetPublicURL(cfg.PublicURL)
	for i, name := range zhifu.Banks {
		secret := cfg.Secrets[name]
		if secret == "" {
			continue
		}
		capacity := cfg.CapacityDefault
		if c, ok := cfg.Capacity[name]; ok && c > 0 {
			capacity = c
		}
		w := &Window{}
		client := bankapi.NewClient(cfg.BanksURL, name, secret, cfg.HTTP)
		client.Clock = cfg.Clock
		bgRate := capacity * cfg.BackgroundShare
		b := &bank{name: name, index: i, client: &recordedBank{Bank: client, name: name, log: s.calls, clock: cfg.Clock}, window: w, breaker: NewBreaker(cfg.Breaker, w),
			bucket: NewBucket(capacity, burstOf(capacity)), bg: NewBucket(bgRate, burstOf(bgRate)),
			urgent: make(chan job, jobsQueueMax), jobs: make(chan job, jobsQueueMax)}
		s.banks[name] = b
		s.order = append(s.order, b)
	}
	if len(s.order) == 0 {
		return nil, fmt.Errorf("channel: no bank has a secret")
	}
	return s, nil
}

// burstOf is a bucket's burst for a rate: one second of it.
func burstOf(rate float64) int { return max(1, int(math.Ceil(rate))) }

// SetPublicURL sets the platform's root URL for callbacks and returns.
func (s *Service) SetPublicURL(u string) {
	u = strings.TrimRight(u, "/")
	s.public.Store(&u)
}

func (s *Service) callbackURL(b *bank) string {
	return *s.public.Load() + "/v1/channels/" + b.name + "/callback"
}

func (s *Service) returnURL(b *bank) string {
	return *s.public.Load() + "/v1/channels/" + b.name + "/return"
}

// Banks returns the banks with a channel, in zhifu.Banks order.
func (s *Service) Banks() []string {
	out := make([]string, len(s.order))
	for i, b := range s.order {
		out[i] = b.name
	}
	return out
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now() }

// bankOf returns the bank's channel, or INVALID_REQUEST on param.
func (s *Service) bankOf(name, param string) (*bank, error) {
	if b := s.banks[name]; b != nil {
		return b, nil
	}
	return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: param,
		Message: fmt.Sprintf("unknown bank; one of %v", s.Banks())}
}

// newID returns prefix, the clock's UTC date and 20 random digits.
func (s *Service) newID(prefix string) string { return zhifu.NewID(prefix, s.now()) }

// markInflight claims id for this process's workers; false if taken.
func (s *Service) markInflight(id string) bool {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	if s.inflight[id] {
		return false
	}
	s.inflight[id] = true
	return true
}

func (s *Service) unmarkInflight(id string) {
	s.inflightMu.Lock()
	delete(s.inflight, id)
	s.inflightMu.Unlock()
}

func (s *Service) isInflight(id string) bool {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	return s.inflight[id]
}

func (s *Service) inflightCount() int {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	return len(s.inflight)
}

// Kick wakes the workers at once, as after the clock moved.
func (s *Service) Kick() {
	s.quiet.Store(false)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Quiet reports whether the workers have nothing to do now: no call in
// flight, no job waiting, and the last poll since the last Kick found no
// due work. Tests wait for it after moving the clock.
func (s *Service) Quiet() bool {
	if !s.quiet.Load() || s.inflightCount() > 0 {
		return false
	}
	for _, b := range s.order {
		if len(b.jobs) > 0 || len(b.urgent) > 0 || b.calls.Load() > 0 || b.sweep.Load() {
			return false
		}
	}
	return true
}

// accountsOf returns the user's wallet and frozen accounts.
func accountsOf(userID string) (wallet, frozen int64, err error) {
	num, ok := zhifu.ParseUserID(userID)
	if !ok {
		return 0, 0, fmt.Errorf("channel: %q is not a user id", userID)
	}
	return zhifu.WalletAccountID(num), zhifu.FrozenAccountID(num), nil
}

// settlementOf returns the bank's settlement account.
func settlementOf(bankName string) (int64, error) {
	i, ok := zhifu.BankIndex(bankName)
	if !ok {
		return 0, fmt.Errorf("channel: unknown bank %q", bankName)
	}
	return zhifu.BankSettlementAccountID(i), nil
}

// transfer builds one ledger transfer of the CNY ledger.
func (s *Service) transfer(id string, debit, credit int64, amount zhifu.Amount, code uint16) ledger.Transfer {
	return ledger.Transfer{ID: id, DebitAccountID: debit, CreditAccountID: credit, Amount: int64(amount),
		Ledger: s.ledgerID, Code: code}
}

// banksOrder returns the bank names sorted as zhifu.Banks.
func banksOrder(names []string) []string {
	slices.SortFunc(names, func(a, b string) int {
		i, _ := zhifu.BankIndex(a)
		j, _ := zhifu.BankIndex(b)
		return i - j
	})
	return names
}

// WorkState describes the workers' state in one line, for logs and for
// tests that wait for them: calls in flight, jobs waiting and queue
// lengths per bank.
func (s *Service) WorkState() string {
	out := fmt.Sprintf("quiet=%v inflight=%d", s.quiet.Load(), s.inflightCount())
	for _, b := range s.order {
		out += fmt.Sprintf(" %s[jobs=%d urgent=%d calls=%d sweep=%v queued=%d]", b.name, len(b.jobs), len(b.urgent),
			b.calls.Load(), b.sweep.Load(), b.queued.Load())
	}
	return out
}

// CloseIdleConnections closes the connections to the banks not in use,
// for a clean shutdown: a bank's server waits on connections that never
// carried a request.
func (s *Service) CloseIdleConnections() { s.cfg.HTTP.CloseIdleConnections() }
