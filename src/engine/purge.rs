//! The background purge of deleted endpoints' history. `DELETE /v1/endpoints/{id}` only marks
//! the endpoint deleted (one row, so the API answers at once and the writer is barely held);
//! the scheduler then calls `pass` between its rounds, and each pass deletes one bounded batch
//! in its own transaction, so ingest waits for at most one batch, never for the whole history.
//! The SQL is in `store::purge_deleted_endpoint`.

use std::time::Duration;

use crate::store::{self, Db};

/// Most deliveries (with their attempts) deleted per transaction: a few milliseconds of
/// writing, about one scheduler round.
pub(crate) const PURGE_BATCH_MAX: usize = 500;
/// Pause between passes when nothing is left to purge (a DELETE also starts one at once).
pub(crate) const PURGE_INTERVAL_MAX: Duration = Duration::from_secs(10);

/// One batch; returns how long to wait before the next pass: none while history is left.
/// An error is logged and the pass is tried again after the interval.
pub(crate) fn pass(conn: &mut Db) -> Duration {
    let purged = conn.begin().and_then(|tx| {
        // Another instance is purging now (Postgres): wait for the next pass.
        if !store::maintenance_turn(&tx)? {
            return Ok(0);
        }
        let purged = store::purge_deleted_endpoint(&tx, PURGE_BATCH_MAX)?;
        tx.commit()?;
        Ok(purged)
    });
    match purged {
        Ok(0) => PURGE_INTERVAL_MAX,
        Ok(purged) => {
            log::debug!("purge: {purged} rows of a deleted endpoint's history went");
            Duration::ZERO
        }
        Err(error) => {
            log::warn!("purge: deleting an endpoint's history failed, will try again: {error}");
            PURGE_INTERVAL_MAX
        }
    }
}
