-- gitauto queue on PostgreSQL, schema version 4: schedule ticks, as the SQLite file's
-- version 7 (schema_v7.sql).
CREATE TABLE schedule_ticks (
    rule       TEXT   NOT NULL PRIMARY KEY,
    spec       TEXT   NOT NULL,
    through_ms BIGINT NOT NULL
)
