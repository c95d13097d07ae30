-- Marketing campaigns (package campaign). Money fields are fen; percent is
-- in basis points; kinds and merchants are comma-separated lists ('' for
-- every merchant). The budget is a ledger account (budget_account); spent
-- and the caps below only decide, the ledger enforces.
CREATE TABLE campaigns (
	num             {{autoincrement_pk}},
	campaign_id     TEXT   NOT NULL UNIQUE,
	name            TEXT   NOT NULL,
	template        TEXT   NOT NULL, -- percent_off | fixed_off
	percent_bp      BIGINT NOT NULL,
	amount_off      BIGINT NOT NULL,
	kinds           TEXT   NOT NULL,
	merchants       TEXT   NOT NULL,
	min_amount      BIGINT NOT NULL,
	max_discount    BIGINT NOT NULL,
	user_daily_cap  BIGINT NOT NULL,
	budget          BIGINT NOT NULL,
	starts_at       BIGINT NOT NULL,
	ends_at         BIGINT NOT NULL,
	funding         TEXT   NOT NULL, -- platform | merchant
	funding_id      TEXT   NOT NULL, -- the funding merchant, '' for the platform
	plan_per_hour   BIGINT NOT NULL,
	plan_share_bp   BIGINT NOT NULL, -- planned share of payments discounted, 0 = not judged
	plan_ratio_bp   BIGINT NOT NULL, -- planned discount / amount, 0 = not judged
	label           TEXT   NOT NULL,
	budget_account  BIGINT NOT NULL,
	status          TEXT   NOT NULL, -- PENDING_APPROVAL SCHEDULED CANARY LIVE PAUSED KILLED ENDED REJECTED
	status_reason   TEXT   NOT NULL DEFAULT '',
	version         BIGINT NOT NULL,
	created_by      TEXT   NOT NULL,
	changed_by      TEXT   NOT NULL,
	approved_by     TEXT   NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	changed_at      BIGINT NOT NULL,
	live_at         BIGINT NOT NULL DEFAULT 0, -- when it went live (canary), 0 before
	widened_at      BIGINT NOT NULL DEFAULT 0,
	stopped_at      BIGINT NOT NULL DEFAULT 0,
	funded          BIGINT NOT NULL DEFAULT 0, -- fen moved into the budget so far
	returned        BIGINT NOT NULL DEFAULT 0  -- fen returned to the funding account since it stopped
);
CREATE INDEX campaigns_status ON campaigns (status);

-- Each payer's discount per campaign and day, for the per-user daily cap.
CREATE TABLE campaign_usage (
	campaign_id TEXT   NOT NULL,
	user_id     TEXT   NOT NULL,
	day         BIGINT NOT NULL, -- days since 1970 in China Standard Time
	discount    BIGINT NOT NULL,
	PRIMARY KEY (campaign_id, user_id, day)
);
