-- gitauto queue, schema version 7: flow control.

-- The rule's `concurrency` (NULL: no limit) and `priority` as of the config that queued
-- the job, or of the latest config load or reload, which gives them to queued jobs.
ALTER TABLE jobs ADD COLUMN concurrency INTEGER;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- While running under a `concurrency` limit: which of the rule's places (0 to the limit
-- less one) the job holds. Two claims of one place fail here, however many daemons race.
ALTER TABLE jobs ADD COLUMN slot INTEGER;
CREATE UNIQUE INDEX jobs_one_running_per_slot ON jobs(rule, slot) WHERE state = 'running' AND slot IS NOT NULL;
CREATE INDEX jobs_by_rule ON jobs(rule, state);
CREATE INDEX jobs_claim_order ON jobs(priority DESC, id) WHERE state = 'queued';

-- Paused rules (`gitauto pause RULE`): their jobs are queued, never claimed, until
-- `gitauto resume RULE` removes the row. In the queue, not the config: it outlives
-- restarts and reloads, and every daemon sharing the queue sees it.
CREATE TABLE paused_rules (
    rule      TEXT    PRIMARY KEY,
    paused_at INTEGER NOT NULL,
    node      TEXT    NOT NULL          -- the node whose API paused it
);
