-- The serve processes sharing this database, one row per incarnation (one
-- process's life, named by a random id made at its start): its heartbeat,
-- a counter it raises every beat, and its state. A node that finds
-- another's counter unchanged for long enough marks it dead and, in the
-- same transaction, frees what it held.
CREATE TABLE nodes (
	incarnation TEXT   PRIMARY KEY,
	host        TEXT   NOT NULL,
	pid         BIGINT NOT NULL,
	data        TEXT   NOT NULL, -- the data folder, locked by the process while it runs
	addr        TEXT   NOT NULL,
	state       TEXT   NOT NULL, -- running | draining | stopped | dead
	beats       BIGINT NOT NULL DEFAULT 0,
	started_at  BIGINT NOT NULL,
	beat_at     BIGINT NOT NULL,
	ended_at    BIGINT NOT NULL DEFAULT 0,
	ended_by    TEXT   NOT NULL DEFAULT '' -- who found it dead, or itself
);
CREATE INDEX nodes_state ON nodes (state);
CREATE INDEX nodes_folder ON nodes (host, data, state);

-- Jobs that one node at a time runs (the trade timers, the key sweeps, each
-- bank's background work): the incarnation holding each, '' when free.
CREATE TABLE leases (
	name      TEXT   PRIMARY KEY,
	holder    TEXT   NOT NULL DEFAULT '',
	since     BIGINT NOT NULL DEFAULT 0,
	handovers BIGINT NOT NULL DEFAULT 0
);

-- Which incarnation holds a notification's delivery lease, so that a dead
-- node's attempts are released at once rather than when their lease ends.
ALTER TABLE notifications ADD COLUMN leased_by TEXT NOT NULL DEFAULT '';
