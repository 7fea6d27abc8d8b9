-- A post's pending post, looked up by it. PostPublished keeps the draft's embedding as the post's
-- only for the pending post's first post, and asks whether it has another post: without this
-- index an anti join that scanned every post when the answer was no, which it is for every first
-- post. On 100,000 runs of history (200,000 posts) the statement took 17.8 ms a call in the
-- bench (pg_stat_statements, 2,240 calls), the most of content's database time by far.
--
-- Building it holds writes to posts (about a second per 200,000 posts here). The migration waits
-- at most 5 s for its lock rather than queueing the service's traffic behind it; failed, it is
-- tried again on the next start (docs/runbooks/deploy-and-upgrade.md: on a large database,
-- create it CONCURRENTLY before the upgrade and this finds it).
SET LOCAL lock_timeout = '5s';
CREATE INDEX IF NOT EXISTS posts_pending_post ON posts (pending_post_id);
