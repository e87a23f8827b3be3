-- Issue 10. Per-job callbacks: on completed/failed, a signed JSON event is POSTed to the
-- job's callbackUrl, retried with backoff. Postgres holds every delivery's state (an outbox),
-- so a consumer that dies or a Redis that forgets everything loses no event.
ALTER TABLE jobs ADD COLUMN callback_url text;

-- One signing secret per owner (HMAC-SHA256 needs the secret itself, not a digest).
-- After a rotation the previous secret signs too until previous_until, so receivers
-- can switch without dropping events.
CREATE TABLE webhook_secrets (
    owner          text PRIMARY KEY,
    secret         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    previous_secret text,
    previous_until timestamptz
);

-- One row per event (its id is the event id receivers dedupe on). `attempts` counts
-- claims: a deliverer that dies mid-send still used an attempt, and its lease
-- (next_attempt_at pushed ahead at claim time) runs out so another one sends again.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    owner           text NOT NULL,
    url             text NOT NULL,
    event_type      text NOT NULL CHECK (event_type IN ('job.completed', 'job.failed')),
    data            jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at DESC);

-- The event is written by the very transaction that makes the job final (whichever
-- path does it: a result, a final failure, a stall, the sweeper), so it exists exactly
-- when the final state has committed, never before, and never without it.
CREATE FUNCTION queue_job_webhook() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, job_id, owner, url, event_type, data)
    VALUES (
        gen_random_uuid(), NEW.id, NEW.owner, NEW.callback_url, 'job.' || NEW.status,
        jsonb_build_object(
            'jobId', NEW.id,
            'status', NEW.status,
            'mode', NEW.mode,
            'genre', NEW.genre,
            'fileName', NEW.file_name,
            'attempts', NEW.attempts,
            'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'completedAt', to_char(NEW.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'score', NEW.result #> '{comparison,score}',
            'error', CASE WHEN NEW.error_code IS NULL THEN NULL
                     ELSE jsonb_build_object('code', NEW.error_code, 'message', NEW.error_message)
                     END
        )
    );
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_queue_webhook AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL AND NEW.status IN ('completed', 'failed')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION queue_job_webhook();
