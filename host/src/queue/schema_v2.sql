-- gitauto queue, schema version 2: refused deliveries are recorded, a delivery holds a
-- list of events (one per changed ref) that jobs point into, redeliveries point back.

-- Bytes received, when the stored body was cut short (refused deliveries keep 64 KiB).
ALTER TABLE deliveries ADD COLUMN body_size INTEGER;
-- The delivery this one runs again (`gitauto redeliver`).
ALTER TABLE deliveries ADD COLUMN redelivery_of INTEGER REFERENCES deliveries(seq);
-- verdict gains: rejected (bad signature, 401) and invalid (unreadable, 400/415). Neither
-- claims its delivery id: the genuine delivery may still arrive.
DROP INDEX deliveries_unique_id;
CREATE UNIQUE INDEX deliveries_unique_id ON deliveries(source, id)
    WHERE verdict NOT IN ('duplicate', 'rejected', 'invalid');
CREATE INDEX deliveries_by_id ON deliveries(id);

-- Which of the delivery's normalised events this job runs on (version 1 rows hold a
-- single event object: index 0).
ALTER TABLE jobs ADD COLUMN event_index INTEGER NOT NULL DEFAULT 0;
