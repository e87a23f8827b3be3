-- Jobs: Postgres is the truth about every job; Redis only says what to run next.
CREATE TABLE jobs (
    id                 uuid PRIMARY KEY,
    owner              text NOT NULL,
    mode               text NOT NULL CHECK (mode IN ('genre', 'reference')),
    genre              text,
    file_key           text NOT NULL,
    file_name          text,
    reference_file_key text,
    reference_job_id   uuid,
    priority           integer NOT NULL DEFAULT 0,
    status             text NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    progress           smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    attempts           integer NOT NULL DEFAULT 0,
    lease_token        bigint,
    error_code         text,
    error_message      text,
    result             jsonb,
    idempotency_key    text,
    request_hash       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    CONSTRAINT jobs_owner_idempotency_key UNIQUE (owner, idempotency_key)
);

-- GET /api/jobs: an owner's jobs, newest first, optionally by status.
CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, id DESC);

-- The sweeper's reconcile: unfinished jobs that have not moved for a while.
CREATE INDEX jobs_unfinished_updated ON jobs (updated_at)
    WHERE status IN ('queued', 'processing');

-- API keys: only the sha256 of a key is stored.
CREATE TABLE api_keys (
    key_hash   text PRIMARY KEY,
    owner      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_owner ON api_keys (owner);
