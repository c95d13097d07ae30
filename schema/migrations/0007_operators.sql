-- Operators: the people who run the platform, each with a login of their
-- own (sessions share the sessions table: user_id holds the operator id).
CREATE TABLE operators (
	num           {{autoincrement_pk}},
	operator_id   TEXT   NOT NULL UNIQUE,
	login         TEXT   NOT NULL UNIQUE,
	name          TEXT   NOT NULL,
	password_hash TEXT   NOT NULL,
	created_by    TEXT   NOT NULL,
	created_at    BIGINT NOT NULL
);

-- Proposals waiting for, or decided by, a second operator.
CREATE TABLE approvals (
	approval_id TEXT   PRIMARY KEY,
	kind        TEXT   NOT NULL,
	subject     TEXT   NOT NULL,
	summary     TEXT   NOT NULL,
	payload     TEXT   NOT NULL,
	state       TEXT   NOT NULL, -- PENDING, APPROVED, REJECTED, SUPERSEDED
	proposed_by TEXT   NOT NULL,
	proposed_at BIGINT NOT NULL,
	decided_by  TEXT   NOT NULL DEFAULT '',
	decided_at  BIGINT NOT NULL DEFAULT 0,
	reason      TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX approvals_state ON approvals (state, proposed_at);
CREATE INDEX approvals_subject ON approvals (kind, subject, state);

-- Who did what, append-only.
CREATE TABLE audit_log (
	seq         {{autoincrement_pk}},
	at          BIGINT  NOT NULL,
	operator_id TEXT    NOT NULL,
	action      TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	detail      TEXT    NOT NULL,
	applied     INTEGER NOT NULL
);
