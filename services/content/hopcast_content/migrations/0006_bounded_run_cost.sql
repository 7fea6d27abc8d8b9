-- What a run costs content's database, bounded as history grows (bench/README.md, "Content's
-- database with history"; measured on 100,200 runs of history, 233,800 embeddings):
--
-- Angle statistics read each brand's scored, live posts from this index alone (an index-only
-- scan, brand by brand), where they read every post of every brand in the batch.
CREATE INDEX posts_angle_engagement ON posts (brand_profile_id, organization_id, angle)
    INCLUDE (engagement_rate) WHERE engagement_rate IS NOT NULL AND deleted_at IS NULL;
