-- Version 11: the random salt that keys every config fingerprint, as the SQLite file's
-- version 14.
CREATE TABLE fingerprint_salt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt TEXT NOT NULL
);
