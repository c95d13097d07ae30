-- The ledger's tables, as in package sqlite. Every number is BIGINT: ids,
-- amounts and balances are int64 in Go, and ledger, code and flags fit with
-- room to spare.
CREATE TABLE accounts (
	id              BIGINT PRIMARY KEY,
	ledger          BIGINT NOT NULL,
	code            BIGINT NOT NULL,
	flags           BIGINT NOT NULL,
	debits_pending  BIGINT NOT NULL DEFAULT 0,
	debits_posted   BIGINT NOT NULL DEFAULT 0,
	credits_pending BIGINT NOT NULL DEFAULT 0,
	credits_posted  BIGINT NOT NULL DEFAULT 0,
	ts              BIGINT NOT NULL
);

-- seq orders entries; id is the caller's idempotency key.
CREATE TABLE transfers (
	seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id                TEXT   NOT NULL UNIQUE,
	debit_account_id  BIGINT NOT NULL,
	credit_account_id BIGINT NOT NULL,
	amount            BIGINT NOT NULL,
	pending_id        TEXT,
	ledger            BIGINT NOT NULL,
	code              BIGINT NOT NULL,
	flags             BIGINT NOT NULL,
	user_data         TEXT   NOT NULL DEFAULT '',
	ts                BIGINT NOT NULL,
	debit_balance     BIGINT NOT NULL,
	credit_balance    BIGINT NOT NULL
);
CREATE INDEX transfers_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers (credit_account_id, seq);
-- A pending transfer is posted or voided at most once, whatever the number
-- of processes racing to do it.
CREATE UNIQUE INDEX transfers_pending ON transfers (pending_id) WHERE pending_id IS NOT NULL;
