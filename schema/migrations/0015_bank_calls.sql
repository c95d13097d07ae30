-- Every call the platform makes to a bank, for the banks' monthly report:
-- which bank, what kind of call, the bank transaction it was about (if
-- any), when it started, how long it took and how it came out. The rows
-- are facts for a report, not business state: they are written in batches
-- a moment after the calls, so a crash may lose the last second of them
-- (the calls' effects are in bank_txns, which is durable before each call).
-- They are kept 13 months and pruned in bounded deletes.
CREATE TABLE bank_calls (
	seq        {{autoincrement_pk}},
	bank       TEXT   NOT NULL,
	kind       TEXT   NOT NULL, -- debit | credit | inquiry | statement | verify | probe | maintenance
	txn_id     TEXT   NOT NULL DEFAULT '', -- the bank_txns row the call was about
	started_at BIGINT NOT NULL,
	latency    BIGINT NOT NULL, -- nanoseconds
	outcome    TEXT   NOT NULL, -- ok | refused | timeout | transport
	code       TEXT   NOT NULL DEFAULT '' -- the bank's error code or failure reason
);
CREATE INDEX bank_calls_started ON bank_calls (started_at);

-- The report counts a month's bank transactions by when they were asked
-- for.
CREATE INDEX bank_txns_created ON bank_txns (created_at);
