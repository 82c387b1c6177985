//! The one way queue code talks SQL: a statement, its parameters and a row reader, with
//! no driver type in sight. The statements are written in the SQL that SQLite and
//! PostgreSQL share (`RETURNING`, `ON CONFLICT`, `CASE`, `CAST`, numbered `?N` parameters,
//! which become `$N` for PostgreSQL), so that one text serves both stores and their
//! behaviour cannot drift apart. Integers are 64-bit everywhere (`BIGINT` columns); a
//! parameter whose type the statement does not fix is cast (`CAST(?7 AS BIGINT)`).

use rusqlite::{Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::HashMap;

/// A value passed to a statement.
pub trait Param: rusqlite::ToSql + postgres::types::ToSql + Sync {}
impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync + ?Sized> Param for T {}

/// A value read from a row.
pub trait Column: rusqlite::types::FromSql + postgres::types::FromSqlOwned {}
impl<T: rusqlite::types::FromSql + postgres::types::FromSqlOwned> Column for T {}

/// A statement's parameters: `args![a, b]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::queue::db::Param),*] as &[&dyn $crate::queue::db::Param]
    };
}
pub(crate) use args;

/// One row of a result.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `index` (from 0).
    pub fn get<T: Column>(&self, index: usize) -> anyhow::Result<T> {
        Ok(match self {
            Row::Sqlite(row) => row.get(index)?,
            Row::Postgres(row) => row.try_get(index)?,
        })
    }
}

/// A PostgreSQL connection with its prepared statements.
pub struct PgConn {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl PgConn {
    /// Wraps a connected client.
    pub fn new(client: postgres::Client) -> Self {
        Self { client, statements: HashMap::new() }
    }

    /// Runs statements without parameters (transaction control, schema).
    pub fn batch(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }

    /// The client itself (for bulk work such as copying a queue).
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }

    fn query(&mut self, sql: &str, args: &[&dyn Param]) -> anyhow::Result<Vec<postgres::Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query(&statement, &postgres_args(args))?)
    }

    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> anyhow::Result<u64> {
        let statement = self.prepared(sql)?;
        Ok(self.client.execute(&statement, &postgres_args(args))?)
    }

    /// `sql`, prepared once per connection.
    fn prepared(&mut self, sql: &str) -> anyhow::Result<postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&dollar_parameters(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `?N` → `$N`, outside quoted text.
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// A connection inside the current transaction.
#[derive(Clone, Copy)]
pub enum Db<'c> {
    Sqlite(&'c Connection),
    Postgres(&'c RefCell<PgConn>),
}

impl<'c> Db<'c> {
    /// Whether the store is PostgreSQL (for the little that differs: row locks).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, args: &[&dyn Param]) -> anyhow::Result<usize> {
        match self {
            Db::Sqlite(conn) => Ok(conn.prepare_cached(sql)?.execute(rusqlite_args(args).as_slice())?),
            Db::Postgres(conn) => Ok(conn.borrow_mut().execute(sql, args)? as usize),
        }
    }

    /// Runs statements without parameters, one after another.
    pub fn batch(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres(conn) => Ok(conn.borrow_mut().batch(sql)?),
        }
    }

    /// The first row, read by `read`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[&dyn Param],
        read: impl FnOnce(&Row) -> anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut read = Some(read);
                let mut failure = None;
                let found = statement
                    .query_row(rusqlite_args(args).as_slice(), |row| {
                        let read = read.take().expect("one row is read");
                        Ok(read(&Row::Sqlite(row)).map_err(|err| failure = Some(err)).ok())
                    })
                    .optional()?;
                match failure {
                    Some(err) => Err(err),
                    None => Ok(found.flatten()),
                }
            }
            Db::Postgres(conn) => {
                let rows = conn.borrow_mut().query(sql, args)?;
                rows.first().map(|row| read(&Row::Postgres(row))).transpose()
            }
        }
    }

    /// The first row, read by `read`; no row is an error.
    pub fn query_one<T>(
        &self,
        sql: &str,
        args: &[&dyn Param],
        read: impl FnOnce(&Row) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.query_opt(sql, args, read)?.ok_or_else(|| anyhow::anyhow!("the query found no row"))
    }

    /// Every row, each read by `read`.
    pub fn query<T>(
        &self,
        sql: &str,
        args: &[&dyn Param],
        mut read: impl FnMut(&Row) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite_args(args).as_slice())?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(read(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Db::Postgres(conn) => {
                let rows = conn.borrow_mut().query(sql, args)?;
                rows.iter().map(|row| read(&Row::Postgres(row))).collect()
            }
        }
    }
}

fn postgres_args<'a>(args: &'a [&'a dyn Param]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    args.iter().map(|arg| *arg as &(dyn postgres::types::ToSql + Sync)).collect()
}

fn rusqlite_args<'a>(args: &'a [&'a dyn Param]) -> Vec<&'a dyn rusqlite::ToSql> {
    args.iter().map(|arg| *arg as &dyn rusqlite::ToSql).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            super::dollar_parameters("SELECT ?1, '?2', CAST(?10 AS BIGINT) WHERE a = 'x''?3' AND b = ?2"),
            "SELECT $1, '?2', CAST($10 AS BIGINT) WHERE a = 'x''?3' AND b = $2"
        );
    }
}
