-- The sequence of a trade's last notification, kept on the trade's row: a
-- move reads it with the row it locks and writes the next one with the
-- row, so enqueuing a notification costs no read of the outbox. The
-- outbox's unique (trade_no, sequence) index still refuses a number given
-- twice.
ALTER TABLE trades ADD COLUMN notify_seq BIGINT NOT NULL DEFAULT 0;
UPDATE trades SET notify_seq = (SELECT COALESCE(MAX(n.sequence), 0) FROM notifications n
	WHERE n.trade_no = trades.trade_no AND n.trade_no <> '');
