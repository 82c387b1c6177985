-- Version 12: reserved for the ingest path's storage changes (issue 23). No change yet.
SELECT 1;
