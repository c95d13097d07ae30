CREATE TABLE accounts (
	id              INTEGER PRIMARY KEY,
	ledger          INTEGER NOT NULL,
	code            INTEGER NOT NULL,
	flags           INTEGER NOT NULL,
	debits_pending  INTEGER NOT NULL DEFAULT 0,
	debits_posted   INTEGER NOT NULL DEFAULT 0,
	credits_pending INTEGER NOT NULL DEFAULT 0,
	credits_posted  INTEGER NOT NULL DEFAULT 0,
	ts              INTEGER NOT NULL
);

-- seq orders entries; id is the caller's idempotency key.
CREATE TABLE transfers (
	seq               INTEGER PRIMARY KEY,
	id                TEXT    NOT NULL UNIQUE,
	debit_account_id  INTEGER NOT NULL,
	credit_account_id INTEGER NOT NULL,
	amount            INTEGER NOT NULL,
	pending_id        TEXT,
	ledger            INTEGER NOT NULL,
	code              INTEGER NOT NULL,
	flags             INTEGER NOT NULL,
	user_data         TEXT    NOT NULL DEFAULT '',
	ts                INTEGER NOT NULL,
	debit_balance     INTEGER NOT NULL,
	credit_balance    INTEGER NOT NULL
);
CREATE INDEX transfers_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers (credit_account_id, seq);
-- A pending transfer is posted or voided at most once, whatever the number
-- of processes racing to do it.
CREATE UNIQUE INDEX transfers_pending ON transfers (pending_id) WHERE pending_id IS NOT NULL;
