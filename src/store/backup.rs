//! The SQL of `backup` (the command is `cli::backup`): open the live database without ever
//! creating it, `VACUUM INTO` a new file, check the copy and count what it holds.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// The live database, opened for reading and writing but never created: a wrong `--db` must
/// not make a new file. `Err` is one line for people.
pub(crate) fn open_source(db: &Path) -> Result<Connection, String> {
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    source
        .busy_timeout(super::BUSY_TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(source)
}

/// Writes one snapshot of `source` into `partial` (new and empty), checks its integrity, and
/// answers its (events, deliveries pending or delivering). `Err` is one line for people.
pub(crate) fn vacuum_into_checked(
    source: &Connection,
    partial: &Path,
) -> Result<(i64, i64), String> {
    let partial_text = partial
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", partial.display()))?;
    source
        .execute("VACUUM INTO ?1", [partial_text])
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let copy = Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot reopen the copy {}: {e}", partial.display()))?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| format!("cannot check the copy: {e}"))?;
    if check != "ok" {
        return Err(format!("the copy failed its integrity check: {check}"));
    }
    copy.query_row(
        "SELECT (SELECT COUNT(*) FROM events),
                (SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'delivering'))",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .map_err(|e| format!("the copy is not a ClockEye Webhooks database: {e}"))
}
