-- gitauto queue on PostgreSQL, schema version 6: schedule ticks, as the SQLite file's
-- version 9 (schema_v9.sql).
CREATE TABLE schedule_ticks (
    rule       TEXT   NOT NULL PRIMARY KEY,
    spec       TEXT   NOT NULL,
    through_ms BIGINT NOT NULL
)
