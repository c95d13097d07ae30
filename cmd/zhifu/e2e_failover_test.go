package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"zhifu/banksim"
)

// TestFailover runs PostgreSQL as two Patroni members (synchronous_mode
// on, etcd as the store of the cluster's state) and two nodes that reach
// it through a multi-host connection string with
// target_session_attrs=read-write, behind HAProxy, under the mixed load of
// TestNodes. It kills the primary's Patroni and postmaster with SIGKILL.
// The standby is promoted, the nodes reconnect to it by themselves, and
// the requests cut off meanwhile succeed when sent again with their keys.
// It measures the RTO (from the kill until a new payment succeeds) and the
// RPO (acknowledged payments missing afterwards, which must be none), and
// checks everything TestNodes checks at the end.
//
// It needs the Debian packages patroni and etcd-server, and haproxy, and
// PostgreSQL 15's binaries in /usr/lib/postgresql/15/bin. PostgreSQL
// refuses to run as root, so as root the members run as the user postgres.
func TestFailover(t *testing.T) {
	needTools(t, map[string]string{"patroni": "patroni", "etcd": "etcd-server", "haproxy": "haproxy"})
	pgBin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Fatalf("PostgreSQL 15's binaries are not in %s (Debian package postgresql-15): %v", pgBin, err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	pc := newPatroniCluster(t, pgBin)
	db := pc.createDatabase(t, "zhifu")
	t.Logf("database %s", db)

	rig := newNodesRig(t, db, 2, "200", "--drain-wait", "700ms", "--node-stale-after", "3s")
	defer rig.logErrors()
	cc := banksim.NewControlClient(rig.banksURL, "nodes-control", nil)
	rc := newReceiver(t)
	l := newNodesLoad(t, rig, rc, 8)
	defer l.rt.cl.CloseIdleConnections()
	var wg sync.WaitGroup
	defer func() {
		l.rt.abort.Store(true)
		wg.Wait()
	}()
	for c, u := range l.buyers {
		r := rand.New(rand.NewPCG(seed, uint64(c)+1))
		wg.Go(func() { l.client(u, r) })
	}
	l.waitAcked(t, 100)
	t.Logf("before the failover: %v", l.rt.takeCounts())

	// The probe pays a new trade every 50 ms, each tried once, to see
	// when payments succeed again.
	probe := newRetrier(rig.lbURL)
	probe.budget = 0
	recovered := make(chan time.Time, 1)
	var killed time.Time
	var probeWG sync.WaitGroup
	stopProbe := make(chan struct{})
	probeWG.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopProbe:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if killed.IsZero() {
				continue
			}
			sent := time.Now()
			if l.probePay(probe, fmt.Sprintf("probe-%d", i)) {
				select {
				case recovered <- sent:
				default:
				}
				return
			}
		}
	})
	defer func() {
		close(stopProbe)
		probeWG.Wait()
	}()

	old := pc.primary(t)
	ackedAtKill := l.acked.Load()
	killed = pc.kill(t, old)
	t.Logf("killed the primary %s (Patroni and postmaster) after %d operations", old.name, ackedAtKill)
	var rto time.Duration
	select {
	case at := <-recovered:
		rto = at.Sub(killed)
	case <-time.After(2 * time.Minute):
		for _, m := range pc.members {
			t.Logf("%s /primary %d /replica %d:\n%s", m.name, apiStatus(m, "/primary"), apiStatus(m, "/replica"), lastLines(m.log.String(), 20))
		}
		t.Fatalf("no payment succeeded in 2 minutes after the primary died")
	}
	now := pc.primary(t)
	if now == old {
		t.Fatalf("%s is still the primary", old.name)
	}
	t.Logf("RTO %v: %s promoted; a payment sent then succeeded; the clients met meanwhile: %v",
		rto.Round(10*time.Millisecond), now.name, l.rt.takeCounts())
	l.waitAcked(t, 100)
	l.stop.Store(true)
	wg.Wait()
	for _, err := range l.errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	// RPO: every acknowledged trade is there (verify checks the rest).
	have := map[string]bool{}
	for _, r := range pgRows(t, db, `SELECT trade_no, status, '' FROM trades`) {
		have[r[0]] = true
	}
	lost := 0
	for no := range l.trades {
		if !have[no] {
			lost++
		}
	}
	t.Logf("RPO: %d of %d acknowledged trades missing after the failover", lost, len(l.trades))
	if lost > 0 {
		t.Errorf("%d acknowledged trades lost in the failover", lost)
	}
	l.verify(t, cc)
	rig.stopAll()
}

// probePay creates and pays one trade, each request tried once; it
// reports whether both succeeded.
func (l *nodesLoad) probePay(rt *retrier, ref string) bool {
	u := l.buyers[0]
	s, out, err := rt.send("POST", "/v1/trades", merchantAuth(l.mk, "POST", "/v1/trades"), "create-"+ref,
		map[string]any{"out_trade_no": ref, "subject": "probe", "total_amount": yuan(tradeFen), "mode": "instant"})
	no, _ := out["trade_no"].(string)
	if err != nil || s != 201 || no == "" {
		return false
	}
	l.mu.Lock()
	l.trades[no] = "TRADE_CLOSED" // unless paid below: it closes after 30 minutes, past the test
	l.mu.Unlock()
	s, out, err = rt.send("POST", "/v1/trades/"+no+"/pay", bearerAuth(u.token), "pay-"+ref, map[string]any{"method": "balance"})
	if err != nil || s != 200 || out["status"] != "TRADE_SUCCESS" {
		// It may have been paid all the same: the end state decides.
		l.mu.Lock()
		l.trades[no] = "?"
		l.mu.Unlock()
		return false
	}
	l.mu.Lock()
	l.trades[no] = "TRADE_SUCCESS"
	l.spent[u.id] += tradeFen
	l.mu.Unlock()
	return true
}

// patroniCluster is etcd and two Patroni members.
type patroniCluster struct {
	t       *testing.T
	dir     string
	pgBin   string
	etcdURL string
	members []*pgMember
	asUser  *user.User // the members' user when the test runs as root
}

type pgMember struct {
	name       string
	pgPort     int
	apiPort    int
	dir        string
	cmd        *exec.Cmd
	exited     chan error
	log        *syncBuffer
	killedOnce bool
}

func newPatroniCluster(t *testing.T, pgBin string) *patroniCluster {
	t.Helper()
	dir := t.TempDir()
	pc := &patroniCluster{t: t, dir: dir, pgBin: pgBin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the members run as the user postgres, which does not exist: %v", err)
		}
		pc.asUser = u
		// The members' user must reach their folders.
		for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
	}
	pc.startEtcd()
	for i := range 2 {
		m := &pgMember{name: fmt.Sprintf("pg%d", i+1), pgPort: freePort(t), apiPort: freePort(t),
			dir: filepath.Join(dir, fmt.Sprintf("pg%d", i+1))}
		pc.members = append(pc.members, m)
		pc.startMember(m)
		if i == 0 {
			pc.waitAPI(m, "/primary", 200)
		}
	}
	pc.waitAPI(pc.members[1], "/sync", 200)
	return pc
}

func (pc *patroniCluster) startEtcd() {
	t := pc.t
	client, peer := freePort(t), freePort(t)
	data := filepath.Join(pc.dir, "etcd")
	cmd := exec.Command("etcd", "--name", "e1", "--data-dir", data,
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("e1=http://127.0.0.1:%d", peer), "--enable-v2=true")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	pc.etcdURL = fmt.Sprintf("127.0.0.1:%d", client)
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get("http://" + pc.etcdURL + "/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not healthy: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// patroniConfig is one member's configuration: a leader key that lives
// 10 s (how long a dead primary holds its place), checked every second.
const patroniConfig = `scope: zhifu
name: %[1]s
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:%[2]d
  connect_address: 127.0.0.1:%[2]d
etcd3:
  host: %[3]s
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 100
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        synchronous_commit: "on"
        fsync: "on"
  initdb:
    - encoding: UTF8
    - auth-local: trust
    - auth-host: trust
  pg_hba:
    - local all all trust
    - host replication all 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:%[4]d
  connect_address: 127.0.0.1:%[4]d
  data_dir: %[5]s/data
  bin_dir: %[6]s
  pgpass: %[5]s/pgpass
  authentication:
    replication:
      username: postgres
    superuser:
      username: postgres
  parameters:
    unix_socket_directories: '%[5]s'
`

func (pc *patroniCluster) startMember(m *pgMember) {
	t := pc.t
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(m.dir, "patroni.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, patroniConfig, m.name, m.apiPort, pc.etcdURL, m.pgPort, m.dir, pc.pgBin), 0o600); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if u := pc.asUser; u != nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{m.dir, cfg} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		// setpriv runs Patroni itself (no forked parent), so that the
		// test's SIGKILL reaches it.
		cmd = exec.Command("setpriv", "--reuid", u.Uid, "--regid", u.Gid, "--init-groups", "--", "patroni", cfg)
		cmd.Env = append(os.Environ(), "HOME="+m.dir)
	} else {
		cmd = exec.Command("patroni", cfg)
	}
	m.log = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = m.log, m.log
	cmd.Dir = m.dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.cmd, m.exited = cmd, make(chan error, 1)
	go func() { m.exited <- cmd.Wait() }()
	t.Cleanup(func() { pc.stopMember(m) })
}

// stopMember stops a member and its PostgreSQL for good.
func (pc *patroniCluster) stopMember(m *pgMember) {
	if !m.killedOnce {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(30 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
	if pid := m.postmaster(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// postmaster returns the member's postmaster pid, or 0.
func (m *pgMember) postmaster() int {
	b, err := os.ReadFile(filepath.Join(m.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// kill SIGKILLs the member's Patroni and postmaster, and returns when.
func (pc *patroniCluster) kill(t *testing.T, m *pgMember) time.Time {
	t.Helper()
	pid := m.postmaster()
	if pid == 0 {
		t.Fatalf("%s has no postmaster.pid", m.name)
	}
	at := time.Now()
	m.killedOnce = true
	m.cmd.Process.Signal(syscall.SIGKILL)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the postmaster of %s: %v", m.name, err)
	}
	<-m.exited
	return at
}

// waitAPI waits until the member's REST API answers path with status.
func (pc *patroniCluster) waitAPI(m *pgMember, path string, status int) {
	t := pc.t
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if apiStatus(m, path) == status {
			return
		}
		select {
		case err := <-m.exited:
			t.Fatalf("patroni %s exited: %v\n%s", m.name, err, m.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("patroni %s: %s does not answer %d\n%s", m.name, path, status, m.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func apiStatus(m *pgMember, path string) int {
	cl := &http.Client{Timeout: time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d%s", m.apiPort, path))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// primary returns the member whose REST API says it is the primary.
func (pc *patroniCluster) primary(t *testing.T) *pgMember {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, m := range pc.members {
			if !m.killedOnce && apiStatus(m, "/primary") == 200 {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no member is the primary")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createDatabase makes a database on the primary and returns its
// multi-host URL.
func (pc *patroniCluster) createDatabase(t *testing.T, name string) string {
	t.Helper()
	p := pc.primary(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.pgPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, m := range pc.members {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", m.pgPort))
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		strings.Join(hosts, ","), name)
}
