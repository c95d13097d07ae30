-- The two payment kinds beside trades and transfers: credit-card
-- repayments (信用卡还款) and bill payments (生活缴费), and the campaign
-- discounts either may carry.
--
-- A card repayment is a bank transaction of kind card_repayment, paid out
-- like a withdrawal; a discount on it is paid from the campaign's budget
-- account into the frozen money, and goes back there if the payout fails.
ALTER TABLE bank_txns ADD COLUMN campaign_id TEXT NOT NULL DEFAULT '';
ALTER TABLE bank_txns ADD COLUMN campaign_label TEXT NOT NULL DEFAULT '';
ALTER TABLE bank_txns ADD COLUMN discount BIGINT NOT NULL DEFAULT 0; -- paid from the budget; the payer paid amount - discount
ALTER TABLE bank_txns ADD COLUMN budget_account BIGINT NOT NULL DEFAULT 0; -- the ledger account the discount came from

-- A biller is a merchant whose bills users pay from their wallets
-- (electricity, water, gas, phone…); '' is a merchant that is not one.
ALTER TABLE merchants ADD COLUMN biller_category TEXT NOT NULL DEFAULT '';
CREATE INDEX merchants_biller ON merchants (biller_category) WHERE biller_category <> '';

-- One row per bill payment, written with its ledger transfer.
CREATE TABLE bill_payments (
	payment_id  TEXT   PRIMARY KEY,
	user_id     TEXT   NOT NULL,
	biller_id   TEXT   NOT NULL, -- the biller's merchant_id
	account_no  TEXT   NOT NULL, -- the payer's account with the biller
	amount      BIGINT NOT NULL, -- the bill; the biller receives all of it
	discount    BIGINT NOT NULL DEFAULT 0, -- paid from the campaign's budget
	campaign_id TEXT   NOT NULL DEFAULT '',
	label       TEXT   NOT NULL DEFAULT '', -- the campaign's label, shown to the payer
	status      TEXT   NOT NULL, -- SUCCESS
	created_at  BIGINT NOT NULL
);
CREATE INDEX bill_payments_user ON bill_payments (user_id, created_at);
