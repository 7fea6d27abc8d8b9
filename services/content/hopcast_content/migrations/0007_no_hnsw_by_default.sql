-- No HNSW index over every embedding. Each run inserts one or two embeddings, and each insert
-- searched the graph: about 2.25 ms of the server's CPU with the index against 0.13-0.25 ms
-- without at 233,800 rows (and growing with history), while the duplicate check reads the index
-- only for an organization whose 30-day window holds more than CONTENT_DEDUP_EXACT_MAX_ROWS
-- (5,000) rows. Below that (every organization of the bench) the check is the exact scan of the
-- window, unchanged; above it, without the index, the same query is an exact scan of the window
-- too (exact answers, about 4.5 us a row). A deployment with such organizations creates the
-- index again (hopcast_content.adapters.dedup.HNSW_INDEX, see the service's README and the
-- upgrade runbook): the check then uses it.
--
-- Dropping takes the table's exclusive lock: waited for at most 5 s (then tried again on the next
-- start), so the service's traffic does not queue behind a long transaction.
SET LOCAL lock_timeout = '5s';
DROP INDEX IF EXISTS content_embeddings_hnsw;
