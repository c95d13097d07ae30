-- Users, merchants, trades and what surrounds them. The two num columns are
-- ids the database generates.

CREATE TABLE users (
	num           {{autoincrement_pk}}, -- wallet account ids derive from it
	user_id       TEXT    NOT NULL UNIQUE,
	login         TEXT    NOT NULL UNIQUE,
	name          TEXT    NOT NULL,
	password_hash TEXT    NOT NULL,
	created_at    BIGINT  NOT NULL
);

CREATE TABLE merchants (
	num            {{autoincrement_pk}},
	merchant_id    TEXT    NOT NULL UNIQUE,
	app_id         TEXT    NOT NULL UNIQUE,
	name           TEXT    NOT NULL,
	user_id        TEXT    NOT NULL, -- the wallet that receives the merchant's money
	secret         TEXT    NOT NULL, -- HMAC key; needed in clear to verify signatures, never logged
	notify_url     TEXT    NOT NULL DEFAULT '',
	app_public_key TEXT    NOT NULL DEFAULT '',
	created_at     BIGINT  NOT NULL
);
-- Times are unix nanoseconds (0 = not yet). Money is integer fen.

CREATE TABLE sessions (
	token_hash TEXT   PRIMARY KEY, -- SHA-256 of the bearer token, hex; the token itself is never stored
	user_id    TEXT   NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Single-use nonces of signed merchant requests, kept until their timestamp
-- window has passed.
CREATE TABLE nonces (
	merchant_id TEXT   NOT NULL,
	nonce       TEXT   NOT NULL,
	expires_at  BIGINT NOT NULL,
	PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE deposits (
	deposit_id TEXT   PRIMARY KEY,
	reference  TEXT   NOT NULL UNIQUE, -- the bank's reference: the same money is credited once
	bank       TEXT   NOT NULL,
	user_id    TEXT   NOT NULL,
	amount     BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);

-- First response of each Idempotency-Key, replayed for 24 hours.
CREATE TABLE idempotency_keys (
	scope        TEXT    NOT NULL, -- who sent it: "merchant:<id>", "user:<id>", "admin"
	idem_key     TEXT    NOT NULL,
	request_hash TEXT    NOT NULL,
	state        INTEGER NOT NULL, -- 0 running, 1 done
	status       INTEGER NOT NULL DEFAULT 0,
	body         TEXT    NOT NULL DEFAULT '',
	created_at   BIGINT  NOT NULL,
	PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE trades (
	trade_no          TEXT    PRIMARY KEY,
	out_trade_no      TEXT    NOT NULL,
	merchant_id       TEXT    NOT NULL,
	seller_id         TEXT    NOT NULL,
	buyer_id          TEXT    NOT NULL DEFAULT '',
	mode              TEXT    NOT NULL, -- instant | escrow
	subject           TEXT    NOT NULL,
	total_amount      BIGINT  NOT NULL,
	buyer_pay_amount  BIGINT  NOT NULL DEFAULT 0,
	discount_amount   BIGINT  NOT NULL DEFAULT 0,
	refunded_amount   BIGINT  NOT NULL DEFAULT 0,
	status            TEXT    NOT NULL,
	notify_url        TEXT    NOT NULL DEFAULT '',
	timeout_express   BIGINT  NOT NULL, -- seconds
	confirm_timeout   BIGINT  NOT NULL, -- seconds
	params_hash       TEXT    NOT NULL, -- what out_trade_no was created with, for CONTEXT_INCONSISTENT
	source            TEXT    NOT NULL DEFAULT 'api', -- api | gateway
	logistics_company TEXT    NOT NULL DEFAULT '',
	tracking_no       TEXT    NOT NULL DEFAULT '',
	refunds_open      INTEGER NOT NULL DEFAULT 0, -- pauses the confirm timer
	created_at        BIGINT  NOT NULL,
	paid_at           BIGINT  NOT NULL DEFAULT 0,
	shipped_at        BIGINT  NOT NULL DEFAULT 0,
	finished_at       BIGINT  NOT NULL DEFAULT 0,
	closed_at         BIGINT  NOT NULL DEFAULT 0,
	close_due         BIGINT  NOT NULL DEFAULT 0, -- unpaid trades close then
	confirm_due       BIGINT  NOT NULL DEFAULT 0, -- shipped escrow trades finish then
	UNIQUE (merchant_id, out_trade_no)
);
CREATE INDEX trades_close_due ON trades (status, close_due);
CREATE INDEX trades_confirm_due ON trades (status, confirm_due);
CREATE INDEX trades_merchant_day ON trades (merchant_id, created_at);

CREATE TABLE refunds (
	trade_no       TEXT   NOT NULL,
	out_request_no TEXT   NOT NULL,
	refund_amount  BIGINT NOT NULL,
	reason         TEXT   NOT NULL DEFAULT '',
	status         TEXT   NOT NULL, -- SUCCESS | PROCESSING
	created_at     BIGINT NOT NULL,
	PRIMARY KEY (trade_no, out_request_no)
);
CREATE INDEX refunds_day ON refunds (created_at);

-- 付款码: single-use payment codes a user shows and a merchant collects with.
CREATE TABLE paycodes (
	auth_code  TEXT   PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL DEFAULT 0,
	trade_no   TEXT   NOT NULL DEFAULT ''
);

-- The notification outbox: written in the same transaction as the change it
-- reports, delivered afterwards by the notify worker.
CREATE TABLE notifications (
	notify_id       TEXT    PRIMARY KEY,
	merchant_id     TEXT    NOT NULL,
	url             TEXT    NOT NULL,
	format          TEXT    NOT NULL, -- zhifu | alipay
	body            TEXT    NOT NULL,
	status          TEXT    NOT NULL, -- pending | delivered | failed
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT  NOT NULL,
	lease_until     BIGINT  NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	created_at      BIGINT  NOT NULL,
	delivered_at    BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
