package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"zhifu"
	"zhifu/admission"
	zhttp "zhifu/http"
	"zhifu/ledger"
	"zhifu/postgres"
	"zhifu/sqlite"
)

const (
	addrDefault    = "127.0.0.1:8080"
	dataDirDefault = "./data"
	// dbFileName is the SQLite database inside the data folder.
	dbFileName = "zhifu.db"
	// adminTokenFile keeps the generated admin token inside the data folder.
	adminTokenFile = "admin-token"
	// adminTokenBytes is the random part of a generated admin token.
	adminTokenBytes = 32
	// adminTokenFileBytesMax bounds what we read back from the token file.
	adminTokenFileBytesMax = 4096
	// banksDBFileName is the in-process banks' books inside the data folder.
	banksDBFileName = "banksim.db"
	// bankSecretsFile keeps the in-process banks' generated secrets.
	bankSecretsFile = "bank-secrets"
	// bankSecretBytes is the random part of a generated bank secret.
	bankSecretBytes = 32
	// dataLockFile is the lock file inside the data folder.
	dataLockFile = "LOCK"
	// banksimAddrDefault is where "zhifu banksim" listens by default.
	banksimAddrDefault = "127.0.0.1:9090"
)

// serveFlag is one flag of "zhifu serve" and the environment variable that
// supplies it when the command line does not.
type serveFlag struct {
	name, env, usage string
	dst              *string
	def              string
}

func (m *Main) serveFlags() []serveFlag {
	return append([]serveFlag{
		{"addr", "ZHIFU_ADDR", "HTTP listen address", &m.Addr, addrDefault},
		{"db", "ZHIFU_DB", "database: sqlite:///abs/path.db, sqlite://relative/path.db or postgres://… (default sqlite://<data>/" + dbFileName + ")", &m.DB, ""},
		{"admin-token", "ZHIFU_ADMIN_TOKEN", "operator bearer token (default: read or generate <data>/" + adminTokenFile + ")", &m.adminToken, ""},
		{"data", "ZHIFU_DATA", "data folder", &m.DataDir, dataDirDefault},
		{"banks-url", "ZHIFU_BANKS_URL", "the banks' gateway, such as a \"zhifu banksim\" (default: simulated banks in-process, books in <data>/" + banksDBFileName + ")", &m.BanksURL, ""},
		{"banks-secrets", "ZHIFU_BANKS_SECRETS", "the banks' shared secrets, ICBC=…,CMB=… (default: read or generate <data>/" + bankSecretsFile + "; required with --banks-url)", &m.banksSecrets, ""},
		{"banks-scenario", "ZHIFU_BANKS_SCENARIO", "scenario file (JSON, see package banksim) for the in-process banks", &m.BanksScenario, ""},
		{"bank-capacity", "ZHIFU_BANK_CAPACITY", "calls per second the platform allows itself at each bank: 500, or ICBC=500,CMB=300", &m.BankCapacity, ""},
		{"public-url", "ZHIFU_PUBLIC_URL", "the platform's root URL as the banks reach it, for their callbacks (default: the listen URL)", &m.PublicURL, ""},
		{"drain-wait", "ZHIFU_DRAIN_WAIT", "on SIGTERM, how long to go on serving while /readyz answers 503, for a load balancer to move traffic away (such as 5s)", &m.DrainWait, ""},
		{"node-stale-after", "ZHIFU_NODE_STALE_AFTER", "how long another node's heartbeat may stay unchanged before its claims are freed (default 5s)", &m.NodeStaleAfter, ""},
		{"notify-allow-cidrs", "ZHIFU_NOTIFY_ALLOW_CIDRS", "networks merchant notifications may go to although private or loopback, such as 10.20.0.0/16,127.0.0.1/32, or none (default: loopback with SQLite, none with PostgreSQL)", &m.NotifyAllowCIDRs, ""},
		{"campaigns", "ZHIFU_CAMPAIGNS", campaignsFlagHelp, &m.CampaignsSpec, ""},
	}, m.edgeFlags()...)
}

// notifyAllowLoopback is what --notify-allow-cidrs defaults to on SQLite,
// the embedded set-up, so that a developer receives notifications on their
// own machine.
var notifyAllowLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// notifyAllowCIDRsMax bounds the networks --notify-allow-cidrs may list.
const notifyAllowCIDRsMax = 256

// parseNotifyAllow reads --notify-allow-cidrs: CIDRs or single addresses
// separated by commas, or "none"; empty takes the default, loopback when
// embedded (SQLite) and nothing otherwise.
func parseNotifyAllow(spec string, embedded bool) ([]netip.Prefix, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "" && embedded:
		return notifyAllowLoopback, nil
	case spec == "" || strings.EqualFold(spec, "none"):
		return nil, nil
	}
	var out []netip.Prefix
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("--notify-allow-cidrs: %q is not a network like 10.0.0.0/8 or an address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if out = append(out, p.Masked()); len(out) > notifyAllowCIDRsMax {
			return nil, fmt.Errorf("--notify-allow-cidrs: more than %d networks", notifyAllowCIDRsMax)
		}
	}
	return out, nil
}

// simFlags configure "zhifu banksim".
type simFlags struct {
	addr, db, scenario, controlToken, seed, secrets string
}

func (m *Main) banksimFlags() []serveFlag {
	return []serveFlag{
		{"addr", "ZHIFU_BANKSIM_ADDR", "listen address", &m.sim.addr, banksimAddrDefault},
		{"db", "ZHIFU_BANKSIM_DB", "SQLite file of the banks' books", &m.sim.db, filepath.Join(dataDirDefault, banksDBFileName)},
		{"scenario", "ZHIFU_BANKSIM_SCENARIO", "scenario file (JSON): how each bank behaves", &m.sim.scenario, ""},
		{"control-token", "ZHIFU_BANKSIM_CONTROL_TOKEN", "bearer token of the control API /control/… (default: the control API is off)", &m.sim.controlToken, ""},
		{"seed", "ZHIFU_BANKSIM_SEED", "seed of the simulated failures (and of the default secrets)", &m.sim.seed, "1"},
		{"secrets", "ZHIFU_BANKS_SECRETS", "the banks' shared secrets, ICBC=…,CMB=… (default: predictable secrets from the seed, for tests only)", &m.sim.secrets, ""},
	}
}

// parseBanksimFlags reads banksim's flags as parseServeFlags does serve's.
func (m *Main) parseBanksimFlags(args []string) error {
	return m.parseFlagSet("zhifu banksim", m.banksimFlags(), args)
}

// parseServeFlags reads serve's flags. Environment variables fill in what
// the command line leaves out. They are applied after parsing rather than as
// flag defaults, so that -h never prints a secret taken from the environment.
func (m *Main) parseServeFlags(args []string) error {
	if err := m.parseFlagSet("zhifu serve", m.serveFlags(), args); err != nil {
		return err
	}
	if m.DB == "" {
		m.DB = "sqlite://" + filepath.Join(m.DataDir, dbFileName)
	}
	return m.parseEdgeFlags()
}

// parseFlagSet parses one subcommand's flags, the environment filling in
// what the command line leaves out.
func (m *Main) parseFlagSet(name string, flags []serveFlag, args []string) error {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	for _, f := range flags {
		fset.StringVar(f.dst, f.name, f.def, f.usage+" (env "+f.env+")")
	}
	var help strings.Builder
	help.WriteString("Usage: " + name + " [flags]\n\nFlags:\n")
	fset.SetOutput(&help)
	fset.PrintDefaults()
	fset.SetOutput(io.Discard)

	err := fset.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(m.Stdout, help.String())
		return err
	case err != nil:
		return &UsageError{Msg: err.Error(), Usage: help.String()}
	case fset.NArg() > 0:
		return &UsageError{Msg: fmt.Sprintf("unexpected argument %q", fset.Arg(0)), Usage: help.String()}
	}
	set := make(map[string]bool)
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range flags {
		if v := m.Getenv(f.env); !set[f.name] && v != "" {
			*f.dst = v
		}
	}
	return nil
}

// parseBankSecrets reads "ICBC=…,CMB=…". Its errors never quote a secret.
func parseBankSecrets(s string) (map[string]string, error) {
	out := make(map[string]string)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		bank, secret, ok := strings.Cut(part, "=")
		bank = strings.TrimSpace(bank)
		if _, known := zhifu.BankIndex(bank); !ok || !known || strings.TrimSpace(secret) == "" {
			return nil, fmt.Errorf("bank secrets: want BANK=secret pairs for banks of %v, separated by commas", zhifu.Banks)
		}
		out[bank] = strings.TrimSpace(secret)
	}
	if len(out) == 0 {
		return nil, errors.New("bank secrets: none given")
	}
	return out, nil
}

// parseCapacity reads --bank-capacity: "500" sets every bank's, and
// "ICBC=500" one bank's.
func parseCapacity(s string) (def float64, per map[string]float64, err error) {
	per = make(map[string]float64)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		bank, v, named := strings.Cut(part, "=")
		if !named {
			v = bank
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(rate > 0 && rate <= 1e6) {
			return 0, nil, fmt.Errorf("--bank-capacity %q: want calls per second between 0 and 1000000", part)
		}
		if !named {
			def = rate
			continue
		}
		bank = strings.TrimSpace(bank)
		if _, ok := zhifu.BankIndex(bank); !ok {
			return 0, nil, fmt.Errorf("--bank-capacity: unknown bank %q", bank)
		}
		per[bank] = rate
	}
	return def, per, nil
}

var errBanksSecretsRequired = errors.New("--banks-secrets (or ZHIFU_BANKS_SECRETS) is required with --banks-url")

// loadBankSecrets returns the banks' secrets: from --banks-secrets, or for
// the in-process banks from the data folder; on a fresh start it makes them,
// to be saved by saveSecrets once the server listens.
func (m *Main) loadBankSecrets() (map[string]string, error) {
	if m.banksSecrets != "" {
		return parseBankSecrets(m.banksSecrets)
	}
	if m.BanksURL != "" {
		return nil, errBanksSecretsRequired
	}
	path := filepath.Join(m.DataDir, bankSecretsFile)
	b, err := os.ReadFile(path)
	if err == nil {
		secrets, err := parseBankSecrets(strings.ReplaceAll(string(b), "\n", ","))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return secrets, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read bank secrets: %w", err)
	}
	var lines strings.Builder
	for _, bank := range zhifu.Banks {
		raw := make([]byte, bankSecretBytes)
		if _, err := io.ReadFull(m.Rand, raw); err != nil {
			return nil, fmt.Errorf("generate bank secrets: %w", err)
		}
		lines.WriteString(bank + "=" + hex.EncodeToString(raw) + "\n")
	}
	m.unsaved = append(m.unsaved, unsavedSecret{what: "bank secrets", path: path, content: lines.String()})
	return parseBankSecrets(strings.ReplaceAll(lines.String(), "\n", ","))
}

// openStore opens the ledger store a --db URL names.
func openStore(ctx context.Context, db string) (ledger.Store, error) {
	switch {
	case strings.HasPrefix(db, "sqlite://"):
		path := strings.TrimPrefix(db, "sqlite://")
		if path == "" || strings.ContainsAny(path, "?#") {
			return nil, fmt.Errorf("--db %q: want sqlite:///abs/path.db or sqlite://relative/path.db", db)
		}
		return sqlite.Open(ctx, path)
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		st, err := postgres.Open(ctx, db)
		if err != nil {
			// The driver's message may quote the URL, password included.
			return nil, fmt.Errorf("open %s: %s", redactDB(db), redactString(err.Error(), db))
		}
		return st, nil
	}
	scheme, _, _ := strings.Cut(db, "://")
	return nil, fmt.Errorf("--db: unsupported scheme %q: want sqlite:// or postgres://", scheme)
}

// redactDB is a database URL safe to log: a PostgreSQL password is masked.
func redactDB(db string) string {
	if strings.HasPrefix(db, "sqlite://") {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "(unparsable database URL)"
	}
	return u.Redacted()
}

// redactString removes the password of database URL db from s.
func redactString(s, db string) string {
	u, err := url.Parse(db)
	if err != nil || u.User == nil {
		return s
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}

// loadAdminToken reads the token saved in the data folder, or on a fresh
// start makes one, to be saved and printed by saveSecrets once the server
// listens.
func (m *Main) loadAdminToken() error {
	path := filepath.Join(m.DataDir, adminTokenFile)
	tok, err := readAdminToken(path)
	if err == nil {
		m.adminToken = tok
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	raw := make([]byte, adminTokenBytes)
	if _, err := io.ReadFull(m.Rand, raw); err != nil {
		return fmt.Errorf("generate admin token: %w", err)
	}
	m.adminToken, m.tokenGenerated = hex.EncodeToString(raw), true
	m.unsaved = append(m.unsaved, unsavedSecret{what: "admin token", path: path, content: m.adminToken + "\n"})
	return nil
}

// unsavedSecret is a secret made on this start and not yet in its file.
type unsavedSecret struct {
	what, path, content string
}

// saveSecrets writes the secrets made on this start, each readable by this
// user only, and prints a new admin token once. The data folder's lock keeps
// other servers from writing the files meanwhile; a file that appeared all
// the same is not overwritten.
func (m *Main) saveSecrets() error {
	for _, s := range m.unsaved {
		if err := writeSecretFile(s.path, s.content); err != nil {
			return fmt.Errorf("save %s: %w", s.what, err)
		}
	}
	m.unsaved = nil
	if m.tokenGenerated {
		fmt.Fprintf(m.Stdout, "admin token: %s (saved in %s)\n", m.adminToken, filepath.Join(m.DataDir, adminTokenFile))
		m.tokenGenerated = false
	}
	return nil
}

// writeSecretFile creates path (mode 0600, failing if it exists) with
// content, durably: the file and its name in the folder.
func writeSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(content)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(dir.Sync(), dir.Close())
}

func readAdminToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, adminTokenFileBytesMax))
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin token file %s is empty: delete it to generate a new token", path)
	}
	return tok, nil
}

// edgeFlags are admission control's flags as given, and what they parse to.
type edgeFlags struct {
	admission, rateMerchant, rateUser, rateAddress, conns string

	config   zhttp.AdmissionConfig
	connsMax int
}

// edgeFlagsMax bounds a per-caller rate and the connection limit.
const edgeFlagsMax = 1_000_000

func (m *Main) edgeFlags() []serveFlag {
	e := &m.edge
	return []serveFlag{
		{"admission", "ZHIFU_ADMISSION", "admission control: on (an adaptive concurrency limit with priorities) or off (every request served as it comes)", &e.admission, "on"},
		{"rate-merchant", "ZHIFU_RATE_MERCHANT", "requests a second one merchant may make, in bursts of twice as many; 0 is no limit", &e.rateMerchant, strconv.Itoa(zhttp.MerchantRateDefault)},
		{"rate-user", "ZHIFU_RATE_USER", "requests a second one user may make, in bursts of twice as many; 0 is no limit", &e.rateUser, strconv.Itoa(zhttp.UserRateDefault)},
		{"rate-address", "ZHIFU_RATE_ADDRESS", "requests a second one client address may make to the routes without a login or signature, in bursts of twice as many; 0 is no limit", &e.rateAddress, strconv.Itoa(zhttp.AddressRateDefault)},
		{"conns-max", "ZHIFU_CONNS_MAX", "connections open at once; more wait until one closes", &e.conns, strconv.Itoa(zhttp.ConnsMaxDefault)},
	}
}

// parseEdgeFlags checks admission control's flags.
func (m *Main) parseEdgeFlags() error {
	e := &m.edge
	switch e.admission {
	case "on":
	case "off":
		e.config.Off = true
	default:
		return fmt.Errorf("--admission %q: want on or off", e.admission)
	}
	for _, f := range []struct {
		name, v string
		dst     *admission.Rate
	}{{"rate-merchant", e.rateMerchant, &e.config.Merchant}, {"rate-user", e.rateUser, &e.config.User},
		{"rate-address", e.rateAddress, &e.config.Address}} {
		n, err := strconv.ParseFloat(f.v, 64)
		if err != nil || !(n >= 0 && n <= edgeFlagsMax) {
			return fmt.Errorf("--%s %q: want requests a second from 0 to %d", f.name, f.v, edgeFlagsMax)
		}
		f.dst.PerSecond = n
		if n == 0 {
			f.dst.PerSecond = -1 // no limit
		}
	}
	n, err := strconv.Atoi(e.conns)
	if err != nil || n < 1 || n > edgeFlagsMax {
		return fmt.Errorf("--conns-max %q: want a number of connections from 1 to %d", e.conns, edgeFlagsMax)
	}
	e.connsMax = n
	return nil
}
