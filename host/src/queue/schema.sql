-- gitauto queue, schema version 1. Times are Unix milliseconds (UTC).

-- Every verified delivery, whatever became of it.
CREATE TABLE deliveries (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL,          -- the forge's delivery id, or a generated one
    source       TEXT    NOT NULL,          -- [sources.NAME]
    forge        TEXT    NOT NULL,
    event        TEXT,                      -- the forge's event name (header)
    received_at  INTEGER NOT NULL,
    headers      TEXT    NOT NULL,          -- JSON object; signatures and tokens removed
    body         BLOB    NOT NULL,          -- exactly as received
    verdict      TEXT    NOT NULL,          -- queued | unmatched | ignored | ping | duplicate
    reason       TEXT,                      -- why unmatched / ignored
    normalised   TEXT,                      -- the normalised event, JSON, without payload
    explain      TEXT,                      -- JSON list of rule verdicts
    duplicate_of INTEGER REFERENCES deliveries(seq)
);
-- A delivery id is accepted once per source; duplicates are recorded beside it.
CREATE UNIQUE INDEX deliveries_unique_id ON deliveries(source, id) WHERE verdict <> 'duplicate';

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq),
    rule         TEXT    NOT NULL,
    key          TEXT    NOT NULL,          -- jobs with one key never run at once
    repo         TEXT    NOT NULL,
    git_ref      TEXT,
    state        TEXT    NOT NULL,          -- queued | running | succeeded | failed | skipped
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    summary      TEXT,
    error        TEXT
);
CREATE INDEX jobs_by_state ON jobs(state, id);
CREATE INDEX jobs_by_key ON jobs(key, state);
CREATE INDEX jobs_by_delivery ON jobs(delivery_seq);

CREATE TABLE steps (
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    idx          INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    plugin       TEXT    NOT NULL,
    status       TEXT    NOT NULL,          -- success | failure | skipped | error
    summary      TEXT    NOT NULL,
    output       TEXT,                      -- JSON
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, idx)
);

CREATE TABLE logs (
    seq          INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    attempt      INTEGER NOT NULL,
    step         TEXT,                      -- step name; NULL for the job itself
    at           INTEGER NOT NULL,
    level        TEXT    NOT NULL,
    message      TEXT    NOT NULL
);
CREATE INDEX logs_by_job ON logs(job_id, seq);
