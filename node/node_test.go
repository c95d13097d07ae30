package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/internal/testdb"
	"zhifu/ledger"
)

// Fast beats for tests, but a stale time a loaded 2-core machine does not
// reach by a scheduling pause alone; the waits are long.
const (
	testBeat  = 50 * time.Millisecond
	testStale = time.Second
	testWait  = 20 * time.Second
)

// jobs counts, per lease, the runs going on at once, and fails the test
// when two overlap.
type jobs struct {
	t       *testing.T
	mu      sync.Mutex
	running map[string]string // lease → node running it
	starts  atomic.Int64
}

func (j *jobs) list(node string, names ...string) []Job {
	var out []Job
	for _, name := range names {
		out = append(out, Job{Name: name, Run: func(ctx context.Context) {
			j.mu.Lock()
			if other, ok := j.running[name]; ok {
				j.t.Errorf("%s runs on %s and %s at once", name, other, node)
			}
			j.running[name] = node
			j.mu.Unlock()
			j.starts.Add(1)
			<-ctx.Done()
			j.mu.Lock()
			delete(j.running, name)
			j.mu.Unlock()
		}})
	}
	return out
}

func (j *jobs) snapshot() map[string]string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps(j.running)
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var names = []string{"a", "b", "c", "d", "e", "f"}

func start(t *testing.T, st ledger.Store, j *jobs, dir string) *Node {
	t.Helper()
	n, err := Start(context.Background(), Config{Store: st, DataDir: dir, Jobs: j.list(dir, names...),
		BeatInterval: testBeat, StaleAfter: testStale,
		Release: []Release{func(ctx context.Context, tx ledger.Tx, inc string, now time.Time) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitShare waits until every job runs, each node (named by its data
// folder) running between lo and hi of them.
func waitShare(t *testing.T, j *jobs, nodes []string, lo, hi int) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		run := j.snapshot()
		per := map[string]int{}
		for _, holder := range run {
			per[holder]++
		}
		ok := len(run) == len(names)
		for _, n := range nodes {
			if per[n] < lo || per[n] > hi {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs running %v, want all %d spread %d–%d over %d nodes", run, len(names), lo, hi, len(nodes))
		}
		time.Sleep(testBeat)
	}
}

func TestLeases(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		st := open()
		j := &jobs{t: t, running: map[string]string{}}
		n1 := start(t, st, j, "/data/1")
		waitShare(t, j, []string{"/data/1"}, 6, 6)
		n2 := start(t, open(), j, "/data/2")
		n3 := start(t, open(), j, "/data/3")
		// Joining nodes get their share from the first.
		waitShare(t, j, []string{"/data/1", "/data/2", "/data/3"}, 2, 2)

		// A drained node hands everything back, and the others take it.
		if err := n2.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if h := n2.Holds(); len(h) != 0 {
			t.Fatalf("drained node still runs %v", h)
		}
		waitShare(t, j, []string{"/data/1", "/data/3"}, 3, 3)
		if err := n2.Close(); err != nil {
			t.Fatal(err)
		}
		if s := state(t, st, n2.ID()); s != Stopped {
			t.Fatalf("closed node is %s", s)
		}

		// A node that dies (its heartbeat stops, its row still says
		// running) is found dead, and its leases move.
		n3.crash()
		waitShare(t, j, []string{"/data/1"}, 6, 6)
		if s := state(t, st, n3.ID()); s != Dead {
			t.Fatalf("crashed node is %s", s)
		}
		n1.Close()
	})
}

// A process restarting on a dead one's data folder frees its leases at
// once, without waiting for the heartbeat to go stale.
func TestRestartOnFolder(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		j := &jobs{t: t, running: map[string]string{}}
		slow := func(dir string) *Node {
			n, err := Start(context.Background(), Config{Store: open(), DataDir: dir, Jobs: j.list(dir, names...),
				BeatInterval: testBeat, StaleAfter: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		n1 := slow("/data/1")
		waitShare(t, j, []string{"/data/1"}, 6, 6)
		n1.crash()
		n2 := slow("/data/1")
		waitShare(t, j, []string{"/data/1"}, 6, 6)
		if s := state(t, open(), n1.ID()); s != Dead {
			t.Fatalf("the folder's earlier process is %s", s)
		}
		n2.Close()
	})
}

// A node that is found dead while alive (paused, cut off) stops its jobs
// and joins again.
func TestBuriedAlive(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		st := open()
		j := &jobs{t: t, running: map[string]string{}}
		n1 := start(t, st, j, "/data/1")
		waitShare(t, j, []string{"/data/1"}, 6, 6)
		err := st.Update(context.Background(), func(tx ledger.Tx) error {
			_, err := tx.Exec(context.Background(), `UPDATE nodes SET state = 'dead' WHERE incarnation = ?`, n1.ID())
			if err == nil {
				_, err = tx.Exec(context.Background(), `UPDATE leases SET holder = ''`)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(testWait); state(t, st, n1.ID()) != Running; time.Sleep(testBeat) {
			if time.Now().After(deadline) {
				t.Fatalf("node is %s, not running again", state(t, st, n1.ID()))
			}
		}
		waitShare(t, j, []string{"/data/1"}, 6, 6)
		if j.starts.Load() < 12 {
			t.Fatalf("%d job starts: the jobs did not stop and start again", j.starts.Load())
		}
		n1.Close()
	})
}

func state(t *testing.T, st ledger.Store, id string) string {
	t.Helper()
	var s string
	if err := st.Reader().QueryRow(context.Background(), `SELECT state FROM nodes WHERE incarnation = ?`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// crash stops the node as a SIGKILL would: no more beats, jobs gone,
// nothing written.
func (n *Node) crash() {
	n.mu.Lock()
	n.closed = true
	n.stopJobsLocked()
	held := slices.Collect(func(yield func(*holding) bool) {
		for _, h := range n.held {
			if !yield(h) {
				return
			}
		}
	})
	n.mu.Unlock()
	close(n.stop)
	<-n.done
	for _, h := range held {
		<-h.done
	}
}
