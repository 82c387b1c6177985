-- gitauto queue, schema version 10: reports to the forge. `jobs.report` is the rule's
-- `report` when the job was queued (`status` or `check`; NULL: none). Each transition of
-- such a job adds a row to `report_outbox` in the transaction that makes it (queued,
-- running, an end, a commit superseded by coalescing), with the commit and repository it
-- is about; the reporter sends each job's rows in order and marks them done (sent, or
-- refused with the forge's message, or given up). `report_checks` keeps the GitHub check
-- run each job's attempt has on a commit, so later rows update the same run.
ALTER TABLE jobs ADD COLUMN report TEXT;
CREATE TABLE report_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    attempt      INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    repo         TEXT    NOT NULL,
    sha          TEXT    NOT NULL,
    installation INTEGER,
    rule         TEXT    NOT NULL,
    summary      TEXT,
    superseded_by INTEGER,
    created_at   INTEGER NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL DEFAULT 0,
    claimed_by   TEXT,
    claim_until  INTEGER,
    done_at      INTEGER,
    outcome      TEXT
);
CREATE INDEX report_outbox_unsent ON report_outbox (job_id, id) WHERE done_at IS NULL;
CREATE INDEX report_outbox_commit ON report_outbox (source, repo, sha);
CREATE TABLE report_checks (
    job_id  INTEGER NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    sha     TEXT    NOT NULL,
    run_id  INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, sha)
);
