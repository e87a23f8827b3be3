-- Stalls and failures are counted in Postgres, the system of record, beside attempts: a
-- Redis that restarts empty (FLUSHALL, a failover) must not hand a job a fresh set of tries.
-- A stall is a delivery that never reported back: its consumer died, lost its lease,
-- was stopped, or ran past SOUNDCHECK_MAX_JOB_SECONDS. A failure is one that reported an
-- error (SOUNDCHECK_MAX_ATTEMPTS caps them).
ALTER TABLE jobs ADD COLUMN stalls integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN failures integer NOT NULL DEFAULT 0;
