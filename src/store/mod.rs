//! All SQL, in rooms: `open` (pragmas, owner-only files, migrations), `outbox` (the scheduler's
//! writes), `writes` (the API's small writes), `read` (rows and queries), `backup` (`VACUUM
//! INTO`), `owner` (the lock file), and `pg/` with each function's Postgres twin (`db.rs` says
//! how a call reaches it). Small functions named for what they do; every function
//! takes a `&Db` (a connection or a transaction on one), so callers decide the transaction: the scheduler groups many calls
//! into one commit, API threads run single statements. Callers name them `store::x`; the rooms
//! are re-exported here.

pub(crate) mod backup;
mod db;
pub(crate) mod instances;
pub(crate) mod open;
pub(crate) mod outbox;
pub(crate) mod owner;
pub(crate) mod pg;
pub(crate) mod read;
pub(crate) mod writes;

pub(crate) use db::*;
pub(crate) use instances::*;
pub(crate) use open::*;
pub(crate) use outbox::*;
pub(crate) use read::*;
pub(crate) use writes::*;

/// What every room uses.
mod prelude {
    pub(super) use std::path::Path;
    pub(super) use std::sync::Arc;
    pub(super) use std::time::Duration;

    pub(super) use rusqlite::{Connection, OptionalExtension, Row, params};

    pub(super) use super::read::*;
    pub(super) use crate::error::{Error, Result};
    pub(super) use crate::ids::new_id;
    pub(super) use crate::model::{
        AttemptResult, Decision, Job, NewEvent, Secrets, SignWith, StoredEvent,
    };
}

/// Opens a connection of either backend; `migrate` brings the schema up to date first (the
/// service's first connection and the tools; the others only connect).
pub(crate) fn connect(
    target: &DbTarget,
    role: pg::Role,
    migrate: bool,
) -> crate::error::Result<Db> {
    match target {
        DbTarget::Sqlite(path) => Ok(Db::Sqlite(open(path)?)),
        DbTarget::Postgres(url) => Ok(Db::Postgres(std::cell::RefCell::new(pg::open::open(
            url, role, migrate,
        )?))),
    }
}

#[cfg(test)]
mod tests;
