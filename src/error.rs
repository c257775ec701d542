//! The crate's own failures: database, I/O, configuration. A receiver's 500 is not here: that is
//! an `Outcome` (see `model.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this build's {known}: run a newer clockeye-webhooks"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "database {db} is in use by another clockeye-webhooks serve ({holder}); one process owns a database file: stop that one first or use another --db"
    )]
    Owned { db: PathBuf, holder: String },
    #[error("the {thread} thread died ({why}); exiting so a supervisor restarts the service")]
    ThreadDied { thread: String, why: String },
    #[error("the database cannot take writes now: {0}")]
    Unavailable(String),
    #[error("database error: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("{0}")]
    Config(String),
}

/// A Postgres error in one line: its message and SQLSTATE, never the connection's URL.
fn postgres_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the database cannot take writes for now (disk full, read-only, locked too long):
    /// the API answers 503 and the client may try again.
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => matches!(
                failure.code,
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
            ),
            Error::Unavailable(_) => true,
            Error::Postgres(error) => {
                if error.is_closed() {
                    return true;
                }
                let Some(code) = error.code() else {
                    // Not from the server: the connection broke (I/O, protocol).
                    return error.as_db_error().is_none();
                };
                let code = code.code();
                // 08: connection; 53: disk full, out of memory, too many connections;
                // 57P0x: shutting down; 25006: read-only transaction; 55P03: lock timeout.
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P0")
                    || code == "25006"
                    || code == "55P03"
            }
            _ => false,
        }
    }

    /// True when a Postgres transaction lost a race with another instance's (deadlock,
    /// serialization) and may simply be run again.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Postgres(error) => error
                .code()
                .is_some_and(|code| matches!(code.code(), "40P01" | "40001")),
            _ => false,
        }
    }
}
