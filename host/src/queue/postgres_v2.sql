-- gitauto queue on PostgreSQL, schema version 2: as the SQLite file's version 5
-- (schema_v5.sql): superseded jobs point to the job that carries their deliveries.
ALTER TABLE jobs ADD COLUMN superseded_by BIGINT;
