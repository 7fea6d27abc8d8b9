-- Token freshness and account health (issue 16).
-- tokens_issued_at: when the stored pair was issued (SocialAccountConnected/Updated's
-- tokens_issued_at, or the publisher's own refresh); a pair older than it never replaces it.
-- needs_reauth: why refreshing failed for good (REFRESH_REJECTED, REVOKED, UNAUTHORIZED), null
-- while the account is healthy; such an account is not used until a newer pair arrives.
ALTER TABLE social_accounts
    ADD COLUMN tokens_issued_at   timestamptz,
    ADD COLUMN needs_reauth       text CHECK (needs_reauth IN ('REFRESH_REJECTED', 'REVOKED', 'UNAUTHORIZED')),
    ADD COLUMN needs_reauth_since timestamptz;
