-- Identity and idempotency additions. An Idempotency-Key replay answers with
-- the first response's content type as well as its status and body.
ALTER TABLE idempotency_keys ADD COLUMN content_type TEXT NOT NULL DEFAULT '';
