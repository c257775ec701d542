//! All SQL, in rooms: `open` (pragmas, owner-only files, migrations), `outbox` (the scheduler's
//! writes), `writes` (the API's small writes), `read` (rows and queries), `backup` (`VACUUM
//! INTO`) and `owner` (the lock file). Small functions named for what they do; every function
//! takes a `&Connection`, so callers decide the transaction: the scheduler groups many calls
//! into one commit, API threads run single statements. Callers name them `store::x`; the rooms
//! are re-exported here.

pub(crate) mod backup;
pub(crate) mod open;
pub(crate) mod outbox;
pub(crate) mod owner;
pub(crate) mod read;
pub(crate) mod writes;

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

#[cfg(test)]
mod tests;
