-- Reconciliation: each run of one bank's statement for one day, the
-- differences it found (review items, with what sits in the suspense
-- account for them), the lease that keeps two runs of one bank and day
-- apart, and the daily schedule. Times are unix nanoseconds (0 = not yet);
-- money is integer fen; days are YYYY-MM-DD in Beijing time.

-- One run. summary is JSON: lines, records and amounts per class.
CREATE TABLE recon_runs (
	run_id      TEXT   PRIMARY KEY,
	bank        TEXT   NOT NULL,
	day         TEXT   NOT NULL,
	source      TEXT   NOT NULL, -- bank | file
	file        TEXT   NOT NULL DEFAULT '', -- the file's name, for a file
	started_by  TEXT   NOT NULL, -- an operator id, or scheduler
	node        TEXT   NOT NULL, -- the server that ran it
	state       TEXT   NOT NULL, -- RUNNING | DONE | FAILED | INTERRUPTED
	phase       TEXT   NOT NULL DEFAULT '',
	lines_total BIGINT NOT NULL DEFAULT 0,
	lines_done  BIGINT NOT NULL DEFAULT 0,
	records     BIGINT NOT NULL DEFAULT 0, -- the platform's transactions of the day
	changes     BIGINT NOT NULL DEFAULT 0, -- review items made and repairs done by this run
	summary     TEXT   NOT NULL DEFAULT '',
	opening     BIGINT NOT NULL DEFAULT 0, -- the statement's balances
	closing     BIGINT NOT NULL DEFAULT 0,
	error       TEXT   NOT NULL DEFAULT '',
	started_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	finished_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX recon_runs_started ON recon_runs (started_at);
CREATE INDEX recon_runs_day ON recon_runs (bank, day, state);

-- A difference between a bank and the platform, one per statement line or
-- transaction (item_key: line:<bank_txn_id>, txn:<txn_id>,
-- overdue:<txn_id>), so a run again finds it instead of making another.
-- suspense is what its run moved into the suspense account (negative: out
-- of it); a resolution moves it on, once a second operator approves. books
-- is what the bank moved for it that the platform's bank transactions do
-- not show (debits for a top-up, credits for a withdrawal; negative: less),
-- so that custody can compare the banks' books with those transactions.
CREATE TABLE recon_items (
	item_id     TEXT   PRIMARY KEY,
	bank        TEXT   NOT NULL,
	item_key    TEXT   NOT NULL,
	day         TEXT   NOT NULL,
	run_id      TEXT   NOT NULL, -- '' for an overdue transaction found between runs
	class       TEXT   NOT NULL, -- bank_only | ours_only | amount_mismatch | duplicate | overdue
	status      TEXT   NOT NULL, -- OPEN | REPAIRED | RESOLVED | CLOSED
	txn_id      TEXT   NOT NULL DEFAULT '', -- the platform's transaction, if any
	kind        TEXT   NOT NULL DEFAULT '', -- topup | withdrawal
	user_id     TEXT   NOT NULL DEFAULT '',
	request_id  TEXT   NOT NULL DEFAULT '',
	bank_txn_id TEXT   NOT NULL DEFAULT '',
	bank_amount BIGINT NOT NULL DEFAULT 0,
	our_amount  BIGINT NOT NULL DEFAULT 0,
	suspense    BIGINT NOT NULL DEFAULT 0,
	books       BIGINT NOT NULL DEFAULT 0, -- what the bank moved beyond the platform's bank transactions, on the kind's side
	repair      TEXT   NOT NULL DEFAULT '', -- what its run did on its own
	detail      TEXT   NOT NULL DEFAULT '',
	proposal_id TEXT   NOT NULL DEFAULT '', -- the latest resolution proposed
	action      TEXT   NOT NULL DEFAULT '', -- credit_user | return_to_card | write_off, once resolved
	note        TEXT   NOT NULL DEFAULT '',
	resolved_at BIGINT NOT NULL DEFAULT 0, -- when the approved resolution was carried out
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	UNIQUE (bank, item_key)
);
CREATE INDEX recon_items_status ON recon_items (status, created_at, item_id);
CREATE INDEX recon_items_txn ON recon_items (txn_id) WHERE txn_id <> '';

-- Who runs a bank's day now: a run takes the row when it is free or its
-- holder's lease ran out, and renews it while it works.
CREATE TABLE recon_leases (
	bank       TEXT   NOT NULL,
	day        TEXT   NOT NULL,
	holder     TEXT   NOT NULL,
	run_id     TEXT   NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (bank, day)
);

-- The next day each bank is reconciled on its own, and when: moved on in
-- the transaction that finishes that day's run, so a restart neither skips
-- a day nor runs one twice.
CREATE TABLE recon_schedule (
	bank       TEXT   PRIMARY KEY,
	next_day   TEXT   NOT NULL,
	due_at     BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- A day's transactions of a bank, by the platform's clock.
CREATE INDEX bank_txns_settled ON bank_txns (bank, settled_at, txn_id, kind, status, amount, bank_txn_id, resolved_by);
