-- Issue 10. API keys carry a role (existing keys become `user`), may expire and
-- may be revoked; a revoked or expired key reads as unknown.
ALTER TABLE api_keys
    ADD COLUMN role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN revoked_at timestamptz;

-- Status `cancelled` joins the lifecycle (DELETE /api/jobs/{id} on an unfinished job).
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled'));

-- Every admin action: who (the admin's owner id), what, when, on what.
CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_at ON audit (at DESC, id DESC);
