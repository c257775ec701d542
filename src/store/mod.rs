//! All SQL, in rooms: `open` (pragmas, owner-only files, migrations), `outbox` (the scheduler's
//! writes), `writes` (the API's small writes), `read` (rows and queries), `backup` (`VACUUM
//! INTO`) and `owner` (the lock file). Small functions named for what they do; every function
//! takes a `&Connection`, so callers decide the transaction: the scheduler groups many calls
//! into one commit, API threads run single statements. Callers name them `store::x`; the rooms
//! are re-exported here.

pub mod backup;
pub mod open;
pub mod outbox;
pub mod owner;
pub mod read;
pub mod writes;

pub use open::*;
pub use outbox::*;
pub use read::*;
pub use writes::*;

/// What every room uses.
mod prelude {
    pub(super) use std::path::Path;
    pub(super) use std::sync::Arc;
    pub(super) use std::time::Duration;

    pub(super) use rusqlite::{Connection, OptionalExtension, Row, params};

    pub(super) use super::read::*;
    pub(super) use crate::error::{Error, Result};
    pub(super) use crate::model::{
        AttemptResult, Decision, Job, NewEvent, Secrets, SignWith, StoredEvent,
    };
    pub(super) use crate::signing::new_id;
}

#[cfg(test)]
mod tests;
