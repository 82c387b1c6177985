//! Where archives, records and the feed go: a granted directory, object storage.
