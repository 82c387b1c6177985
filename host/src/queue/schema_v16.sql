-- Version 16: what the dashboard shows and charts.
-- A delivery's repository and ref (its first event's), for the delivery list's filter
-- and columns without reading each row's normalised events; its trace context (a W3C
-- `traceparent`) when telemetry is on, so that the jobs it queues continue its trace.
ALTER TABLE deliveries ADD COLUMN repo TEXT;
ALTER TABLE deliveries ADD COLUMN git_ref TEXT;
ALTER TABLE deliveries ADD COLUMN trace TEXT;
CREATE INDEX deliveries_by_repo ON deliveries(repo, seq) WHERE repo IS NOT NULL;
-- Charts count deliveries, finished jobs and steps by time: each index holds what its
-- chart reads, so a chart reads the index alone.
CREATE INDEX deliveries_by_time ON deliveries(received_at, verdict);
CREATE INDEX jobs_finished_by_rule ON jobs(finished_at, rule, state) WHERE finished_at IS NOT NULL;
CREATE INDEX steps_by_finish ON steps(finished_at, plugin, started_at);
-- Each step's resource bill (JSON: wall and CPU time, peak memory, epoch ticks, host
-- calls per capability).
ALTER TABLE steps ADD COLUMN bill TEXT;
-- The queue's depth, sampled once a minute (by whichever node writes first).
CREATE TABLE queue_samples (
    at       INTEGER PRIMARY KEY,            -- the minute, Unix milliseconds
    queued   INTEGER NOT NULL,
    running  INTEGER NOT NULL,
    waiting  INTEGER NOT NULL
);
