-- Version 12: indexes for the columns that point at another delivery, as the SQLite
-- file's version 15 (PostgreSQL's foreign-key check on a delivery's removal read the
-- whole table per row without them).
CREATE INDEX deliveries_by_duplicate_of ON deliveries(duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX deliveries_by_redelivery_of ON deliveries(redelivery_of) WHERE redelivery_of IS NOT NULL;
