-- What each angle earned for a brand, kept as running totals (bench/README.md, "Content's
-- database with history"): the angle statistics a run reads were an aggregate over every scored,
-- live post the brand ever made (posts_angle_engagement, migration 0006), a cost that grew
-- without end with history (20,000 posts a brand on the bench's 1,000,000 runs of history).
-- Now a run reads one row per brand and angle.
--
-- The totals are what the aggregate was, kept by triggers on posts: a post counts while it has
-- an engagement rate and is not deleted, and every insert, update and delete of a post moves
-- its angle's totals by what it added or took away. `total` and `squares` are numeric: a rate
-- is taken at float8's 15 significant digits (its conversion to numeric), and from there adding
-- and taking it away cancel exactly, so the totals never drift as a float sum would. The mean is
-- total / n and the population variance (n * squares - total^2) / n^2, within about 1e-15 of
-- the aggregate's.
--
-- Creating the triggers locks posts against writes until the migration commits, so the totals
-- are filled from the posts that are there and no write falls between. The migration waits at
-- most 5 s for that lock rather than queueing the service's traffic behind it; failed, it is
-- tried again on the next start.
SET LOCAL lock_timeout = '5s';

CREATE TABLE angle_totals (
    brand_profile_id  uuid    NOT NULL,
    organization_id   uuid    NOT NULL,
    angle             text    NOT NULL,
    n                 bigint  NOT NULL,  -- posts counted
    total             numeric NOT NULL,  -- the sum of their engagement rates
    squares           numeric NOT NULL,  -- the sum of their squares
    PRIMARY KEY (brand_profile_id, organization_id, angle)
);

-- Adds one post's part (sign 1) or takes it away (sign -1).
CREATE FUNCTION angle_totals_add(brand uuid, org uuid, angle_name text, sign integer, rate double precision)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO angle_totals AS t (brand_profile_id, organization_id, angle, n, total, squares)
    VALUES (brand, org, angle_name, sign, sign * rate::numeric, sign * rate::numeric * rate::numeric)
    ON CONFLICT (brand_profile_id, organization_id, angle) DO UPDATE
    SET n = t.n + EXCLUDED.n, total = t.total + EXCLUDED.total, squares = t.squares + EXCLUDED.squares
$$;

CREATE FUNCTION posts_angle_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.engagement_rate IS NOT NULL AND OLD.deleted_at IS NULL THEN
        PERFORM angle_totals_add(OLD.brand_profile_id, OLD.organization_id, OLD.angle, -1, OLD.engagement_rate);
    END IF;
    IF NEW.engagement_rate IS NOT NULL AND NEW.deleted_at IS NULL THEN
        PERFORM angle_totals_add(NEW.brand_profile_id, NEW.organization_id, NEW.angle, 1, NEW.engagement_rate);
    END IF;
    RETURN NULL;
END
$$;

-- A delete takes its posts away once per statement, grouped by brand and angle: the purge deletes
-- a gone organization's posts in one statement, and a row trigger would update each angle's row
-- once per post, in a transaction that keeps every version of the row until it ends.
CREATE FUNCTION posts_angle_totals_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO angle_totals AS t (brand_profile_id, organization_id, angle, n, total, squares)
    SELECT brand_profile_id, organization_id, angle, -count(*), -sum(engagement_rate::numeric),
           -sum(engagement_rate::numeric * engagement_rate::numeric)
    FROM gone
    WHERE engagement_rate IS NOT NULL AND deleted_at IS NULL
    GROUP BY brand_profile_id, organization_id, angle
    ON CONFLICT (brand_profile_id, organization_id, angle) DO UPDATE
    SET n = t.n + EXCLUDED.n, total = t.total + EXCLUDED.total, squares = t.squares + EXCLUDED.squares;
    RETURN NULL;
END
$$;

-- Each row trigger fires only where a post's part can change: a PostPublished (no rate yet)
-- fires none.
CREATE TRIGGER posts_angle_totals_insert AFTER INSERT ON posts FOR EACH ROW
    WHEN (NEW.engagement_rate IS NOT NULL AND NEW.deleted_at IS NULL)
    EXECUTE FUNCTION posts_angle_totals();
CREATE TRIGGER posts_angle_totals_update
    AFTER UPDATE OF engagement_rate, deleted_at, angle, brand_profile_id, organization_id ON posts FOR EACH ROW
    WHEN (((OLD.engagement_rate IS NOT NULL AND OLD.deleted_at IS NULL)
           OR (NEW.engagement_rate IS NOT NULL AND NEW.deleted_at IS NULL))
          AND (OLD.engagement_rate IS DISTINCT FROM NEW.engagement_rate
               OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
               OR OLD.angle <> NEW.angle
               OR OLD.brand_profile_id <> NEW.brand_profile_id
               OR OLD.organization_id <> NEW.organization_id))
    EXECUTE FUNCTION posts_angle_totals();
CREATE TRIGGER posts_angle_totals_delete AFTER DELETE ON posts REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION posts_angle_totals_deleted();

CREATE FUNCTION posts_angle_totals_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM angle_totals;
    RETURN NULL;
END
$$;
CREATE TRIGGER posts_angle_totals_truncate AFTER TRUNCATE ON posts FOR EACH STATEMENT
    EXECUTE FUNCTION posts_angle_totals_truncated();

-- The totals made again from the posts: what they must equal at any time. The migration fills
-- them so; a bulk load with the triggers off (bench/history.py) calls it after. It holds writes
-- to posts until its transaction ends, so that none falls between the two.
CREATE FUNCTION angle_totals_rebuild() RETURNS void LANGUAGE sql AS $$
    LOCK TABLE posts IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM angle_totals;
    INSERT INTO angle_totals (brand_profile_id, organization_id, angle, n, total, squares)
    SELECT brand_profile_id, organization_id, angle, count(*), sum(engagement_rate::numeric),
           sum(engagement_rate::numeric * engagement_rate::numeric)
    FROM posts
    WHERE engagement_rate IS NOT NULL AND deleted_at IS NULL
    GROUP BY brand_profile_id, organization_id, angle;
$$;
SELECT angle_totals_rebuild();

-- posts_angle_engagement (0006) is read no more, but the pods of the release before still read it
-- while a rollout replaces them, and dropping it here would wait for every reader of posts. It
-- is dropped CONCURRENTLY once they are gone (docs/runbooks/deploy-and-upgrade.md).
