-- gitauto queue, schema version 3: coalescing, retries, cancellation.
-- Job states: queued | running | succeeded | failed | skipped | cancelled | dead.

-- Jobs with one coalescing key have at most one queued job: a newer event replaces the
-- queued job's event in place. NULL: the job is never coalesced.
ALTER TABLE jobs ADD COLUMN coalesce_key TEXT;
-- Not claimable before this time (Unix ms): the backoff before a retry.
ALTER TABLE jobs ADD COLUMN not_before INTEGER;
-- Runs allowed in all (1 + retries); past it a retryable failure makes the job dead.
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
-- Set by a cancel request while the job runs; the worker stops at the next step.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX jobs_one_queued_per_coalesce_key ON jobs(coalesce_key)
    WHERE state = 'queued' AND coalesce_key IS NOT NULL;
CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL;

-- The deliveries a job carries: the one that queued it, and every one it absorbed
-- by coalescing, in order (the newest is the event it runs with).
CREATE TABLE job_deliveries (
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq),
    event_index  INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (job_id, delivery_seq, event_index)
);
CREATE INDEX job_deliveries_by_delivery ON job_deliveries(delivery_seq);
INSERT INTO job_deliveries (job_id, delivery_seq, event_index, at)
    SELECT id, delivery_seq, event_index, created_at FROM jobs;
