-- Issue 10, retention. Uploads are deleted SOUNDCHECK_UPLOAD_RETENTION_DAYS after their
-- job ends, results SOUNDCHECK_RESULT_RETENTION_DAYS after (chalicelib/retention.py).
-- The row stays: `uploads_expired_at` says its uploads went, and a completed job whose
-- result went reads `expired` (error code `result_expired`), never a bare 404.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled', 'expired'));

ALTER TABLE jobs
    ADD COLUMN uploads_expired_at timestamptz,
    ADD COLUMN result_expired_at timestamptz;

-- The sweep's two questions: finished jobs whose uploads are still kept, oldest end first;
-- completed jobs (results kept), oldest end first.
CREATE INDEX jobs_uploads_kept ON jobs (completed_at)
    WHERE uploads_expired_at IS NULL AND status IN ('completed', 'failed', 'cancelled', 'expired');
CREATE INDEX jobs_results_kept ON jobs (completed_at) WHERE status = 'completed';

-- Is an upload still named by a job whose uploads are kept? (the sweep, the orphan pass)
CREATE INDEX jobs_file_key ON jobs (file_key) WHERE uploads_expired_at IS NULL;
CREATE INDEX jobs_reference_file_key ON jobs (reference_file_key)
    WHERE uploads_expired_at IS NULL AND reference_file_key IS NOT NULL;

-- The console's per-owner counts (migration 0006) count expired jobs too: a completed
-- job that expires moves from `completed` to `expired`, it does not vanish.
ALTER TABLE owner_usage ADD COLUMN expired integer NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION owner_usage_add(who text, state text, delta integer, seconds double precision)
    RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE owner_usage SET
        queued     = queued     + CASE WHEN state = 'queued'     THEN delta ELSE 0 END,
        processing = processing + CASE WHEN state = 'processing' THEN delta ELSE 0 END,
        completed  = completed  + CASE WHEN state = 'completed'  THEN delta ELSE 0 END,
        failed     = failed     + CASE WHEN state = 'failed'     THEN delta ELSE 0 END,
        cancelled  = cancelled  + CASE WHEN state = 'cancelled'  THEN delta ELSE 0 END,
        expired    = expired    + CASE WHEN state = 'expired'    THEN delta ELSE 0 END,
        audio_seconds = audio_seconds + seconds
    WHERE owner = who
$$;
