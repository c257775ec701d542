//! Opening the database: pragmas, owner-only files, and the schema migrations, applied by
//! `PRAGMA user_version` (`MIGRATIONS`).

#[allow(unused_imports)]
use super::prelude::*;
use super::{Db, pg, sqlite_or};

/// The schema this build writes; `schema.sql` sets the same `user_version`.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64 + 1;

/// One migration step: `MIGRATIONS[v - 1]` takes `user_version` v to v + 1. The steps from the
/// file's version on run in order, then schema.sql, then their `after_schema` parts, in one
/// `BEGIN IMMEDIATE`. A new schema version is one more entry here (and `user_version` in
/// schema.sql, which a test compares).
pub(crate) struct Migration {
    /// Run whenever this step is applied.
    sql: &'static str,
    /// Run only when this step is the first applied (what a later rebuild makes needless).
    sql_if_first: &'static str,
    /// Run after schema.sql, e.g. to copy rows into a table schema.sql rebuilt.
    after_schema: &'static str,
    /// Needs foreign keys off and the legacy rename (a table is renamed and rebuilt).
    legacy_alter: bool,
}

const STEP: Migration = Migration {
    sql: "",
    sql_if_first: "",
    after_schema: "",
    legacy_alter: false,
};

pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1 → 2: `endpoints.failing_since_ms` (version 1 had another due index, which schema.sql drops).
    Migration {
        sql: "ALTER TABLE endpoints ADD COLUMN failing_since_ms INTEGER;",
        ..STEP
    },
    // 2 → 3: `events_by_time`, made by schema.sql.
    STEP,
    // 3 → 4: rotation, test events, free attempts and tokens.
    Migration {
        sql: "ALTER TABLE endpoints ADD COLUMN last_success_at_ms INTEGER;
                 ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
                 ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at_ms INTEGER;
                 ALTER TABLE endpoints ADD COLUMN sign_with_previous INTEGER NOT NULL DEFAULT 0
                     CHECK (sign_with_previous IN (0, 1));
                 ALTER TABLE events ADD COLUMN test INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1));
                 ALTER TABLE deliveries ADD COLUMN free_attempts INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE deliveries ADD COLUMN free_attempt_number INTEGER;",
        ..STEP
    },
    // 4 → 5: claim leases.
    Migration {
        sql: "ALTER TABLE deliveries ADD COLUMN lease_expires_at_ms INTEGER;
                 ALTER TABLE deliveries ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;",
        ..STEP
    },
    // 5 → 6: event ids unique per workspace, `endpoints.deleted_at_ms`. A table constraint
    // cannot be dropped: the events table is rebuilt by schema.sql and the rows copied over.
    // The old table is renamed first with the legacy rename (deliveries keep referring to
    // `events`, i.e. the new table) and with foreign keys off (dropping it must not cascade);
    // its indexes go first so schema.sql makes them afresh on the new table.
    Migration {
        sql: "ALTER TABLE endpoints ADD COLUMN deleted_at_ms INTEGER;
                 DROP INDEX IF EXISTS events_by_workspace;
                 DROP INDEX IF EXISTS events_by_time;
                 ALTER TABLE events RENAME TO events_v4;",
        after_schema: "INSERT INTO events (seq, id, workspace_id, type, created_at_ms, body, test)
                     SELECT seq, id, workspace_id, type, created_at_ms, body, test FROM events_v4;
                 DROP TABLE events_v4;",
        legacy_alter: true,
        ..STEP
    },
    // 6 → 7: flow control (rate limit, ordering by subject). From an older version the events
    // table is rebuilt above by schema.sql, which has `events.subject` already.
    Migration {
        sql: "ALTER TABLE endpoints ADD COLUMN rate_limit INTEGER
                     CHECK (rate_limit BETWEEN 1 AND 10000);
                 ALTER TABLE endpoints ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none'
                     CHECK (ordering IN ('none', 'subject'));
                 ALTER TABLE deliveries ADD COLUMN subject TEXT;",
        sql_if_first: "ALTER TABLE events ADD COLUMN subject TEXT;",
        ..STEP
    },
    // 7 → 8: the CHECKs on `deliveries.status` and `attempts.error_class` become ORs (an IN
    // list of more than two values costs a temporary b-tree per row written). A CHECK cannot
    // be altered: both tables are rebuilt by schema.sql and their rows copied, as in 5 → 6.
    Migration {
        sql: "DROP INDEX IF EXISTS deliveries_pending;
                 DROP INDEX IF EXISTS deliveries_leased;
                 DROP INDEX IF EXISTS deliveries_by_event;
                 DROP INDEX IF EXISTS deliveries_unfinished_by_subject;
                 DROP INDEX IF EXISTS deliveries_by_endpoint;
                 DROP INDEX IF EXISTS attempts_by_delivery;
                 ALTER TABLE deliveries RENAME TO deliveries_v7;
                 ALTER TABLE attempts RENAME TO attempts_v7;",
        after_schema: "INSERT INTO deliveries (seq, id, event_seq, endpoint_seq, status, attempts_made,
                         next_attempt_at_ms, created_at_ms, updated_at_ms, free_attempts,
                         free_attempt_number, lease_expires_at_ms, claims, subject)
                     SELECT seq, id, event_seq, endpoint_seq, status, attempts_made,
                         next_attempt_at_ms, created_at_ms, updated_at_ms, free_attempts,
                         free_attempt_number, lease_expires_at_ms, claims, subject
                     FROM deliveries_v7;
                 INSERT INTO attempts (seq, delivery_seq, number, started_at_ms, duration_ms,
                         status_code, error_class, error_message, response_excerpt)
                     SELECT seq, delivery_seq, number, started_at_ms, duration_ms,
                         status_code, error_class, error_message, response_excerpt
                     FROM attempts_v7;
                 DROP TABLE attempts_v7;
                 DROP TABLE deliveries_v7;",
        legacy_alter: true,
        ..STEP
    },
];

/// How long a statement waits for another connection's write lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache of the writer's connection (negative: KiB) and of each reader's.
pub(crate) const WRITER_CACHE_KIB: i64 = 16 * 1024;

pub(crate) const READER_CACHE_KIB: i64 = 1024;

/// Prepared statements kept per connection.
pub(crate) const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Opens (creating if needed) the database: WAL, `synchronous=FULL`, foreign keys, schema applied.
/// The file, and so its `-wal` and `-shm` (SQLite gives them the database's mode), is owner-only.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let open_error = |source| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    owner_only(path).map_err(|source| Error::Io {
        context: format!("making {} readable by its owner only", path.display()),
        source,
    })?;
    let conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Plans do not depend on bound values (SQLite's query planner stability guarantee), so a
    // cached statement is not prepared anew when a parameter changes: a profile found the
    // scheduler re-preparing its claim and ingest statements every round.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(open_error)?;
    // WAL lets API readers run beside the one writer; FULL makes a commit survive power loss.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("journal_mode={mode} (WAL was asked for; the file system may not support it)");
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(open_error)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(open_error)?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        // Everything else in schema.sql is IF NOT EXISTS, so applying it after the steps adds
        // what is missing. A fresh file (version 0) gets schema.sql alone.
        let steps = if version == 0 {
            &[][..]
        } else {
            &MIGRATIONS[(version - 1) as usize..]
        };
        let mut migrate = String::new();
        // After schema.sql, for tables it rebuilt.
        let mut after = String::new();
        for (index, step) in steps.iter().enumerate() {
            migrate.push_str(step.sql);
            if index == 0 {
                migrate.push_str(step.sql_if_first);
            }
            after.push_str(step.after_schema);
        }
        let migrating = steps.iter().any(|step| step.legacy_alter);
        if migrating {
            conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;")
                .map_err(open_error)?;
        }
        let applied = conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {migrate} {} {after} COMMIT;",
            include_str!("../../schema.sql")
        ));
        if migrating {
            conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = OFF;")
                .map_err(open_error)?;
        }
        if let Err(error) = applied {
            // A failed batch may have left its transaction open.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(open_error(error));
        }
    }
    Ok(conn)
}

/// Sets a connection's page cache: the writer keeps the hot b-tree pages of the outbox, readers
/// stay small (memory is part of the budget).
pub(crate) fn set_cache_kib(db: &Db, kib: i64) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::open::set_cache_kib(pg, kib));
    conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
    Ok(())
}

/// Creates the database file owner-only (0600) before SQLite does, or takes group and other
/// permissions away from an existing one and its `-wal`/`-shm`: they hold every endpoint secret
/// and the credentials in endpoint headers.
pub(crate) fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = Path::new(&file);
        // Not through a link: only a regular file of ours is changed.
        let Ok(metadata) = file.symlink_metadata() else {
            continue;
        };
        let mode = metadata.permissions().mode();
        if metadata.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700))?;
            log::info!(
                "file={} mode={:o}: made readable by its owner only (it holds secrets)",
                file.display(),
                mode & 0o700
            );
        }
    }
    Ok(())
}
