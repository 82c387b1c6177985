-- Version 14 (the SQLite file's 17): the plugin platform 0.2.
-- Which component each step ran: the SHA-256 of its bytes (hex) and, when the plugin's
-- signature was verified before it was compiled, who signed it (the key's id and file).
ALTER TABLE steps ADD COLUMN plugin_digest TEXT;
ALTER TABLE steps ADD COLUMN plugin_signer TEXT;
-- Plugins' key-value state (the `kv` interface): one namespace per `grants.kv` name,
-- shared by every node. `version` changes at every write of a key, for compare-and-swap:
-- the larger of the previous version plus one and the write's time in microseconds, so
-- a key deleted and written again never repeats one. An entry whose `expires_at` (Unix
-- milliseconds) has passed reads as absent and is swept. Keys compare byte by byte
-- (`COLLATE "C"`), whatever the database's collation: listings come in byte order, and a
-- prefix is a range of the primary key.
CREATE TABLE kv (
    namespace   TEXT   NOT NULL,
    key         TEXT   COLLATE "C" NOT NULL,
    value       BYTEA  NOT NULL,
    version     BIGINT NOT NULL,
    expires_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX kv_expiring ON kv(expires_at) WHERE expires_at IS NOT NULL;
