-- Version 13: each node records the fingerprint of the configuration it runs, so that
-- nodes sharing a store with different configurations can be shown.
ALTER TABLE nodes ADD COLUMN config TEXT;
