-- gitauto queue on PostgreSQL, schema version 4: as the SQLite file's version 7
-- (schema_v7.sql): flow control.
ALTER TABLE jobs ADD COLUMN concurrency BIGINT;
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN slot BIGINT;
-- At most `concurrency` jobs of a rule run at once, across every daemon: a second claim
-- of one of the rule's places fails, as a second claim of a key does.
CREATE UNIQUE INDEX jobs_one_running_per_slot ON jobs(rule, slot) WHERE state = 'running' AND slot IS NOT NULL;
CREATE INDEX jobs_by_rule ON jobs(rule, state);
CREATE INDEX jobs_claim_order ON jobs(priority DESC, id) WHERE state = 'queued';

CREATE TABLE paused_rules (
    rule      TEXT   PRIMARY KEY,
    paused_at BIGINT NOT NULL,
    node      TEXT   NOT NULL
);
