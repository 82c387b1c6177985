-- Version 15: the columns that point at another delivery (a duplicate's first, a
-- redelivery's original) get indexes. Deleting a delivery makes the database look for
-- rows pointing at it (the foreign keys); without an index each look read the whole
-- table, so pruning N deliveries of a table of M cost N × M (minutes for 20,000 of
-- 50,000, with the queue's one writer held). Partial: most rows point nowhere, and an
-- accept writes no entry for them.
CREATE INDEX deliveries_by_duplicate_of ON deliveries(duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX deliveries_by_redelivery_of ON deliveries(redelivery_of) WHERE redelivery_of IS NOT NULL;
