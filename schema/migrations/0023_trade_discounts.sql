-- A trade paid with a campaign's discount names the campaign, the label
-- the buyer saw and the budget account that paid it; refunds return the
-- discount's share there.
ALTER TABLE trades ADD COLUMN campaign_id TEXT NOT NULL DEFAULT '';
ALTER TABLE trades ADD COLUMN campaign_label TEXT NOT NULL DEFAULT '';
ALTER TABLE trades ADD COLUMN budget_account BIGINT NOT NULL DEFAULT 0;
