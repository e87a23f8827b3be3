-- Issue 13. The fencing-token floor lives in the system of record: a Redis that
-- restarts empty on a clock running behind must not issue tokens below ones Postgres
-- already accepted (it would refuse the re-claimed jobs until the clock caught up).
-- The floor is the largest lease_token of any job, found through this index, and of
-- any job deleted since (kept by the trigger below). The sweeper raises the queue's
-- token counter to it (Queue.raise_token_floor) before it re-enqueues lost jobs.
CREATE INDEX jobs_lease_token ON jobs (lease_token) WHERE lease_token IS NOT NULL;

CREATE TABLE token_floor (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    token    bigint NOT NULL DEFAULT 0
);
INSERT INTO token_floor (token) VALUES (0);

CREATE FUNCTION keep_token_floor() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE token_floor SET token = OLD.lease_token WHERE token < OLD.lease_token;
    RETURN OLD;
END
$$;

CREATE TRIGGER jobs_keep_token_floor AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.lease_token IS NOT NULL) EXECUTE FUNCTION keep_token_floor();

-- Retries of one job by its owner are capped (POST /api/jobs/{id}/retry).
ALTER TABLE jobs ADD COLUMN retries integer NOT NULL DEFAULT 0;
