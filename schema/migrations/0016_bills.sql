-- Merchants' finished daily bills (对账单): the trade bill and the account
-- bill of every merchant for every day, written once by the daily bill job
-- and served as they were written. A bill's CSV is kept in parts of a
-- bounded number of lines; the bills row is written with its last part,
-- so a bill without one is not finished and is written again.
CREATE TABLE bills (
	merchant_id TEXT    NOT NULL,
	bill_date   TEXT    NOT NULL, -- YYYY-MM-DD, a day in China (UTC+8)
	bill_type   TEXT    NOT NULL, -- trade | signcustomer
	lines       BIGINT  NOT NULL, -- lines below the header
	parts       INTEGER NOT NULL,
	created_at  BIGINT  NOT NULL,
	PRIMARY KEY (merchant_id, bill_date, bill_type)
);
CREATE TABLE bill_parts (
	merchant_id TEXT    NOT NULL,
	bill_date   TEXT    NOT NULL,
	bill_type   TEXT    NOT NULL,
	part        INTEGER NOT NULL, -- 0 holds the header
	body        TEXT    NOT NULL, -- CSV lines, each ending in CRLF or LF as written
	PRIMARY KEY (merchant_id, bill_date, bill_type, part)
);
-- The daily job's progress through one day's merchants: every merchant with
-- num <= next_num has that day's bills; done_at is set once all have.
CREATE TABLE bill_days (
	bill_date TEXT   PRIMARY KEY,
	next_num  BIGINT NOT NULL DEFAULT 0,
	done_at   BIGINT NOT NULL DEFAULT 0
);
