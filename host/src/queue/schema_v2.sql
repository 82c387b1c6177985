-- gitauto queue, schema version 2: refused deliveries are recorded, jobs carry their own
-- event (a delivery may hold several, one per changed ref), redeliveries point back.

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

-- The normalised event this job runs on, JSON without payload (NULL on version 1 rows:
-- use the delivery's).
ALTER TABLE jobs ADD COLUMN event TEXT;
