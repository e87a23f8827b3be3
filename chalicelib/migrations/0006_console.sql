-- Issue 10, the admin console: what it lists and counts, kept bounded.
--
-- One trigger (`jobs_console`) keeps three derived tables in the same transaction as
-- every change of a job's row, whichever code path makes it (submit, consumer, sweeper,
-- reconcile, retry, cancel, delete): per-owner counts (`owner_usage`), hourly metrics
-- (`job_metrics`) and each job's deliveries (`job_attempts`). Nothing the console reads
-- scans all jobs.

-- Who holds a processing job (the consumer of its current claim), and when a job put off
-- by a retry's backoff may run again (NULL: now). Postgres tells `waiting` from `delayed`
-- without Redis, which may have forgotten everything.
ALTER TABLE jobs ADD COLUMN consumer text;
ALTER TABLE jobs ADD COLUMN run_after timestamptz;

-- GET /api/admin/jobs: all, by state or by error code, newest first, keyset paged
-- (by owner: jobs_owner_created, migration 0001).
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_error_created ON jobs (error_code, created_at DESC, id DESC)
    WHERE error_code IS NOT NULL;

-- Per-owner usage: one row per owner, its jobs per status (deleted jobs leave), the
-- audio seconds its completed jobs analysed (kept when a job is deleted: usage is usage)
-- and its last submission. The overview's counts are the sums over owners.
CREATE TABLE owner_usage (
    owner             text PRIMARY KEY,
    queued            integer NOT NULL DEFAULT 0,
    processing        integer NOT NULL DEFAULT 0,
    completed         integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    cancelled         integer NOT NULL DEFAULT 0,
    audio_seconds     double precision NOT NULL DEFAULT 0,
    last_submitted_at timestamptz
);

INSERT INTO owner_usage (owner, queued, processing, completed, failed, cancelled,
                         audio_seconds, last_submitted_at)
SELECT owner,
       count(*) FILTER (WHERE status = 'queued'),
       count(*) FILTER (WHERE status = 'processing'),
       count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'cancelled'),
       COALESCE(sum((result -> 'file' ->> 'durationSeconds')::double precision)
                FILTER (WHERE status = 'completed'
                        AND jsonb_typeof(result -> 'file' -> 'durationSeconds') = 'number'), 0),
       max(created_at)
FROM jobs GROUP BY owner;

-- Hourly metrics, four shards per hour (completions of one hour do not queue on one row
-- lock): completions, final failures, retries (a failed delivery that will run again),
-- starts, and a histogram of queue waits. Bin b (1-based) counts starts whose wait
-- (from the job's last becoming queued to its start; a retry's backoff included) was in
-- [2^((b-1)/4), 2^(b/4)) ms; bin 1 also holds waits under 1 ms, bin 120 everything past
-- ~9 days. Rows older than 48 hours are pruned when an hour's first row is made.
CREATE TABLE job_metrics (
    bucket    timestamptz NOT NULL,
    shard     smallint NOT NULL,
    completed integer NOT NULL DEFAULT 0,
    failed    integer NOT NULL DEFAULT 0,
    retried   integer NOT NULL DEFAULT 0,
    started   integer NOT NULL DEFAULT 0,
    wait_bins integer[] NOT NULL DEFAULT array_fill(0, ARRAY[120]),
    PRIMARY KEY (bucket, shard)
);

-- Each delivery of a job that reached Postgres (a claim that started it): which
-- consumer, when, how it ended. The last 20 per job are kept; they go with the job.
CREATE TABLE job_attempts (
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    token         bigint NOT NULL,
    attempt       integer NOT NULL,
    run           integer NOT NULL DEFAULT 0,  -- jobs.retries then: 0 until a job is retried
    consumer      text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    outcome       text CHECK (outcome IN ('completed', 'failed', 'stalled', 'cancelled')),
    error_code    text,
    error_message text,
    PRIMARY KEY (job_id, token)
);

CREATE FUNCTION owner_usage_add(who text, state text, delta integer, seconds double precision)
    RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE owner_usage SET
        queued     = queued     + CASE WHEN state = 'queued'     THEN delta ELSE 0 END,
        processing = processing + CASE WHEN state = 'processing' THEN delta ELSE 0 END,
        completed  = completed  + CASE WHEN state = 'completed'  THEN delta ELSE 0 END,
        failed     = failed     + CASE WHEN state = 'failed'     THEN delta ELSE 0 END,
        cancelled  = cancelled  + CASE WHEN state = 'cancelled'  THEN delta ELSE 0 END,
        audio_seconds = audio_seconds + seconds
    WHERE owner = who
$$;

-- This hour's metrics row of a job's shard (made if missing; making one prunes old rows).
CREATE FUNCTION job_metrics_row(job uuid) RETURNS smallint
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    part smallint := (hashtext(job::text) & 3)::smallint;
    made integer;
BEGIN
    INSERT INTO job_metrics (bucket, shard) VALUES (date_trunc('hour', now()), part)
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS made = ROW_COUNT;
    IF made > 0 THEN
        DELETE FROM job_metrics WHERE bucket < now() - interval '48 hours';
    END IF;
    RETURN part;
END
$$;

CREATE FUNCTION jobs_console() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    part smallint;
    seconds double precision := 0;
    ended text;
    wait_ms double precision;
    bin integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO owner_usage AS u (owner, last_submitted_at)
            VALUES (NEW.owner, NEW.created_at)
            ON CONFLICT (owner) DO UPDATE
            SET last_submitted_at = GREATEST(u.last_submitted_at, EXCLUDED.last_submitted_at);
        PERFORM owner_usage_add(NEW.owner, NEW.status, 1, 0);
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM owner_usage_add(OLD.owner, OLD.status, -1, 0);
        RETURN NULL;
    END IF;

    -- usage and metrics: a change of status
    IF OLD.status IS DISTINCT FROM NEW.status THEN
        IF NEW.status = 'completed'
           AND jsonb_typeof(NEW.result -> 'file' -> 'durationSeconds') = 'number' THEN
            seconds := (NEW.result -> 'file' ->> 'durationSeconds')::double precision;
        END IF;
        PERFORM owner_usage_add(OLD.owner, OLD.status, -1, 0);
        PERFORM owner_usage_add(NEW.owner, NEW.status, 1, seconds);
        IF NEW.status IN ('completed', 'failed')
           OR (NEW.status = 'queued' AND NEW.failures > OLD.failures) THEN
            part := job_metrics_row(NEW.id);
            UPDATE job_metrics SET
                completed = completed + (NEW.status = 'completed')::integer,
                failed    = failed + (NEW.status = 'failed')::integer,
                retried   = retried + (NEW.status = 'queued')::integer
            WHERE bucket = date_trunc('hour', now()) AND shard = part;
        END IF;
    END IF;

    -- attempts: the current delivery ends (or a newer claim takes the job over)
    IF OLD.status = 'processing' AND OLD.lease_token IS NOT NULL
       AND (NEW.status <> 'processing' OR NEW.lease_token IS DISTINCT FROM OLD.lease_token) THEN
        ended := CASE
            WHEN NEW.status = 'completed' THEN 'completed'
            WHEN NEW.status = 'cancelled' THEN 'cancelled'
            WHEN NEW.status = 'processing' THEN 'stalled'  -- it never reported back
            WHEN NEW.stalls > OLD.stalls THEN 'stalled'
            WHEN NEW.error_code IN ('stalled', 'processing_timeout') THEN 'stalled'
            ELSE 'failed'
        END;
        UPDATE job_attempts SET ended_at = now(), outcome = ended,
            error_code = CASE WHEN ended IN ('failed', 'stalled') THEN NEW.error_code END,
            error_message = CASE WHEN ended IN ('failed', 'stalled') THEN NEW.error_message END
        WHERE job_id = OLD.id AND token = OLD.lease_token AND ended_at IS NULL;
        IF ended = 'stalled' AND NEW.status = 'processing' THEN
            UPDATE job_attempts SET error_code = 'stalled',
                error_message = 'the consumer never reported back; a newer claim took the job'
            WHERE job_id = OLD.id AND token = OLD.lease_token;
        END IF;
    END IF;

    -- a delivery starts: its attempt row, and the queue wait it ends
    IF NEW.status = 'processing' AND NEW.lease_token IS NOT NULL
       AND (OLD.status <> 'processing' OR NEW.lease_token IS DISTINCT FROM OLD.lease_token) THEN
        INSERT INTO job_attempts (job_id, token, attempt, run, consumer)
            VALUES (NEW.id, NEW.lease_token, NEW.attempts, NEW.retries, NEW.consumer)
            ON CONFLICT DO NOTHING;
        DELETE FROM job_attempts WHERE job_id = NEW.id AND token < (
            SELECT token FROM job_attempts WHERE job_id = NEW.id
            ORDER BY token DESC OFFSET 19 LIMIT 1);
        IF OLD.status = 'queued' THEN
            wait_ms := GREATEST(1, extract(epoch FROM now() - OLD.updated_at) * 1000);
            bin := LEAST(120, GREATEST(1, floor(4 * ln(wait_ms) / ln(2))::integer + 1));
            part := job_metrics_row(NEW.id);
            UPDATE job_metrics SET started = started + 1, wait_bins[bin] = wait_bins[bin] + 1
            WHERE bucket = date_trunc('hour', now()) AND shard = part;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_console_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_console();
CREATE TRIGGER jobs_console_update AFTER UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.lease_token IS DISTINCT FROM NEW.lease_token)
    EXECUTE FUNCTION jobs_console();
CREATE TRIGGER jobs_console_delete AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_console();
