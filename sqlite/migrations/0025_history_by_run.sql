-- An account's history is indexed by run of 131,072 transfers (seq >> 17),
-- then account, then seq, rather than by account then seq. Every transfer
-- adds an entry to both indexes; by account first, each entry lands at a
-- random place in an index that grows with the history, so with millions
-- of accounts almost every entry costs a page read into the cache and a
-- page written to the WAL. By run first, all new entries go to the newest
-- run's part of each index, which stays small and in the cache; older runs
-- are never written again. A history read seeks once per run it covers,
-- newest first (package sqlite, history.go). Go code names the run width
-- as historyRunShift; the two must agree, which a test checks.
DROP INDEX transfers_debit;
DROP INDEX transfers_credit;
CREATE INDEX transfers_debit ON transfers ((seq >> 17), debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers ((seq >> 17), credit_account_id, seq);
