-- Version 10: each node records the fingerprint of its configuration, as the SQLite
-- file's version 13.
ALTER TABLE nodes ADD COLUMN config TEXT;
