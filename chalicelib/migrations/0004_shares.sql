-- Share links: a read-only, expiring, revocable view of one job's report.
-- Only the sha256 of a share token is stored (like API keys): a database dump
-- hands out no working link.
CREATE TABLE shares (
    id          uuid PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    owner       text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX shares_job ON shares (job_id, created_at DESC);
