-- Version 0025 is SQLite's history indexes by run (sqlite/migrations). On
-- PostgreSQL the indexes by (account, seq) stay: its history costs no more
-- as it grows (BENCHMARKS.md). This file keeps the version taken on both
-- stores, so that the next shared migration takes another number.
SELECT 1;
