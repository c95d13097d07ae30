-- Each trade timer's index holds only the trades it may move: unpaid trades
-- by when they close, shipped escrow trades by when they finish, paid
-- instant trades by when their refund window ends. Indexed by (status, due)
-- every trade had an entry in both indexes, and each change of status moved
-- both: a payment deleted two entries and inserted two. Now creating a trade
-- inserts one entry and paying it moves one (trade/timers.go's queries name
-- each index's status, so both databases use them).
DROP INDEX trades_close_due;
DROP INDEX trades_confirm_due;
CREATE INDEX trades_close_due ON trades (close_due) WHERE status = 'WAIT_BUYER_PAY';
CREATE INDEX trades_confirm_due ON trades (confirm_due) WHERE status = 'WAIT_BUYER_CONFIRM_GOODS';
CREATE INDEX trades_refund_window ON trades (confirm_due) WHERE status = 'TRADE_SUCCESS';
