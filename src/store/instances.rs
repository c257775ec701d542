//! Which instances share the database, and waking them. On Postgres several `serve` processes
//! share one database (see `pg/instances.rs`); a SQLite file has one owner, so there these
//! answer trivially: the only live instance is the caller, and there is nobody to wake.

use super::pg;
use super::{Db, sqlite_or};
use crate::error::Result;

/// An instance counts as live while its last heartbeat is at most this old (database clock).
pub(crate) const INSTANCE_LIVE_MS: i64 = 5_000;
/// An instance's row is deleted once its heartbeat is this old (it was killed, not stopped).
pub(crate) const INSTANCE_STALE_MS: i64 = 3_600_000;

/// Whether other instances may share this database (Postgres); a SQLite file has one owner.
pub(crate) fn shared(db: &Db) -> bool {
    matches!(db, Db::Postgres(_))
}

/// This instance is alive now: inserts its row or moves its heartbeat (Postgres).
pub(crate) fn heartbeat(db: &Db, id: &str, host: &str, pid: u32, started_at_ms: i64) -> Result<()> {
    let _conn = sqlite_or!(db, |pg| pg::instances::heartbeat(
        pg,
        id,
        host,
        i64::from(pid),
        started_at_ms
    ));
    Ok(())
}

/// The ids of the live instances, sorted; on SQLite only `own_id`.
pub(crate) fn live_instances(db: &Db, own_id: &str, within_ms: i64) -> Result<Vec<String>> {
    let _conn = sqlite_or!(db, |pg| pg::instances::live_instances(pg, within_ms));
    Ok(vec![own_id.to_string()])
}

/// Clean shutdown: this instance no longer counts.
pub(crate) fn remove_instance(db: &Db, id: &str) -> Result<()> {
    let _conn = sqlite_or!(db, |pg| pg::instances::remove_instance(pg, id));
    Ok(())
}

/// Forgets instances silent for more than `stale_ms`; answers how many.
pub(crate) fn prune_instances(db: &Db, stale_ms: i64) -> Result<u64> {
    let _conn = sqlite_or!(db, |pg| pg::instances::prune_instances(pg, stale_ms));
    Ok(0)
}

/// Wakes the other instances (Postgres `NOTIFY`); on SQLite there are none.
pub(crate) fn notify(db: &Db, payload: &str) -> Result<()> {
    let _conn = sqlite_or!(db, |pg| pg::instances::notify(pg, payload));
    Ok(())
}
