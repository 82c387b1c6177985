-- gitauto queue on PostgreSQL, schema version 5: as the SQLite file's version 8
-- (schema_v8.sql): what ref polling saw last.
CREATE TABLE polled_refs (
    source    TEXT   NOT NULL,
    repo      TEXT   NOT NULL,
    git_ref   TEXT   NOT NULL,
    commit_id TEXT   NOT NULL,
    PRIMARY KEY (source, repo, git_ref)
);
CREATE TABLE polled_repos (
    source       TEXT   NOT NULL,
    repo         TEXT   NOT NULL,
    polled_at    BIGINT NOT NULL,
    delivery_seq BIGINT NOT NULL,
    PRIMARY KEY (source, repo)
);
