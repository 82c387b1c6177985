-- gitauto queue, schema version 9: schedule ticks. One row per schedule rule: every tick
-- up to `through_ms` has been handled by some daemon, under the rule's expression and
-- zone `spec`. Daemons sharing a store move `through_ms` forward with a compare-and-set,
-- so each tick runs once.
CREATE TABLE schedule_ticks (
    rule       TEXT    NOT NULL PRIMARY KEY,
    spec       TEXT    NOT NULL,
    through_ms INTEGER NOT NULL
);
