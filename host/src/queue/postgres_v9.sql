-- Version 9: reserved for the ingest path's storage changes (issue 23), as the SQLite
-- file's version 12. No change yet.
SELECT 1;
