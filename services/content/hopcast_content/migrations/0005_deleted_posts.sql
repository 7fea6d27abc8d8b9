-- Content's copy of a post can be soft-deleted (issue 22: PostDeleted / PostRestored): a
-- deleted post stops counting for weighted selection (a material's engagement) and angle
-- learning (an angle's engagement) until restored, and is purged after the retention.
ALTER TABLE posts
    ADD COLUMN deleted_at timestamptz;
