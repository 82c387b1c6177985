-- gitauto queue, schema version 5: a job put back in line while a newer event for its
-- coalescing key was queued is merged into that job instead of queued beside it.
-- Job states gain: superseded (its deliveries moved to the job `superseded_by` names,
-- which runs with the newer event) and quarantined (set aside at start-up or by a lease
-- expiry because it could not be put back in line; `gitauto retry` runs it again).

-- The job that carries this one's deliveries now. Not a foreign key: pruning may remove
-- either job first.
ALTER TABLE jobs ADD COLUMN superseded_by INTEGER;
