-- gitauto queue on PostgreSQL: the same tables as the SQLite file at its schema version 4
-- (see schema*.sql), with 64-bit integers throughout. Times are Unix milliseconds (UTC).

CREATE TABLE deliveries (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT   NOT NULL,
    source        TEXT   NOT NULL,
    forge         TEXT   NOT NULL,
    event         TEXT,
    received_at   BIGINT NOT NULL,
    headers       TEXT   NOT NULL,
    body          BYTEA  NOT NULL,
    verdict       TEXT   NOT NULL,
    reason        TEXT,
    normalised    TEXT,
    explain       TEXT,
    duplicate_of  BIGINT REFERENCES deliveries(seq),
    body_size     BIGINT,
    redelivery_of BIGINT REFERENCES deliveries(seq)
);
-- A delivery id is accepted once per source, whichever daemon receives it.
CREATE UNIQUE INDEX deliveries_unique_id ON deliveries(source, id)
    WHERE verdict NOT IN ('duplicate', 'rejected', 'invalid');
CREATE INDEX deliveries_by_id ON deliveries(id);

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    delivery_seq     BIGINT NOT NULL REFERENCES deliveries(seq),
    rule             TEXT   NOT NULL,
    key              TEXT   NOT NULL,
    repo             TEXT   NOT NULL,
    git_ref          TEXT,
    state            TEXT   NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    summary          TEXT,
    error            TEXT,
    event_index      BIGINT NOT NULL DEFAULT 0,
    coalesce_key     TEXT,
    not_before       BIGINT,
    max_attempts     BIGINT NOT NULL DEFAULT 1,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    node             TEXT,
    ran_on           TEXT,
    lease_until      BIGINT
);
CREATE INDEX jobs_by_state ON jobs(state, id);
CREATE INDEX jobs_by_key ON jobs(key, state);
CREATE INDEX jobs_by_delivery ON jobs(delivery_seq);
CREATE UNIQUE INDEX jobs_one_queued_per_coalesce_key ON jobs(coalesce_key)
    WHERE state = 'queued' AND coalesce_key IS NOT NULL;
-- Jobs with one key never run at once, across every daemon: a second claim of the key fails.
CREATE UNIQUE INDEX jobs_one_running_per_key ON jobs(key) WHERE state = 'running';
CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE steps (
    job_id      BIGINT NOT NULL REFERENCES jobs(id),
    idx         BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    name        TEXT   NOT NULL,
    plugin      TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    summary     TEXT   NOT NULL,
    output      TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt, idx)
);

CREATE TABLE logs (
    seq     BIGSERIAL PRIMARY KEY,
    job_id  BIGINT NOT NULL REFERENCES jobs(id),
    attempt BIGINT NOT NULL,
    step    TEXT,
    at      BIGINT NOT NULL,
    level   TEXT   NOT NULL,
    message TEXT   NOT NULL
);
CREATE INDEX logs_by_job ON logs(job_id, seq);

CREATE TABLE job_deliveries (
    job_id       BIGINT NOT NULL REFERENCES jobs(id),
    delivery_seq BIGINT NOT NULL REFERENCES deliveries(seq),
    event_index  BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (job_id, delivery_seq, event_index)
);
CREATE INDEX job_deliveries_by_delivery ON job_deliveries(delivery_seq);

CREATE TABLE nodes (
    name         TEXT   PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT,
    version      TEXT   NOT NULL,
    workers      BIGINT NOT NULL
);
