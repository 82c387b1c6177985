-- gitauto queue on PostgreSQL, schema version 7: reports to the forge, as the SQLite
-- file's version 10 (schema_v10.sql).
ALTER TABLE jobs ADD COLUMN report TEXT;
CREATE TABLE report_outbox (
    id            BIGSERIAL PRIMARY KEY,
    job_id        BIGINT NOT NULL REFERENCES jobs(id),
    attempt       BIGINT NOT NULL,
    state         TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    source        TEXT   NOT NULL,
    repo          TEXT   NOT NULL,
    sha           TEXT   NOT NULL,
    installation  BIGINT,
    rule          TEXT   NOT NULL,
    summary       TEXT,
    superseded_by BIGINT,
    created_at    BIGINT NOT NULL,
    tries         BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claim_until   BIGINT,
    done_at       BIGINT,
    outcome       TEXT
);
CREATE INDEX report_outbox_unsent ON report_outbox (job_id, id) WHERE done_at IS NULL;
CREATE INDEX report_outbox_commit ON report_outbox (source, repo, sha);
CREATE TABLE report_checks (
    job_id  BIGINT NOT NULL REFERENCES jobs(id),
    attempt BIGINT NOT NULL,
    sha     TEXT   NOT NULL,
    run_id  BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt, sha)
)
