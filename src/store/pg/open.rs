//! Opening a Postgres database: connect, then apply schema-postgres.sql and its migrations
//! under an advisory lock, so instances starting together apply them once.

use super::{Conn, Role};
use crate::error::{Error, Result};

/// The Postgres schema this build writes. Versions count from 1, independently of SQLite's
/// `user_version`; `PG_MIGRATIONS[v - 1]` takes version v to v + 1, and schema-postgres.sql is
/// always the latest.
pub(crate) const PG_MIGRATIONS: &[&str] = &[];
pub(crate) const PG_SCHEMA_VERSION: i64 = PG_MIGRATIONS.len() as i64 + 1;

/// Advisory lock keys (one bigint space per database): schema changes, and maintenance
/// batches (retention, purge) that one instance at a time runs.
pub(crate) const LOCK_MIGRATIONS: i64 = -2;
pub(crate) const LOCK_MAINTENANCE: i64 = -1;

/// Connects; with `migrate`, also brings the schema to this build's version first.
pub(crate) fn open(url: &str, role: Role, migrate: bool) -> Result<Conn> {
    let mut conn = Conn::connect(url, role)?;
    if migrate {
        apply_schema(&mut conn, url)?;
    }
    Ok(conn)
}

fn apply_schema(conn: &mut Conn, url: &str) -> Result<()> {
    let client = conn.client();
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_MIGRATIONS])?;
    let applied = (|| -> Result<()> {
        let mut tx = client.transaction()?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
        let version: i64 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0);
        if version > PG_SCHEMA_VERSION {
            return Err(Error::Config(format!(
                "database {} has Postgres schema version {version}, newer than this build's \
                 {PG_SCHEMA_VERSION}: run a newer clockeye-webhooks",
                super::redacted(url)
            )));
        }
        if version == PG_SCHEMA_VERSION {
            return Ok(());
        }
        let steps = if version == 0 {
            &[][..]
        } else {
            &PG_MIGRATIONS[(version - 1) as usize..]
        };
        for step in steps {
            tx.batch_execute(step)?;
        }
        tx.batch_execute(include_str!("../../../schema-postgres.sql"))?;
        for applied in version.max(0) + 1..=PG_SCHEMA_VERSION {
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&applied],
            )?;
        }
        tx.commit()?;
        Ok(())
    })();
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_MIGRATIONS]);
    applied?;
    unlocked?;
    Ok(())
}

/// SQLite's page cache has no Postgres counterpart (the server's shared_buffers).
pub(crate) fn set_cache_kib(_pg: &mut Conn, _kib: i64) -> Result<()> {
    Ok(())
}
