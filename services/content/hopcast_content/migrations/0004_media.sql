-- Media with alt text and type (issue 18): a material's images or videos, and the ones a draft
-- uses, as [{url, alt_text, mime_type}] in order; the platforms a draft leaves out, with why
-- ([{platform, reason}], PendingPostCreated.platforms_left_out). media_urls stays, the URLs of
-- media (what older code and reads know); rows from before are read back as media without
-- alt text or type.
ALTER TABLE materials
    ADD COLUMN media jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE pending_posts
    ADD COLUMN media jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN platforms_left_out jsonb NOT NULL DEFAULT '[]'::jsonb;

UPDATE materials
SET media = (SELECT jsonb_agg(jsonb_build_object('url', u, 'alt_text', NULL, 'mime_type', NULL) ORDER BY n)
             FROM unnest(media_urls) WITH ORDINALITY AS m(u, n))
WHERE cardinality(media_urls) > 0;
UPDATE pending_posts
SET media = (SELECT jsonb_agg(jsonb_build_object('url', u, 'alt_text', NULL, 'mime_type', NULL) ORDER BY n)
             FROM unnest(media_urls) WITH ORDINALITY AS m(u, n))
WHERE cardinality(media_urls) > 0;
