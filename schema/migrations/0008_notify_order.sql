-- Notifications in order, and bounded per destination. trade_no and
-- sequence number a trade's notifications 1, 2, 3…, assigned in the
-- transaction of the status change (the trade row is locked there), so the
-- numbers have no gaps; the delivery worker starts a trade's next first
-- attempt only after the previous first attempt finished. destination is
-- the host:port of url, by which concurrent deliveries to one place are
-- bounded. Rows written before this migration keep trade_no '' and are
-- not ordered.
ALTER TABLE notifications ADD COLUMN trade_no TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN destination TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX notifications_trade_sequence ON notifications (trade_no, sequence) WHERE trade_no <> '';
