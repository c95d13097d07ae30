-- Bank channels: bound cards, bank transactions (top-ups, withdrawals and
-- the refund payouts of card payments that came too late) and maintenance
-- announcements. Times are unix nanoseconds (0 = not yet); money is integer
-- fen.

-- A card bound for quick pay (快捷支付). The card number is never stored:
-- only the bank's token and the last four digits.
CREATE TABLE cards (
	card_id    TEXT   PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	bank       TEXT   NOT NULL,
	card_token TEXT   NOT NULL,
	last4      TEXT   NOT NULL,
	status     TEXT   NOT NULL, -- active | unbound
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	UNIQUE (user_id, bank, card_token)
);
CREATE INDEX cards_user ON cards (user_id, status);

-- One row per debit or credit the platform asks a bank for. The row is the
-- committed intent: it exists before the bank is called, and txn_id is the
-- request_id the bank deduplicates on. stage and next_at say what the
-- channel workers do next; the status changes only with its ledger
-- transfers, in one transaction.
CREATE TABLE bank_txns (
	seq         {{autoincrement_pk}}, -- queue order
	txn_id      TEXT    NOT NULL UNIQUE,
	kind        TEXT    NOT NULL, -- topup | withdrawal
	method      TEXT    NOT NULL, -- quick | ebank (top-ups); payout | refund (withdrawals)
	user_id     TEXT    NOT NULL,
	bank        TEXT    NOT NULL,
	card_id     TEXT    NOT NULL DEFAULT '',
	card_token  TEXT    NOT NULL DEFAULT '',
	amount      BIGINT  NOT NULL,
	hold_amount BIGINT  NOT NULL DEFAULT 0, -- balance part of a balance+card payment, frozen meanwhile
	trade_no    TEXT    NOT NULL DEFAULT '', -- the trade a card payment pays
	source_txn  TEXT    NOT NULL DEFAULT '', -- the top-up a refund payout returns
	status      TEXT    NOT NULL, -- QUEUED | PROCESSING | SUCCESS | FAILED
	stage       TEXT    NOT NULL, -- queued | send | wait | ebank | statement | done
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     BIGINT  NOT NULL DEFAULT 0,
	deadline    BIGINT  NOT NULL DEFAULT 0, -- after it the statement decides
	reason      TEXT    NOT NULL DEFAULT '',
	bank_txn_id TEXT    NOT NULL DEFAULT '',
	resolved_by TEXT    NOT NULL DEFAULT '', -- answer | callback | inquiry | statement
	created_at  BIGINT  NOT NULL,
	updated_at  BIGINT  NOT NULL,
	settled_at  BIGINT  NOT NULL DEFAULT 0
);
-- One index serves the workers twice: due transactions (PROCESSING, by
-- next_at) and each bank's queue (QUEUED, whose next_at is always 0, by seq).
CREATE INDEX bank_txns_work ON bank_txns (bank, status, next_at, seq);
CREATE INDEX bank_txns_user ON bank_txns (user_id, kind, seq);
CREATE INDEX bank_txns_trade ON bank_txns (trade_no) WHERE trade_no <> '';
-- One card payment in flight per trade and card: paying again with the same
-- card while the first is processing finds the first.
CREATE UNIQUE INDEX bank_txns_trade_card ON bank_txns (trade_no, card_id)
	WHERE status = 'PROCESSING' AND trade_no <> '';

-- Maintenance windows an operator announced.
CREATE TABLE announcements (
	announcement_id TEXT   PRIMARY KEY,
	bank            TEXT   NOT NULL,
	starts_at       BIGINT NOT NULL,
	ends_at         BIGINT NOT NULL,
	message         TEXT   NOT NULL,
	created_at      BIGINT NOT NULL
);
CREATE INDEX announcements_end ON announcements (ends_at);
