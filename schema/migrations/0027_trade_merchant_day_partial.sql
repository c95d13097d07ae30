-- trades_merchant_day serves a merchant's list and bill, by time. On a table
-- PostgreSQL has no statistics of yet (a new database, where prepared
-- statements cache their plans), its planner costs it and the unique index
-- (merchant_id, out_trade_no) alike for a look-up by out_trade_no, and may
-- cache a plan that reads every trade of the merchant for each look-up. As a
-- partial index it is a candidate only for the queries that state its
-- predicate, which every trade meets (created_at is the creation's Unix
-- time in nanoseconds): the list's and the bill's do.
DROP INDEX trades_merchant_day;
CREATE INDEX trades_merchant_day ON trades (merchant_id, created_at) WHERE created_at > 0;
