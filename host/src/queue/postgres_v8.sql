-- gitauto queue on PostgreSQL, schema version 8: the approved head of a released job and
-- the comments that acted, as the SQLite file's version 11 (schema_v11.sql).
ALTER TABLE jobs ADD COLUMN approved_head TEXT;
CREATE TABLE acted_comments (
    source     TEXT   NOT NULL,
    repo       TEXT   NOT NULL,
    comment_id TEXT   NOT NULL,
    rule       TEXT   NOT NULL,
    job_id     BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (source, repo, comment_id, rule)
)
