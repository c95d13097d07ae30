package banksim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"zhifu"
)

// Defaults and limits of the configuration.
const (
	// StartingBalanceDefault is a newly verified card's balance: 1,000,000.00
	// yuan, so that tests rarely run a card dry unless they mean to.
	StartingBalanceDefault int64 = 1_000_000_00
	// SettlementFloatDefault is the platform's money at each bank when the
	// simulator first opens its file: 100,000,000.00 yuan.
	SettlementFloatDefault int64 = 100_000_000_00
	// fundingMax bounds the float and the starting balance so that no sum of
	// a bank's balances can overflow int64.
	fundingMax int64 = 1 << 53
	// callbackTimeoutDefault bounds one callback attempt when Config.Client
	// is nil.
	callbackTimeoutDefault = 5 * time.Second
	// banksMax bounds the number of simulated banks.
	banksMax = 64
)

// Config configures a simulator. Only DBPath is required.
type Config struct {
	// DBPath is the SQLite file holding the banks' books; it is created if
	// missing. An in-memory database is refused: the books must outlive a
	// restart, as a bank's do.
	DBPath string
	// Banks are the simulated banks; nil means zhifu.Banks.
	Banks []string
	// Secrets maps a bank to the HMAC key it shares with the platform, for
	// requests and callbacks. A bank missing here gets DefaultSecret(Seed,
	// bank), which is predictable and meant for tests and local runs only.
	Secrets map[string]string
	// Seed seeds the randomness when Rand is nil, and the default secrets.
	Seed uint64
	// Rand is the source of every random decision (latency, failures,
	// callback faults); nil means a PCG seeded with Seed. The simulator
	// serialises its own use of it; nothing else may use it meanwhile.
	Rand *rand.Rand
	// Clock tells the time for timestamps, signatures, maintenance windows,
	// statements and capacity buckets; nil means the system clock.
	Clock zhifu.Clock
	// Logger receives the simulator's events; nil discards them.
	Logger *slog.Logger
	// Client sends callbacks; nil means a client with a 5 s timeout.
	Client *http.Client
	// StartingBalance is a newly verified card's balance in fen; 0 means
	// StartingBalanceDefault.
	StartingBalance int64
	// SettlementFloat is the platform's settlement balance in fen at each
	// bank when the bank's books are first created (later opens keep the
	// books as they are); 0 means SettlementFloatDefault.
	SettlementFloat int64
	// ControlToken guards /control/…; empty disables the control API.
	ControlToken string
	// Scenarios say how each bank behaves at the start; the zero value is a
	// bank that never fails.
	Scenarios Scenarios
}

// DefaultSecret is the secret of bank when Config.Secrets has none: hex
// HMAC-SHA256("zhifu-banksim", "<seed>/<bank>"). Anyone who knows the seed
// knows it, so it is for tests and local runs only.
func DefaultSecret(seed uint64, bank string) string {
	m := hmac.New(sha256.New, []byte("zhifu-banksim"))
	m.Write([]byte(strconv.FormatUint(seed, 10) + "/" + bank))
	return hex.EncodeToString(m.Sum(nil))
}

// withDefaults fills the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.DBPath == "" || strings.Contains(c.DBPath, ":memory:") || strings.Contains(c.DBPath, "mode=memory") {
		return c, errors.New("banksim: DBPath must name a file")
	}
	if c.Banks == nil {
		c.Banks = zhifu.Banks
	}
	c.Banks = slices.Clone(c.Banks)
	if len(c.Banks) == 0 || len(c.Banks) > banksMax {
		return c, fmt.Errorf("banksim: between 1 and %d banks", banksMax)
	}
	secrets := make(map[string]string, len(c.Banks))
	for _, b := range c.Banks {
		if !validBankName(b) || secrets[b] != "" {
			return c, fmt.Errorf("banksim: bad or repeated bank name %q", b)
		}
		secrets[b] = c.Secrets[b]
		if secrets[b] == "" {
			secrets[b] = DefaultSecret(c.Seed, b)
		}
	}
	c.Secrets = secrets
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	}
	if c.Clock == nil {
		c.Clock = zhifu.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: callbackTimeoutDefault}
	}
	if c.StartingBalance == 0 {
		c.StartingBalance = StartingBalanceDefault
	}
	if c.SettlementFloat == 0 {
		c.SettlementFloat = SettlementFloatDefault
	}
	if c.StartingBalance < 0 || c.StartingBalance > fundingMax || c.SettlementFloat < 0 || c.SettlementFloat > fundingMax {
		return c, fmt.Errorf("banksim: starting balance and float must be between 0 and %d fen", fundingMax)
	}
	if err := c.Scenarios.validate(c.Banks); err != nil {
		return c, err
	}
	return c, nil
}

// validBankName keeps bank names to what fits in a URL path and a bank
// transaction id unescaped.
func validBankName(b string) bool {
	if b == "" || len(b) > 16 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
