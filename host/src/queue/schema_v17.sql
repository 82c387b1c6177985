-- Version 17: the plugin platform 0.2.
-- Which component each step ran: the SHA-256 of its bytes (hex) and, when the plugin's
-- signature was verified before it was compiled, who signed it (the key's id and file).
ALTER TABLE steps ADD COLUMN plugin_digest TEXT;
ALTER TABLE steps ADD COLUMN plugin_signer TEXT;
-- Plugins' key-value state (the `kv` interface): one namespace per `grants.kv` name.
-- `version` changes at every write of a key, for compare-and-swap: the larger of the
-- previous version plus one and the write's time in microseconds, so a key deleted and
-- written again never repeats one. An entry whose `expires_at` (Unix milliseconds) has
-- passed reads as absent and is swept.
CREATE TABLE kv (
    namespace   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       BLOB    NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX kv_expiring ON kv(expires_at) WHERE expires_at IS NOT NULL;
