-- gitauto queue, schema version 12: a delivery's body may be stored compressed.
-- `body_encoding` NULL: `body` is the body as received (every row before this version);
-- 'lz4': an LZ4 block after the body's length (4 bytes, little-endian). Readers decode.
ALTER TABLE deliveries ADD COLUMN body_encoding TEXT;
