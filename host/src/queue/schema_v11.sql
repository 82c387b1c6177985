-- gitauto queue, schema version 11: the head commit an `/ok-to-test` approval released a
-- job for. A job of a `forks = "approve"` rule for a fork's pull request runs only when
-- this is its event's head (a retried cancelled waiting job has none). Its version also
-- makes binaries older than the `waiting` state refuse the store.
ALTER TABLE jobs ADD COLUMN approved_head TEXT;
-- The comments that approved (`/ok-to-test`) or triggered a permission-gated command:
-- each acts once per rule, whatever delivery brings it again (a replayed or redelivered webhook
-- makes a new job, which finds its comment taken here). Retention keeps these rows.
CREATE TABLE acted_comments (
    source     TEXT    NOT NULL,
    repo       TEXT    NOT NULL,
    comment_id TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    job_id     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (source, repo, comment_id, rule)
);
