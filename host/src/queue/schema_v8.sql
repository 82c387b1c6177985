-- gitauto queue, schema version 8: what ref polling saw last (a source's `poll`).

-- Each polled repository's branches and tags as the last poll listed them.
CREATE TABLE polled_refs (
    source    TEXT    NOT NULL,
    repo      TEXT    NOT NULL,
    git_ref   TEXT    NOT NULL,
    commit_id TEXT    NOT NULL,
    PRIMARY KEY (source, repo, git_ref)
);
-- When each repository was last polled, and the newest delivery recorded before it was:
-- a ref that moved since is looked for only among deliveries after that one.
CREATE TABLE polled_repos (
    source       TEXT    NOT NULL,
    repo         TEXT    NOT NULL,
    polled_at    INTEGER NOT NULL,
    delivery_seq INTEGER NOT NULL,
    PRIMARY KEY (source, repo)
);
