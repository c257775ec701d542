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
            _ => false,
        }
    }
}
