-- gitauto queue, schema version 6: each delivery records how it arrived (a forge's
-- webhook, a redelivery, a manual trigger, gitreload's endpoints, a schedule tick, a
-- delivery caught up from the forge's API, a ref seen moving by polling). Deliveries
-- recorded before this version arrived as webhooks, redeliveries or manual triggers; the
-- default says webhook and the two others are recognised below.
ALTER TABLE deliveries ADD COLUMN arrived TEXT NOT NULL DEFAULT 'webhook';
UPDATE deliveries SET arrived = 'redelivery' WHERE redelivery_of IS NOT NULL;
UPDATE deliveries SET arrived = 'manual' WHERE source = 'manual';
