// Package node gives every "zhifu serve" process sharing one database an
// identity, a heartbeat, and a share of the jobs that one process at a time
// must run.
//
// A process's life is an incarnation: a random id made at its start,
// logged, and written in the nodes table with a heartbeat (a counter the
// process raises every BeatInterval). A job that must run on one node at a
// time (the trade timers, the key sweeps, each bank's background work) is a
// lease: a row of the leases table naming the incarnation that holds it. A
// lease has no expiry of its own; it lasts as long as its holder's
// heartbeat.
//
// A node that sees another's counter unchanged for StaleAfter, measured on
// its own monotonic clock (so the nodes' clocks need not agree), marks that
// incarnation dead and, in the same transaction, frees its leases and
// whatever else it held (Config.Release: notification deliveries, say). A
// process that restarts on the data folder of one that died frees the dead
// one's leases at once: it holds the folder's lock, so the other is gone.
// The holder, for its part, stops its jobs once its last successful beat is
// older than StaleAfter less two beats, before anyone may call it dead; and
// a node that finds itself marked dead (it was paused, or cut off from the
// database) stops its jobs and joins again.
//
// Leases are shared out: a node takes a free lease while it holds fewer
// than its fair share (the leases divided among the running nodes, rounded
// up) and gives one back each beat while it holds more, so a node that
// joins gets its share within a few beats. Drain gives every lease back at
// once, each as soon as its job has stopped, for another node to take on
// its next beat.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// Defaults and limits.
const (
	// BeatIntervalDefault is how often a node beats.
	BeatIntervalDefault = time.Second
	// StaleAfterDefault is how long a heartbeat may stay unchanged before
	// its node counts as dead.
	StaleAfterDefault = 5 * time.Second
	// staleBeatsMin bounds StaleAfter from below, in beats: a node must
	// stop its jobs (two beats before StaleAfter) before it can be called
	// dead, and still get a beat in.
	staleBeatsMin = 4
	// beatTimeout bounds one beat's database work.
	beatTimeout = 5 * time.Second
	// endedKeep is how long the rows of ended incarnations are kept, for
	// the record, before a beat deletes them.
	endedKeep = 7 * 24 * time.Hour
	// jobStopWait bounds how long Drain waits for a job to stop before it
	// hands back the rest.
	jobStopWait = 30 * time.Second
)

// States of an incarnation.
const (
	Running  = "running"
	Draining = "draining"
	Stopped  = "stopped"
	Dead     = "dead"
)

// Job is work that one node at a time runs, under a lease of its name.
type Job struct {
	Name string
	// Run does the job until ctx ends, and returns soon after.
	Run func(ctx context.Context)
}

// Release frees what a dead incarnation held besides its leases, inside
// the transaction that marks it dead.
type Release func(ctx context.Context, tx ledger.Tx, incarnation string, now time.Time) error

// Config is what a node needs.
type Config struct {
	Store  ledger.Store
	Clock  zhifu.Clock // the times written in the rows
	Logger *slog.Logger
	// ID is the incarnation's id, from NewID; empty makes one.
	ID string
	// Addr and DataDir describe the process in its row; DataDir (absolute)
	// is locked by the process, so a row of the same host and folder that
	// still says running is a dead process's.
	Addr    string
	DataDir string
	Jobs    []Job
	// Release frees a dead incarnation's other claims.
	Release []Release
	// Live is told how many nodes run (not draining) after every beat that
	// read them.
	Live func(n int)
	// BeatInterval and StaleAfter time the heartbeat; zero means the
	// defaults. StaleAfter is at least staleBeatsMin beats.
	BeatInterval time.Duration
	StaleAfter   time.Duration
	// Now is real, monotonic time, for measuring silences; nil means
	// time.Now. It is not the business clock, which a test may move by
	// days.
	Now func() time.Time
}

// Node is this process's incarnation.
type Node struct {
	cfg  Config
	id   string
	host string
	jobs map[string]Job

	mu       sync.Mutex
	state    string              // Running or Draining, as this node last wrote it
	held     map[string]*holding // leases the database says are ours
	lastBeat time.Time           // real time the last successful beat started
	seen     map[string]sighting // other incarnations' counters
	live     int
	wake     chan struct{}

	stop     chan struct{}
	done     chan struct{}
	closed   bool
	releases sync.WaitGroup
}

// holding is a lease this node holds and its job.
type holding struct {
	cancel    context.CancelFunc // nil while the job is not running
	done      chan struct{}      // closed when the last run returned
	releasing bool               // being handed back
}

// sighting is what this node last saw of another incarnation.
type sighting struct {
	beats int64
	since time.Time // real time this node first saw that count
}

// Start registers a new incarnation and starts beating. Its first beat
// runs before Start returns, so jobs whose leases are free start at once.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BeatInterval <= 0 {
		cfg.BeatInterval = BeatIntervalDefault
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = StaleAfterDefault
	}
	cfg.StaleAfter = max(cfg.StaleAfter, staleBeatsMin*cfg.BeatInterval)
	if cfg.ID == "" {
		cfg.ID = NewID()
	}
	host, _ := os.Hostname()
	n := &Node{cfg: cfg, id: cfg.ID, host: host, jobs: make(map[string]Job),
		state: Running, held: make(map[string]*holding), seen: make(map[string]sighting),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, j := range cfg.Jobs {
		n.jobs[j.Name] = j
	}
	if err := n.register(ctx); err != nil {
		return nil, err
	}
	n.beat(ctx)
	go n.loop()
	return n, nil
}

// NewID returns a new incarnation id: "n-" and 16 random hex digits.
func NewID() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand's documented contract)
	return "n-" + hex.EncodeToString(b)
}

// ID returns the incarnation's id.
func (n *Node) ID() string { return n.id }

// Holding reports whether this node holds the lease and may run its job
// now: it is neither handing it back nor too long without a beat.
func (n *Node) Holding(lease string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.held[lease]
	return h != nil && h.cancel != nil && !h.releasing && n.validLocked(n.cfg.Now())
}

// register writes the incarnation's row, makes sure every job's lease row
// exists, and marks dead the earlier incarnations of this data folder.
func (n *Node) register(ctx context.Context) error {
	now := n.cfg.Clock.Now().UnixNano()
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range n.jobs {
			if !yield(name) {
				return
			}
		}
	})
	var freed []string
	err := n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
		freed = freed[:0]
		if _, err := tx.Exec(ctx, `INSERT INTO nodes (incarnation, host, pid, data, addr, state, beats, started_at, beat_at)
			VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`, n.id, n.host, int64(os.Getpid()), n.cfg.DataDir, n.cfg.Addr,
			Running, now, now); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		for _, name := range names {
			if _, err := tx.Exec(ctx, `INSERT INTO leases (name) VALUES (?) ON CONFLICT DO NOTHING`, name); err != nil {
				return fmt.Errorf("register lease %s: %w", name, err)
			}
		}
		if n.cfg.DataDir == "" {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT incarnation FROM nodes WHERE host = ? AND data = ? AND state IN (?, ?)
			AND incarnation <> ?`, n.host, n.cfg.DataDir, Running, Draining, n.id)
		if err != nil {
			return fmt.Errorf("earlier incarnations: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("earlier incarnations: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("earlier incarnations: %w", err)
		}
		for _, id := range ids {
			ok, err := n.bury(ctx, tx, id, -1, now)
			if err != nil {
				return err
			}
			if ok {
				freed = append(freed, id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for _, id := range freed {
		n.cfg.Logger.Info("node: freed the claims of this data folder's earlier process", slog.String("incarnation", id))
	}
	return nil
}

// bury marks an incarnation dead, if it still runs (and, with beats ≥ 0,
// has not beaten since), and frees what it held. It reports whether it did.
func (n *Node) bury(ctx context.Context, tx ledger.Tx, id string, beats int64, now int64) (bool, error) {
	q := `UPDATE nodes SET state = ?, ended_at = ?, ended_by = ? WHERE incarnation = ? AND state IN (?, ?)`
	args := []any{Dead, now, n.id, id, Running, Draining}
	if beats >= 0 {
		q += ` AND beats = ?`
		args = append(args, beats)
	}
	c, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("mark %s dead: %w", id, err)
	}
	if c != 1 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE leases SET holder = '', since = ? WHERE holder = ?`, now, id); err != nil {
		return false, fmt.Errorf("free the leases of %s: %w", id, err)
	}
	for _, r := range n.cfg.Release {
		if err := r(ctx, tx, id, time.Unix(0, now)); err != nil {
			return false, fmt.Errorf("free the claims of %s: %w", id, err)
		}
	}
	return true, nil
}

func (n *Node) loop() {
	defer close(n.done)
	t := time.NewTicker(n.cfg.BeatInterval)
	defer t.Stop()
	// The watchdog looks more often than the beat: a process resumed
	// after a pause must stop its jobs before its next beat finds it dead.
	watch := time.NewTicker(max(n.cfg.BeatInterval/4, time.Millisecond))
	defer watch.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-watch.C:
			n.watchdog()
			continue
		case <-t.C:
		case <-n.wake:
		}
		n.beat(context.Background())
	}
}

// valid says whether this node may run its jobs: its last beat is recent
// enough that nobody can have called it dead.
func (n *Node) validLocked(now time.Time) bool {
	return !n.lastBeat.IsZero() && now.Sub(n.lastBeat) < n.cfg.StaleAfter-2*n.cfg.BeatInterval
}

func (n *Node) watchdog() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.validLocked(n.cfg.Now()) {
		n.stopJobsLocked()
	}
}

// stopJobsLocked cancels every running job, keeping the leases.
func (n *Node) stopJobsLocked() {
	for _, h := range n.held {
		if h.cancel != nil {
			h.cancel()
			h.cancel = nil
		}
	}
}

// beat raises the heartbeat, buries the incarnations whose heartbeat
// stopped, and takes or hands back leases.
func (n *Node) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, beatTimeout)
	defer cancel()
	start := n.cfg.Now()
	n.mu.Lock()
	state := n.state
	n.mu.Unlock()
	alive, err := n.heartbeat(ctx, state)
	if err != nil {
		n.cfg.Logger.Warn("node: heartbeat", slog.Any("err", err))
		n.mu.Lock()
		// What others did while this node could not see is unknown:
		// their silences are measured again from the next look.
		clear(n.seen)
		if !n.validLocked(n.cfg.Now()) {
			n.stopJobsLocked()
		}
		n.mu.Unlock()
		return
	}
	if !alive {
		n.cfg.Logger.Error("node: another node found this one dead (paused or cut off from the database); "+
			"stopping its jobs and joining again", slog.String("incarnation", n.id))
		n.mu.Lock()
		for name, h := range n.held {
			if h.cancel != nil {
				h.cancel()
			}
			delete(n.held, name)
		}
		clear(n.seen)
		n.mu.Unlock()
		if err := n.rejoin(ctx, state); err != nil {
			n.cfg.Logger.Warn("node: rejoin", slog.Any("err", err))
			return
		}
	}
	n.mu.Lock()
	n.lastBeat = start
	n.mu.Unlock()
	if err := n.watch(ctx); err != nil {
		n.cfg.Logger.Warn("node: watch the other nodes", slog.Any("err", err))
		return
	}
	if err := n.share(ctx); err != nil {
		n.cfg.Logger.Warn("node: leases", slog.Any("err", err))
	}
}

// heartbeat raises this incarnation's counter; false means another node
// marked it dead.
func (n *Node) heartbeat(ctx context.Context, state string) (bool, error) {
	var c int64
	err := n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
		var err error
		c, err = tx.Exec(ctx, `UPDATE nodes SET beats = beats + 1, beat_at = ?, state = ?
			WHERE incarnation = ? AND state IN (?, ?)`, n.cfg.Clock.Now().UnixNano(), state, n.id, Running, Draining)
		return err
	})
	return c == 1, err
}

func (n *Node) rejoin(ctx context.Context, state string) error {
	return n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE nodes SET state = ?, beats = beats + 1, beat_at = ?, ended_at = 0, ended_by = ''
			WHERE incarnation = ?`, state, n.cfg.Clock.Now().UnixNano(), n.id)
		return err
	})
}

// watch reads the other incarnations and buries those silent for
// StaleAfter.
func (n *Node) watch(ctx context.Context) error {
	type other struct {
		id    string
		beats int64
		state string
	}
	rows, err := n.cfg.Store.Reader().Query(ctx, `SELECT incarnation, beats, state FROM nodes WHERE state IN (?, ?)`,
		Running, Draining)
	if err != nil {
		return err
	}
	var others []other
	for rows.Next() {
		var o other
		if err := rows.Scan(&o.id, &o.beats, &o.state); err != nil {
			rows.Close()
			return err
		}
		others = append(others, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	now := n.cfg.Now()
	live := 0
	var stale []other
	n.mu.Lock()
	present := make(map[string]bool, len(others))
	for _, o := range others {
		present[o.id] = true
		if o.id == n.id {
			if n.state == Running {
				live++
			}
			continue
		}
		s, ok := n.seen[o.id]
		if !ok || s.beats != o.beats {
			n.seen[o.id] = sighting{beats: o.beats, since: now}
		} else if now.Sub(s.since) >= n.cfg.StaleAfter {
			stale = append(stale, o)
		}
		if o.state == Running {
			live++
		}
	}
	for id := range n.seen {
		if !present[id] {
			delete(n.seen, id)
		}
	}
	n.mu.Unlock()
	for _, o := range stale {
		var buried bool
		at := n.cfg.Clock.Now().UnixNano()
		err := n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
			var err error
			buried, err = n.bury(ctx, tx, o.id, o.beats, at)
			return err
		})
		if err != nil {
			return err
		}
		if buried {
			n.cfg.Logger.Warn("node: another node's heartbeat stopped; its claims are freed",
				slog.String("incarnation", o.id), slog.Duration("silent", n.cfg.StaleAfter))
			if o.state == Running {
				live--
			}
		}
	}
	n.mu.Lock()
	n.live = max(live, 1)
	n.mu.Unlock()
	if n.cfg.Live != nil {
		n.cfg.Live(max(live, 1))
	}
	// Now and then, the record of long-ended incarnations goes.
	if now.Second()%60 == 0 {
		cutoff := n.cfg.Clock.Now().Add(-endedKeep).UnixNano()
		_ = n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM nodes WHERE state IN (?, ?) AND ended_at > 0 AND ended_at < ?`,
				Stopped, Dead, cutoff)
			return err
		})
	}
	return nil
}

// share reads the leases, runs the jobs of those this node holds, takes
// free ones up to its fair share, and hands one back if it holds more (or
// all of them while draining).
func (n *Node) share(ctx context.Context) error {
	rows, err := n.cfg.Store.Reader().Query(ctx, `SELECT name, holder FROM leases`)
	if err != nil {
		return err
	}
	holders := make(map[string]string)
	for rows.Next() {
		var name, holder string
		if err := rows.Scan(&name, &holder); err != nil {
			rows.Close()
			return err
		}
		if _, ok := n.jobs[name]; ok {
			holders[name] = holder
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	for name, h := range n.held {
		if holders[name] != n.id && !h.releasing {
			// Freed by another node (this one was buried and joined
			// again): the job stops, the lease is not ours.
			if h.cancel != nil {
				h.cancel()
			}
			delete(n.held, name)
		}
	}
	mine, free := 0, []string(nil)
	for _, name := range slices.Sorted(mapKeys(holders)) {
		switch holders[name] {
		case n.id:
			mine++
			if n.held[name] == nil {
				n.held[name] = &holding{done: closedChan()}
			}
		case "":
			free = append(free, name)
		}
	}
	draining := n.state == Draining
	fair := (len(n.jobs) + n.live - 1) / max(n.live, 1)
	var giveBack []string
	switch {
	case draining:
		for name, h := range n.held {
			if !h.releasing {
				giveBack = append(giveBack, name)
			}
		}
	case mine > fair:
		// One of them goes, each beat, until the share is right.
		for name, h := range n.held {
			if !h.releasing {
				giveBack = append(giveBack, name)
				break
			}
		}
	}
	for _, name := range giveBack {
		n.releaseLocked(name)
	}
	if !draining {
		n.runJobsLocked()
	}
	want := 0
	if !draining {
		want = fair - mine
	}
	n.mu.Unlock()
	// Free leases are taken in an order of this node's own, so that
	// nodes starting together do not all reach for the same first one.
	offset := int(n.id[len(n.id)-1]) % max(len(free), 1)
	for i := range free {
		if want <= 0 {
			break
		}
		name := free[(i+offset)%len(free)]
		ok, err := n.acquire(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			want--
			n.mu.Lock()
			if n.held[name] == nil {
				n.held[name] = &holding{done: closedChan()}
			}
			n.runJobsLocked()
			n.mu.Unlock()
			n.cfg.Logger.Info("node: lease taken", slog.String("lease", name), slog.String("incarnation", n.id))
		}
	}
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// runJobsLocked starts the job of every lease held whose job is not
// running, if this node may run jobs now.
func (n *Node) runJobsLocked() {
	if !n.validLocked(n.cfg.Now()) || n.closed {
		return
	}
	for name, h := range n.held {
		if h.cancel != nil || h.releasing {
			continue
		}
		job := n.jobs[name]
		ctx, cancel := context.WithCancel(context.Background())
		prev, done := h.done, make(chan struct{})
		h.cancel, h.done = cancel, done
		go func() {
			defer close(done)
			<-prev // the last run of this job has returned
			if ctx.Err() == nil {
				job.Run(ctx)
			}
		}()
	}
}

// releaseLocked stops a lease's job and, once it has returned, hands the
// lease back.
func (n *Node) releaseLocked(name string) {
	h := n.held[name]
	if h == nil || h.releasing {
		return
	}
	h.releasing = true
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
	done := h.done
	n.releases.Go(func() {
		select {
		case <-done:
		case <-time.After(jobStopWait):
			n.cfg.Logger.Warn("node: a job did not stop; its lease is handed back all the same", slog.String("lease", name))
		}
		ctx, cancel := context.WithTimeout(context.Background(), beatTimeout)
		defer cancel()
		err := n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE leases SET holder = '', since = ? WHERE name = ? AND holder = ?`,
				n.cfg.Clock.Now().UnixNano(), name, n.id)
			return err
		})
		n.mu.Lock()
		if n.held[name] == h {
			if err != nil {
				h.releasing = false // the next beat tries again
			} else {
				delete(n.held, name)
			}
		}
		n.mu.Unlock()
		if err != nil {
			n.cfg.Logger.Warn("node: hand back lease", slog.String("lease", name), slog.Any("err", err))
			return
		}
		n.cfg.Logger.Info("node: lease handed back", slog.String("lease", name), slog.String("incarnation", n.id))
	})
}

func (n *Node) acquire(ctx context.Context, name string) (bool, error) {
	var c int64
	err := n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
		var err error
		c, err = tx.Exec(ctx, `UPDATE leases SET holder = ?, since = ?, handovers = handovers + 1
			WHERE name = ? AND holder = ''`, n.id, n.cfg.Clock.Now().UnixNano(), name)
		return err
	})
	return c == 1, err
}

// Holds reports the leases this node holds with their job running.
func (n *Node) Holds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name, h := range n.held {
		if h.cancel != nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Drain stops taking leases, stops every job and hands its lease back,
// and returns once all are back or ctx ends. The node keeps beating (as
// draining, not counted among the running) until Close.
func (n *Node) Drain(ctx context.Context) error {
	n.mu.Lock()
	n.state = Draining
	for name := range n.held {
		n.releaseLocked(name)
	}
	n.mu.Unlock()
	wait := make(chan struct{})
	go func() {
		n.releases.Wait()
		close(wait)
	}()
	select {
	case <-wait:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The others learn of it on their next beat; a beat now says so.
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close drains the node if Drain was not called, stops the heartbeat and
// marks the incarnation stopped.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), jobStopWait+beatTimeout)
	defer cancel()
	derr := n.Drain(ctx)
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	<-n.done
	n.releases.Wait()
	now := n.cfg.Clock.Now().UnixNano()
	err := n.cfg.Store.Update(ctx, func(tx ledger.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE nodes SET state = ?, ended_at = ?, ended_by = ? WHERE incarnation = ?`,
			Stopped, now, n.id, n.id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE leases SET holder = '', since = ? WHERE holder = ?`, now, n.id)
		return err
	})
	if err != nil {
		err = fmt.Errorf("node: mark stopped: %w", err)
	}
	return errors.Join(derr, err)
}
