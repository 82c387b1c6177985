-- Version 14: the random salt that keys every config fingerprint (see
-- config/fingerprint.rs), one per store, so that the nodes sharing it agree on
-- fingerprints and the fingerprint cannot be checked against guessed secrets offline.
-- Written by the first node that asks for it (64 hex characters), never changed.
CREATE TABLE fingerprint_salt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt TEXT NOT NULL
);
