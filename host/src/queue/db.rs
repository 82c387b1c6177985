//! The one way queue code talks SQL: a statement, its parameters and a row reader, with
//! no driver type in sight. The statements are written in the SQL that SQLite and
//! PostgreSQL share (`RETURNING`, `ON CONFLICT`, `CASE`, numbered `?N` parameters), so that
//! one text serves every store and their behaviour cannot drift apart. Today the store
//! is SQLite; this is where a second driver plugs in.

use rusqlite::{Connection, OptionalExtension};

/// A value passed to a statement.
pub trait Param: rusqlite::ToSql {}
impl<T: rusqlite::ToSql + ?Sized> Param for T {}

/// A value read from a row.
pub trait Column: rusqlite::types::FromSql {}
impl<T: rusqlite::types::FromSql> Column for T {}

/// A statement's parameters: `args![a, b]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::queue::db::Param),*] as &[&dyn $crate::queue::db::Param]
    };
}
pub(crate) use args;

/// One row of a result.
pub struct Row<'a>(&'a rusqlite::Row<'a>);

impl Row<'_> {
    /// Column `index` (from 0).
    pub fn get<T: Column>(&self, index: usize) -> anyhow::Result<T> {
        Ok(self.0.get(index)?)
    }
}

/// A connection inside the current transaction.
#[derive(Clone, Copy)]
pub struct Db<'c> {
    conn: &'c Connection,
}

impl<'c> Db<'c> {
    /// Wraps a SQLite connection.
    pub fn sqlite(conn: &'c Connection) -> Self {
        Self { conn }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, args: &[&dyn Param]) -> anyhow::Result<usize> {
        Ok(self.conn.prepare_cached(sql)?.execute(rusqlite_args(args).as_slice())?)
    }

    /// Runs statements without parameters, one after another.
    pub fn batch(&self, sql: &str) -> anyhow::Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    /// The first row, read by `read`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[&dyn Param],
        read: impl FnOnce(&Row) -> anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let mut read = Some(read);
        let mut failure = None;
        let found = statement
            .query_row(rusqlite_args(args).as_slice(), |row| {
                let read = read.take().expect("one row is read");
                Ok(read(&Row(row)).map_err(|err| failure = Some(err)).ok())
            })
            .optional()?;
        match failure {
            Some(err) => Err(err),
            None => Ok(found.flatten()),
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
        let mut statement = self.conn.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite_args(args).as_slice())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read(&Row(row))?);
        }
        Ok(out)
    }
}

fn rusqlite_args<'a>(args: &'a [&'a dyn Param]) -> Vec<&'a dyn rusqlite::ToSql> {
    args.iter().map(|arg| *arg as &dyn rusqlite::ToSql).collect()
}
