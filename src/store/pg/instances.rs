//! Several instances on one database: each scheduler heartbeats its row in `instances` once a
//! second and reads who else is live (the rate limit split), and any thread may wake the others
//! with a notification on the `clockeye` channel (the `listen` thread hears them). Heartbeats
//! and liveness are in the database's clock, so machines' clocks may differ.

use super::Conn;
use crate::error::Result;

/// The channel instances wake each other on (`LISTEN clockeye`).
pub(crate) const CHANNEL: &str = "clockeye";

/// The database's clock in unix ms, as every statement here reads it.
macro_rules! db_now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// Inserts this instance's row, or moves its heartbeat to now (database clock).
pub(crate) fn heartbeat(
    pg: &mut Conn,
    id: &str,
    host: &str,
    pid: i64,
    started_at_ms: i64,
) -> Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO instances (id, host, pid, started_at_ms, heartbeat_at_ms)
         VALUES ($1, $2, $3, $4, ",
        db_now_ms!(),
        ") ON CONFLICT (id) DO UPDATE SET heartbeat_at_ms = EXCLUDED.heartbeat_at_ms"
    );
    pg.execute(SQL, &[&id, &host, &pid, &started_at_ms])?;
    Ok(())
}

/// The ids of the instances whose heartbeat is at most `within_ms` old, sorted (a rank is a
/// place in this list).
pub(crate) fn live_instances(pg: &mut Conn, within_ms: i64) -> Result<Vec<String>> {
    const SQL: &str = concat!(
        "SELECT id FROM instances WHERE heartbeat_at_ms >= ",
        db_now_ms!(),
        " - $1 ORDER BY id"
    );
    let rows = pg.query(SQL, &[&within_ms])?;
    rows.iter()
        .map(|row| Ok(row.try_get::<_, String>(0)?))
        .collect()
}

/// Removes this instance's row (clean shutdown): the others stop counting it at once.
pub(crate) fn remove_instance(pg: &mut Conn, id: &str) -> Result<()> {
    pg.execute("DELETE FROM instances WHERE id = $1", &[&id])?;
    Ok(())
}

/// Deletes the rows of instances silent for more than `stale_ms` (killed ones); answers how many.
pub(crate) fn prune_instances(pg: &mut Conn, stale_ms: i64) -> Result<u64> {
    const SQL: &str = concat!(
        "DELETE FROM instances WHERE heartbeat_at_ms < ",
        db_now_ms!(),
        " - $1"
    );
    pg.execute(SQL, &[&stale_ms])
}

/// Sends `payload` to every instance listening on `CHANNEL` (delivered at commit; outside a
/// transaction at once).
pub(crate) fn notify(pg: &mut Conn, payload: &str) -> Result<()> {
    pg.execute("SELECT pg_notify('clockeye', $1)", &[&payload])?;
    Ok(())
}
