//! Connecting to PostgreSQL: every connection gitauto opens (the store's writer, `queue
//! copy`, the tests' helpers) goes through [`connect`], so the URL's TLS settings are
//! read in one place.

use anyhow::Context;

/// Connects to the database at `url`.
pub fn connect(url: &str) -> anyhow::Result<postgres::Client> {
    postgres::Client::connect(url, postgres::NoTls)
        .with_context(|| format!("connecting to the PostgreSQL store at {}", super::redacted(url)))
}
