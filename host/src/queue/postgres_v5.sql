-- gitauto queue on PostgreSQL, schema version 5: schedule ticks, as the SQLite file's
-- version 8 (schema_v8.sql).
CREATE TABLE schedule_ticks (
    rule       TEXT   NOT NULL PRIMARY KEY,
    spec       TEXT   NOT NULL,
    through_ms BIGINT NOT NULL
)
