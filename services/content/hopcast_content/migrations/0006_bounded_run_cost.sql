-- What a run costs content's database, bounded as history grows (bench/README.md, "Content's
-- database with history"; measured on 100,200 runs of history, 233,800 embeddings):
--
-- Angle statistics read each brand's scored, live posts from this index alone (an index-only
-- scan, brand by brand), where they read every post of every brand in the batch.
--
-- Building it holds writes to posts (about a second per 200,000 posts here). The migration waits
-- at most 5 s for its lock rather than queueing the service's traffic behind it; failed, it is
-- tried again on the next start (docs/runbooks/deploy-and-upgrade.md: on a large database,
-- create it CONCURRENTLY before the upgrade and this finds it).
SET LOCAL lock_timeout = '5s';
CREATE INDEX IF NOT EXISTS posts_angle_engagement ON posts (brand_profile_id, organization_id, angle)
    INCLUDE (engagement_rate) WHERE engagement_rate IS NOT NULL AND deleted_at IS NULL;
