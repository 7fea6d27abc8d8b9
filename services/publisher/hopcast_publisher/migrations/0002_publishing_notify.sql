-- Wake the publishing loop when a pending post starts publishing: NOTIFY is delivered when
-- the transaction commits, so the loop never looks before the attempts are visible.
CREATE FUNCTION pending_post_publishing_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hopcast_publisher_publish', '');
    RETURN NULL;
END $$;

CREATE TRIGGER pending_post_publishing_notify AFTER UPDATE OF status ON pending_posts
    FOR EACH ROW WHEN (NEW.status = 'PUBLISHING' AND OLD.status IS DISTINCT FROM 'PUBLISHING')
    EXECUTE FUNCTION pending_post_publishing_notify();
