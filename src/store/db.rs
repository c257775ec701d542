//! One connection of either backend, and the transactions the scheduler and the API run on it.
//! Every store function takes a `&Db`; its first line is `sqlite_or!`, which hands a Postgres
//! connection to that function's twin in `pg/` and otherwise goes on with the SQLite body. So
//! the SQLite code is the same as before the second backend came, and each backend's SQL sits
//! in one place. Transactions are statements (`BEGIN`/`COMMIT`, `SAVEPOINT`), the same on both.

use std::cell::RefCell;
use std::path::PathBuf;

use rusqlite::Connection;

use super::pg;
use crate::error::{Error, Result};

/// Where the data lives: a SQLite file (the default), or a Postgres database shared by several
/// instances (`--db postgres://…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DbTarget {
    Sqlite(PathBuf),
    /// The URL as given; shown only through `pg::redacted`.
    Postgres(String),
}

impl DbTarget {
    /// `postgres://` or `postgresql://` (any case) is Postgres; anything else is a file path.
    pub(crate) fn parse(value: &str) -> DbTarget {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            DbTarget::Postgres(value.to_string())
        } else {
            DbTarget::Sqlite(PathBuf::from(value))
        }
    }

    /// For logs and errors: the path, or the URL without its password.
    pub(crate) fn describe(&self) -> String {
        match self {
            DbTarget::Sqlite(path) => path.display().to_string(),
            DbTarget::Postgres(url) => pg::redacted(url),
        }
    }
}

/// One connection; one per thread (neither kind is shared between threads). A few dozen exist
/// per process, so the Postgres variant's size is not worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Db {
    Sqlite(Connection),
    /// Store functions take `&Db`; the Postgres client needs `&mut`, hence the cell. No store
    /// function calls another through the cell, so a borrow never meets another.
    Postgres(RefCell<pg::Conn>),
}

/// Hands a Postgres connection to `$body` (which returns from the function) and evaluates to
/// the SQLite connection otherwise: `let conn = sqlite_or!(db, |pg| pg::read::endpoint(pg, id));`
macro_rules! sqlite_or {
    ($db:expr, |$pg:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(conn) => conn,
            $crate::store::Db::Postgres(cell) => {
                let $pg: &mut $crate::store::pg::Conn = &mut cell.borrow_mut();
                return $body;
            }
        }
    };
}
pub(crate) use sqlite_or;

impl Db {
    /// The SQLite connection, for what exists only there (the store tests read it directly).
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> Option<&Connection> {
        match self {
            Db::Sqlite(conn) => Some(conn),
            Db::Postgres(_) => None,
        }
    }

    fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(conn) => conn.execute_batch(sql)?,
            Db::Postgres(cell) => cell.borrow_mut().batch(sql)?,
        }
        Ok(())
    }

    /// Starts a write transaction: SQLite takes the write lock at once (`BEGIN IMMEDIATE`, so
    /// it never fails half-way on a lock upgrade); Postgres locks rows as it goes. Dropped
    /// without `commit`, it rolls back.
    pub(crate) fn begin(&self) -> Result<Tx<'_>> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE")?,
            Db::Postgres(_) => self.batch("BEGIN")?,
        }
        Ok(Tx {
            db: self,
            done: false,
        })
    }
}

/// Most times a transaction that lost a race with another (`Error::is_retryable`: deadlock,
/// serialization failure; Postgres only) is run again at once.
pub(crate) const LOST_RACE_RETRIES_MAX: usize = 3;

/// Runs `transaction` (which begins and commits its own) again while it loses races with
/// others, up to `LOST_RACE_RETRIES_MAX` times; its inputs must be in memory, as it rolled back
/// whole. Still losing after that: `Error::Unavailable` (busy, not broken: 503, try again).
pub(crate) fn retry_lost_races<T>(
    what: &str,
    mut transaction: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut retries = 0;
    loop {
        match transaction() {
            Err(error) if error.is_retryable() && retries < LOST_RACE_RETRIES_MAX => {
                retries += 1;
                log::info!(
                    "{what} lost a race with another transaction, running it again (try {retries}): {error}"
                );
            }
            Err(error) if error.is_retryable() => {
                return Err(Error::Unavailable(format!("{error}; the database is busy")));
            }
            done => return done,
        }
    }
}

/// A transaction on a `Db`; derefs to it, so store functions take `&tx`.
pub(crate) struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        if let Err(error) = self.db.batch("COMMIT") {
            // A failed COMMIT may leave the transaction open (SQLite: disk full).
            let _ = self.db.batch("ROLLBACK");
            return Err(error);
        }
        Ok(())
    }

    /// A savepoint inside this transaction: `release` keeps its writes, dropping it undoes
    /// them and leaves the transaction usable (Postgres: also after a failed statement).
    pub(crate) fn savepoint(&self) -> Result<Savepoint<'_>> {
        self.db.batch("SAVEPOINT round_command")?;
        Ok(Savepoint {
            db: self.db,
            done: false,
        })
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.db.batch("ROLLBACK");
        }
    }
}

pub(crate) struct Savepoint<'a> {
    db: &'a Db,
    done: bool,
}

impl<'a> std::ops::Deref for Savepoint<'a> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Savepoint<'_> {
    pub(crate) fn release(mut self) -> Result<()> {
        self.done = true;
        self.db.batch("RELEASE SAVEPOINT round_command")
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self
                .db
                .batch("ROLLBACK TO SAVEPOINT round_command; RELEASE SAVEPOINT round_command");
        }
    }
}
