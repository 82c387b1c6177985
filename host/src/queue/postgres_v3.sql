-- gitauto queue on PostgreSQL, schema version 3: as the SQLite file's version 6
-- (schema_v6.sql): each delivery records how it arrived.
ALTER TABLE deliveries ADD COLUMN arrived TEXT NOT NULL DEFAULT 'webhook';
UPDATE deliveries SET arrived = 'redelivery' WHERE redelivery_of IS NOT NULL;
UPDATE deliveries SET arrived = 'manual' WHERE source = 'manual';
