-- Media with alt text and type (issue 18): the images or video a pending post shows, as
-- PendingPostCreated.media carries them ([{url, alt_text, mime_type}], in order), and those a
-- published post was given. media_urls stays for rows from before, which are read back as
-- media without alt text or type.
ALTER TABLE pending_posts
    ADD COLUMN media jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE posts
    ADD COLUMN media jsonb NOT NULL DEFAULT '[]'::jsonb;

UPDATE pending_posts
SET media = (SELECT jsonb_agg(jsonb_build_object('url', u, 'alt_text', NULL, 'mime_type', NULL) ORDER BY n)
             FROM unnest(media_urls) WITH ORDINALITY AS m(u, n))
WHERE cardinality(media_urls) > 0;
