-- gitauto queue, schema version 4: nodes (the daemons sharing the store) and where each
-- job runs.

CREATE TABLE nodes (
    name         TEXT    PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at   INTEGER,                   -- set by a clean stop; NULL while serving
    version      TEXT    NOT NULL,
    workers      INTEGER NOT NULL
);

-- The node that must run the job (`run_on = "every"` or a list of nodes); NULL: any node.
ALTER TABLE jobs ADD COLUMN node TEXT;
-- The node that claimed it last.
ALTER TABLE jobs ADD COLUMN ran_on TEXT;
-- While running: the node's heartbeats extend this; past it, any node queues the job again.
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
