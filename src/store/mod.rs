//! All SQL. Small functions named for what they do; the "due" predicate is written once
//! (`DUE`). Every function takes a `&Connection`, so callers decide the transaction: the
//! scheduler groups many calls into one commit, API threads run single statements.

pub mod owner;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};
use crate::model::{AttemptResult, Decision, Job, NewEvent, StoredEvent};
use crate::signing::{new_id, sha256_hex};

/// The schema this build writes; `schema.sql` sets the same `user_version`.
pub const SCHEMA_VERSION: i64 = 7;
/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of the writer's connection (negative: KiB) and of each reader's.
pub const WRITER_CACHE_KIB: i64 = 16 * 1024;
pub const READER_CACHE_KIB: i64 = 1024;
/// Prepared statements kept per connection.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Opens (creating if needed) the database: WAL, `synchronous=FULL`, foreign keys, schema applied.
/// The file, and so its `-wal` and `-shm` (SQLite gives them the database's mode), is owner-only.
pub fn open(path: &Path) -> Result<Connection> {
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
        // Version 1 lacked `endpoints.failing_since_ms` (and had another due index, which
        // schema.sql drops); version 2 lacked `events_by_time`; version 3 lacked rotation,
        // test events, free attempts and tokens. Everything else in schema.sql is IF NOT
        // EXISTS, so applying it after these changes adds what is missing. Version 4 lacked
        // claim leases (`deliveries.lease_expires_at_ms`, `deliveries.claims`); version 5 had
        // event ids unique overall and no `endpoints.deleted_at_ms`.
        let mut migrate = String::new();
        // After schema.sql, for the events table rebuilt below.
        let mut after = String::new();
        if version == 1 {
            migrate.push_str("ALTER TABLE endpoints ADD COLUMN failing_since_ms INTEGER;");
        }
        if (1..4).contains(&version) {
            migrate.push_str(
                "ALTER TABLE endpoints ADD COLUMN last_success_at_ms INTEGER;
                 ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
                 ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at_ms INTEGER;
                 ALTER TABLE endpoints ADD COLUMN sign_with_previous INTEGER NOT NULL DEFAULT 0
                     CHECK (sign_with_previous IN (0, 1));
                 ALTER TABLE events ADD COLUMN test INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1));
                 ALTER TABLE deliveries ADD COLUMN free_attempts INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE deliveries ADD COLUMN free_attempt_number INTEGER;",
            );
        }
        if (1..5).contains(&version) {
            migrate.push_str(
                "ALTER TABLE deliveries ADD COLUMN lease_expires_at_ms INTEGER;
                 ALTER TABLE deliveries ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;",
            );
        }
        if (1..6).contains(&version) {
            // A table constraint cannot be dropped: the events table is rebuilt by schema.sql
            // and the rows copied over. The old table is renamed first with the legacy rename
            // (deliveries keep referring to `events`, i.e. the new table) and with foreign
            // keys off (dropping it must not cascade); its indexes go first so schema.sql
            // makes them afresh on the new table.
            migrate.push_str(
                "ALTER TABLE endpoints ADD COLUMN deleted_at_ms INTEGER;
                 DROP INDEX IF EXISTS events_by_workspace;
                 DROP INDEX IF EXISTS events_by_time;
                 ALTER TABLE events RENAME TO events_v4;",
            );
            after.push_str(
                "INSERT INTO events (seq, id, workspace_id, type, created_at_ms, body, test)
                     SELECT seq, id, workspace_id, type, created_at_ms, body, test FROM events_v4;
                 DROP TABLE events_v4;",
            );
        }
        if (1..7).contains(&version) {
            // Version 6: flow control (rate limit, ordering by subject). Before version 6 the
            // events table is rebuilt above by schema.sql, which has `events.subject` already.
            migrate.push_str(
                "ALTER TABLE endpoints ADD COLUMN rate_limit INTEGER
                     CHECK (rate_limit BETWEEN 1 AND 10000);
                 ALTER TABLE endpoints ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none'
                     CHECK (ordering IN ('none', 'subject'));
                 ALTER TABLE deliveries ADD COLUMN subject TEXT;",
            );
            if version == 6 {
                migrate.push_str("ALTER TABLE events ADD COLUMN subject TEXT;");
            }
        }
        let migrating = (1..6).contains(&version);
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
pub fn set_cache_kib(conn: &Connection, kib: i64) -> Result<()> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
    Ok(())
}

pub fn meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        [key, value],
    )?;
    Ok(())
}

/// After a crash, attempts that were in flight are unknown: send them again (at least once).
pub fn recover_delivering(conn: &Connection, now_ms: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?1, updated_at_ms = ?1,
                               lease_expires_at_ms = NULL
         WHERE status = 'delivering'",
        [now_ms],
    )?)
}

// ---------------------------------------------------------------------------------------------
// Ingest

/// Stores one event and a `pending` delivery for each endpoint of its workspace subscribed to
/// its type. A known id in the same workspace returns the original and queues nothing; ids are
/// per workspace, so another workspace's use of the id is not looked at.
pub fn insert_event(conn: &Connection, event: &NewEvent, now_ms: i64) -> Result<StoredEvent> {
    let existing = conn
        .prepare_cached(
            "SELECT seq, type, created_at_ms FROM events WHERE id = ?1 AND workspace_id = ?2",
        )?
        .query_row([&event.id, &event.workspace_id], |row| {
            Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    if let Some((seq, event_type, created_at_ms)) = existing {
        let deliveries = conn
            .prepare_cached(
                "SELECT d.id, e.id FROM deliveries d JOIN endpoints e ON e.seq = d.endpoint_seq
                 WHERE d.event_seq = ?1 AND e.deleted_at_ms IS NULL ORDER BY d.seq",
            )?
            .query_map([seq], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        return Ok(StoredEvent {
            id: event.id.clone(),
            workspace_id: event.workspace_id.clone(),
            event_type,
            created_at_ms,
            deliveries,
            created: false,
        });
    }
    conn.prepare_cached("INSERT INTO events (id, workspace_id, type, created_at_ms, body, test, subject) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
        .execute(params![event.id, event.workspace_id, event.event_type, event.created_at_ms, event.body,
                         event.test_endpoint_seq.is_some(), event.subject])?;
    let event_seq = conn.last_insert_rowid();
    // A test event goes to its one endpoint, whatever that subscribes to.
    let subscribers = conn
        .prepare_cached(
            "SELECT seq, id, CASE WHEN ?2 IS NULL THEN event_types ELSE '[\"*\"]' END, ordering = 'subject'
             FROM endpoints WHERE workspace_id = ?1 AND (?2 IS NULL OR seq = ?2) AND deleted_at_ms IS NULL ORDER BY seq",
        )?
        .query_map(params![event.workspace_id, event.test_endpoint_seq], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms, subject)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4, ?5)",
    )?;
    let mut deliveries = Vec::new();
    for (endpoint_seq, endpoint_id, event_types, ordered) in subscribers {
        if !subscribes(&event_types, &event.event_type) {
            continue;
        }
        let delivery_id = new_id("dlv");
        // The subject is kept on the delivery only where the endpoint orders by it, so other
        // endpoints' deliveries stay out of its index.
        let subject = event.subject.as_deref().filter(|_| ordered);
        insert.execute(params![
            delivery_id,
            event_seq,
            endpoint_seq,
            now_ms,
            subject
        ])?;
        deliveries.push((delivery_id, endpoint_id));
    }
    Ok(StoredEvent {
        id: event.id.clone(),
        workspace_id: event.workspace_id.clone(),
        event_type: event.event_type.clone(),
        created_at_ms: event.created_at_ms,
        deliveries,
        created: true,
    })
}

/// Does an endpoint's `event_types` JSON (`["*"]` or a list of types) include `event_type`?
fn subscribes(event_types_json: &str, event_type: &str) -> bool {
    serde_json::from_str::<Vec<String>>(event_types_json)
        .map(|types| types.iter().any(|t| t == "*" || t == event_type))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Scheduling

/// The one definition of "pending for an endpoint", matching the partial index
/// `deliveries_pending` (endpoint, then time): every scheduling query reads through it.
const PENDING_FOR_ENDPOINT: &str = "d.status = 'pending' AND d.endpoint_seq = ?1";
/// The one definition of "held by ordering": an earlier delivery of the same subject to the
/// same endpoint is unfinished (`pending` or `delivering`). Only deliveries of endpoints with
/// `ordering: "subject"` have a subject. Written into every claim, so order holds across
/// retries, restarts and kill -9, not only in memory.
const NOT_HELD_BY_ORDERING: &str = "(d.subject IS NULL OR NOT EXISTS (
    SELECT 1 FROM deliveries p
    WHERE p.endpoint_seq = d.endpoint_seq AND p.subject = d.subject AND p.seq < d.seq
      AND p.status IN ('pending', 'delivering')))";

/// Each enabled endpoint that has pending deliveries, with when its earliest is due. One index
/// seek per such endpoint (a skip scan written as a recursive query), however long the queues:
/// a disabled endpoint's backlog costs one seek, not a scan.
pub fn pending_endpoints(conn: &Connection) -> Result<Vec<(i64, i64)>> {
    let sql = format!(
        "WITH RECURSIVE pending(endpoint_seq) AS (
             SELECT (SELECT MIN(endpoint_seq) FROM deliveries WHERE status = 'pending')
             UNION ALL
             SELECT (SELECT MIN(endpoint_seq) FROM deliveries
                     WHERE status = 'pending' AND endpoint_seq > pending.endpoint_seq)
             FROM pending WHERE pending.endpoint_seq IS NOT NULL
         )
         SELECT p.endpoint_seq,
                (SELECT MIN(d.next_attempt_at_ms) FROM deliveries d WHERE {PENDING_FOR_ENDPOINT})
         FROM pending p JOIN endpoints e ON e.seq = p.endpoint_seq
         WHERE e.enabled = 1 AND e.deleted_at_ms IS NULL"
    )
    .replace("?1", "p.endpoint_seq");
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// When the earliest pending delivery of one endpoint not held by ordering is due, if it has
/// any. (A held one becomes claimable when the delivery holding it finishes, whose result
/// wakes the scheduler anyway.)
pub fn next_due_for_endpoint(conn: &Connection, endpoint_seq: i64) -> Result<Option<i64>> {
    // In index order, stopping at the first row not held (MIN() would read every pending row
    // of the endpoint once a predicate beyond the index is added).
    let sql = format!(
        "SELECT d.next_attempt_at_ms FROM deliveries d WHERE {PENDING_FOR_ENDPOINT} AND {NOT_HELD_BY_ORDERING}
         ORDER BY d.next_attempt_at_ms LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([endpoint_seq], |row| row.get(0))
        .optional()?)
}

/// Marks up to `limit` due deliveries of one endpoint `delivering` under a lease ending at
/// `lease_expires_at_ms` and returns the attempts to make, oldest due first; a delivery held by
/// ordering (an earlier one of its subject is unfinished) is not claimed. Each claim counts
/// up `claims`; the job carries the count, and its result is written only while it still names
/// the latest claim (see `record_attempt`).
pub fn claim_due(
    conn: &Connection,
    endpoint_seq: i64,
    now_ms: i64,
    limit: usize,
    lease_expires_at_ms: i64,
) -> Result<Vec<Job>> {
    let sql = format!(
        "SELECT d.seq, d.id, d.attempts_made, e.seq, e.url, e.secret, e.headers, ev.id, ev.type, ev.body,
                CASE WHEN e.previous_secret_expires_at_ms > ?2 THEN e.previous_secret END,
                e.sign_with_previous, d.free_attempts, d.free_attempt_number,
                COALESCE(e.previous_secret_expires_at_ms, 0), e.workspace_id, d.claims, e.rate_limit
         FROM deliveries d
         JOIN endpoints e ON e.seq = d.endpoint_seq
         JOIN events ev ON ev.seq = d.event_seq
         WHERE {PENDING_FOR_ENDPOINT} AND d.next_attempt_at_ms <= ?2 AND e.deleted_at_ms IS NULL
           AND {NOT_HELD_BY_ORDERING}
         ORDER BY d.next_attempt_at_ms LIMIT ?3"
    );
    let jobs = conn
        .prepare_cached(&sql)?
        .query_map(params![endpoint_seq, now_ms, limit as i64], |row| {
            let headers: String = row.get(6)?;
            let body: Vec<u8> = row.get(9)?;
            let attempt_number = row.get::<_, u32>(2)? + 1;
            let free_attempts: u32 = row.get(12)?;
            let free_attempt_number: Option<u32> = row.get(13)?;
            Ok(Job {
                delivery_seq: row.get(0)?,
                delivery_id: row.get(1)?,
                attempt_number,
                endpoint_seq: row.get(3)?,
                url: row.get(4)?,
                secret: row.get(5)?,
                previous_secret: row.get(10)?,
                previous_secret_until_ms: row.get(14)?,
                sign_with_previous: row.get(11)?,
                headers: parse_headers(&headers),
                event_id: row.get(7)?,
                event_type: row.get(8)?,
                body: Arc::from(body),
                schedule_step: attempt_number.saturating_sub(free_attempts).max(1),
                may_switch_secret: free_attempt_number != Some(attempt_number),
                workspace_id: row.get(15)?,
                claim: row.get::<_, i64>(16)? + 1,
                rate_limit: row.get(17)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut mark = conn.prepare_cached(
        "UPDATE deliveries SET status = 'delivering', next_attempt_at_ms = NULL, updated_at_ms = ?2,
                               lease_expires_at_ms = ?3, claims = ?4
         WHERE seq = ?1",
    )?;
    for job in &jobs {
        mark.execute(params![
            job.delivery_seq,
            now_ms,
            lease_expires_at_ms,
            job.claim
        ])?;
    }
    Ok(jobs)
}

/// Writes an attempt and its delivery's new status together. A delivery deleted meanwhile
/// (its endpoint was removed) is skipped, and so is one claimed again since this attempt's
/// claim (its lease ran out and another claim holds it now): the newer claim is not clobbered.
/// A lease that ran out and was not claimed again (`pending`) still takes its result.
pub fn record_attempt(conn: &Connection, result: &AttemptResult, now_ms: i64) -> Result<()> {
    let mut decision = result.decision;
    let mut choose_previous = None;
    if let Some(rejected) = &result.rejected_secret_sha256 {
        // Refused signature: if a rotation overlap is live now (it may have begun while the
        // attempt was in flight), the next attempt goes at once with the secret not refused.
        // (An endpoint deleted meanwhile has no secrets; its delivery is gone too.)
        if let Some(Secrets {
            current: secret,
            previous: Some((previous, _)),
        }) = endpoint_secrets(conn, result.endpoint_seq, now_ms)?
        {
            let finished_at_ms = result.outcome.started_at_ms + result.outcome.duration_ms;
            decision = Decision::SwitchSecret(finished_at_ms);
            if sha256_hex(&secret) == *rejected {
                choose_previous = Some(true);
            } else if sha256_hex(&previous) == *rejected {
                choose_previous = Some(false);
            }
        }
    }
    let (status, next_attempt_at_ms) = match decision {
        Decision::Succeeded => ("succeeded", None),
        Decision::RetryAt(at_ms) | Decision::SwitchSecret(at_ms) => ("pending", Some(at_ms)),
        Decision::Failed => ("failed", None),
    };
    // The attempt after a secret switch is free: it uses no step of the retry schedule.
    let free_attempt = matches!(decision, Decision::SwitchSecret(_));
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts_made = ?3, next_attempt_at_ms = ?4, updated_at_ms = ?5,
                                   free_attempts = free_attempts + ?6,
                                   free_attempt_number = CASE WHEN ?6 THEN ?3 + 1 ELSE free_attempt_number END,
                                   lease_expires_at_ms = NULL
             WHERE seq = ?1 AND claims = ?7 AND status IN ('delivering', 'pending')",
        )?
        .execute(params![result.delivery_seq, status, result.attempt_number, next_attempt_at_ms, now_ms, free_attempt, result.claim])?;
    if let (1, Some(choose_previous)) = (changed, choose_previous) {
        // The secret not refused becomes this endpoint's choice for X-ClockEye-Signature. (A
        // refused secret that is no longer live, from before another rotation, changes nothing.)
        conn.prepare_cached("UPDATE endpoints SET sign_with_previous = ?2 WHERE seq = ?1")?
            .execute(params![result.endpoint_seq, choose_previous])?;
    }
    if changed == 0 {
        return Ok(());
    }
    let outcome = &result.outcome;
    conn.prepare_cached(
        "INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code, error_class,
                               error_message, response_excerpt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        result.delivery_seq,
        result.attempt_number,
        outcome.started_at_ms,
        outcome.duration_ms,
        outcome.status_code,
        outcome.error_class.map(|class| class.as_str()),
        outcome.error_message,
        outcome.response_excerpt,
    ])?;
    Ok(())
}

/// Keeps an endpoint's health up to date after an attempt, in the attempt's transaction: a
/// success clears `failing_since_ms`, a failure sets it if unset. The endpoint is disabled when
/// the receiver answered 410 Gone, or when every attempt has failed for `disable_after_ms`.
/// Returns the reason when it was disabled just now.
pub fn record_endpoint_health(
    conn: &Connection,
    result: &AttemptResult,
    now_ms: i64,
    disable_after_ms: i64,
) -> Result<Option<String>> {
    let endpoint_seq = result.endpoint_seq;
    if result.outcome.succeeded() {
        // To the second: most successes in a busy second then write nothing.
        let finished_at_ms = result.outcome.started_at_ms + result.outcome.duration_ms;
        conn.prepare_cached(
            "UPDATE endpoints SET failing_since_ms = NULL, last_success_at_ms = ?2
             WHERE seq = ?1 AND (failing_since_ms IS NOT NULL OR last_success_at_ms IS NULL
                                 OR last_success_at_ms < ?2 - 1000)",
        )?
        .execute(params![endpoint_seq, finished_at_ms])?;
        return Ok(None);
    }
    conn.prepare_cached(
        "UPDATE endpoints SET failing_since_ms = ?2 WHERE seq = ?1 AND failing_since_ms IS NULL",
    )?
    .execute(params![endpoint_seq, now_ms])?;
    let reason = if result.outcome.status_code == Some(410) {
        Some(format!(
            "the receiver answered 410 Gone (delivery {})",
            result.delivery_id
        ))
    } else {
        let failing_since_ms: Option<i64> = conn
            .prepare_cached(
                "SELECT failing_since_ms FROM endpoints WHERE seq = ?1 AND enabled = 1",
            )?
            .query_row([endpoint_seq], |row| row.get(0))
            .optional()?
            .flatten();
        failing_since_ms
            .filter(|since| now_ms.saturating_sub(*since) >= disable_after_ms)
            .map(|since| {
                format!(
                    "every attempt failed since {} (--disable-after {})",
                    crate::time::format_rfc3339_seconds(since),
                    crate::time::format_duration(std::time::Duration::from_millis(
                        disable_after_ms as u64
                    ))
                )
            })
    };
    let Some(reason) = reason else {
        return Ok(None);
    };
    let changed = conn
        .prepare_cached("UPDATE endpoints SET enabled = 0, disabled_reason = ?2, updated_at_ms = ?3 WHERE seq = ?1 AND enabled = 1")?
        .execute(params![endpoint_seq, reason, now_ms])?;
    Ok((changed == 1).then_some(reason))
}

/// Retention: deletes up to `limit` events created before `cutoff_ms` whose deliveries have all
/// finished, with their deliveries and attempts (foreign keys cascade), oldest first. Pending
/// work is never pruned. Returns how many events went.
pub fn prune_events(conn: &Connection, cutoff_ms: i64, limit: usize) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM events WHERE seq IN (
                 SELECT ev.seq FROM events ev
                 WHERE ev.created_at_ms < ?1
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.event_seq = ev.seq AND d.status IN ('pending', 'delivering'))
                 ORDER BY ev.created_at_ms LIMIT ?2)",
        )?
        .execute(params![cutoff_ms, limit as i64])?)
}

/// Forgets previous secrets whose rotation overlap has ended.
pub fn retire_previous_secrets(conn: &Connection, now_ms: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE endpoints SET previous_secret = NULL, previous_secret_expires_at_ms = NULL,
                                  sign_with_previous = 0
             WHERE previous_secret_expires_at_ms <= ?1",
        )?
        .execute([now_ms])?)
}

/// The database's share of `/metrics`.
pub fn metrics_gauges(
    conn: &Connection,
    now_ms: i64,
) -> Result<crate::http::metrics::DatabaseGauges> {
    let (deliveries_pending, oldest_due_ms): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(CASE WHEN next_attempt_at_ms <= ?1 THEN next_attempt_at_ms END)
             FROM deliveries WHERE status = 'pending'",
        )?
        .query_row([now_ms], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let endpoints_disabled: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM endpoints WHERE enabled = 0 AND deleted_at_ms IS NULL",
        )?
        .query_row([], |row| row.get(0))?;
    Ok(crate::http::metrics::DatabaseGauges {
        deliveries_pending,
        oldest_due_age_ms: oldest_due_ms.map_or(0, |due| (now_ms - due).max(0)),
        endpoints_disabled,
    })
}

/// Puts a claimed delivery whose attempt never started (or whose worker panicked) back to
/// `pending`, due at `due_ms`, if that claim still holds it.
pub fn release_delivery(conn: &Connection, release: &Release, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?2, updated_at_ms = ?4,
                               lease_expires_at_ms = NULL
         WHERE seq = ?1 AND claims = ?3 AND status = 'delivering'",
    )?
    .execute(params![
        release.delivery_seq,
        release.due_ms,
        release.claim,
        now_ms
    ])?;
    Ok(())
}

/// A claim given up without an attempt to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub delivery_seq: i64,
    /// The claim given up (`Job::claim`).
    pub claim: i64,
    /// When the delivery is due again.
    pub due_ms: i64,
}

/// Extends a claim's lease to `lease_expires_at_ms` while that claim still holds the delivery;
/// false when it does not (its lease ran out and was released, or it was claimed again).
pub fn renew_lease(
    conn: &Connection,
    delivery_seq: i64,
    claim: i64,
    lease_expires_at_ms: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET lease_expires_at_ms = ?3
             WHERE seq = ?1 AND claims = ?2 AND status = 'delivering'",
        )?
        .execute(params![delivery_seq, claim, lease_expires_at_ms])?
        == 1)
}

/// Returns up to `limit` claims whose lease ended before `now_ms` to `pending`, due now: their
/// owner died or lost them. A predicate on time alone, so any instance sharing the database
/// may run it. Returns how many went back.
pub fn release_expired_leases(conn: &Connection, now_ms: i64, limit: usize) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?1, updated_at_ms = ?1,
                                   lease_expires_at_ms = NULL
             WHERE seq IN (SELECT seq FROM deliveries
                           WHERE status = 'delivering' AND lease_expires_at_ms < ?1
                           LIMIT ?2)",
        )?
        .execute(params![now_ms, limit as i64])?)
}

// ---------------------------------------------------------------------------------------------
// Endpoints

#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub seq: i64,
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub headers: Vec<(String, String)>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since_ms: Option<i64>,
    pub last_success_at_ms: Option<i64>,
    /// End of the running rotation overlap, if one is running.
    pub previous_secret_expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Most attempt starts in any second; None: no limit.
    pub rate_limit: Option<u32>,
    /// `"none"` or `"subject"`.
    pub ordering: String,
}

fn parse_headers(json: &str) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
        .map(|map| {
            map.into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

const ENDPOINT_COLUMNS: &str = "seq, id, workspace_id, url, event_types, description, headers, enabled, disabled_reason, \
     created_at_ms, updated_at_ms, failing_since_ms, last_success_at_ms, \
     CASE WHEN previous_secret_expires_at_ms > CAST(unixepoch('subsec') * 1000 AS INTEGER) \
          THEN previous_secret_expires_at_ms END, rate_limit, ordering";

fn endpoint_from_row(row: &Row) -> rusqlite::Result<EndpointRow> {
    let event_types: String = row.get(4)?;
    let headers: String = row.get(6)?;
    Ok(EndpointRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        workspace_id: row.get(2)?,
        url: row.get(3)?,
        event_types: serde_json::from_str(&event_types).unwrap_or_default(),
        description: row.get(5)?,
        headers: parse_headers(&headers),
        enabled: row.get(7)?,
        disabled_reason: row.get(8)?,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        failing_since_ms: row.get(11)?,
        last_success_at_ms: row.get(12)?,
        previous_secret_expires_at_ms: row.get(13)?,
        rate_limit: row.get(14)?,
        ordering: row.get(15)?,
    })
}

/// Inserts a new endpoint with its secret; fills in `seq`.
pub fn insert_endpoint(conn: &Connection, endpoint: &mut EndpointRow, secret: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, description, headers, enabled,
                                disabled_reason, created_at_ms, updated_at_ms, rate_limit, ordering)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        endpoint.id,
        endpoint.workspace_id,
        endpoint.url,
        secret,
        serde_json::to_string(&endpoint.event_types).expect("strings serialize"),
        endpoint.description,
        headers_json(&endpoint.headers),
        endpoint.enabled,
        endpoint.disabled_reason,
        endpoint.created_at_ms,
        endpoint.updated_at_ms,
        endpoint.rate_limit,
        endpoint.ordering,
    ])?;
    endpoint.seq = conn.last_insert_rowid();
    Ok(())
}

/// The public id of the endpoint with this `seq`, if it still exists.
pub fn endpoint_id(conn: &Connection, seq: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM endpoints WHERE seq = ?1")?
        .query_row([seq], |row| row.get(0))
        .optional()?)
}

pub fn endpoint(conn: &Connection, id: &str) -> Result<Option<EndpointRow>> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1 AND deleted_at_ms IS NULL");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], endpoint_from_row)
        .optional()?)
}

/// A page of endpoints, newest first, after the cursor `before_seq`; `workspace_id` narrows it.
pub fn endpoints(
    conn: &Connection,
    workspace_id: Option<&str>,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<EndpointRow>> {
    let (sql, values) = endpoints_query(workspace_id, before_seq, limit);
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), endpoint_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

fn endpoints_query(
    workspace_id: Option<&str>,
    before_seq: i64,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut filter = Where::default();
    filter.add("workspace_id = ?", workspace_id.map(String::from));
    filter.add("seq < ?", Some(before_seq));
    filter.terms.push("deleted_at_ms IS NULL");
    filter.finish(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints"),
        "ORDER BY seq DESC",
        limit,
    )
}

type SqlValue = rusqlite::types::Value;

/// A WHERE clause made of only the filters given. A term written `(?1 IS NULL OR col = ?1)`
/// keeps one statement for every filter set but hides the column from the planner, so every
/// list scanned the whole table; with the term left out, each list searches an index.
#[derive(Default)]
struct Where {
    terms: Vec<&'static str>,
    values: Vec<SqlValue>,
}

impl Where {
    /// Adds `term` (with one `?` per value) when `value` is given.
    fn add<T: Into<SqlValue>>(&mut self, term: &'static str, value: Option<T>) {
        if let Some(value) = value {
            let value = value.into();
            for _ in 0..term.matches('?').count() {
                self.values.push(value.clone());
            }
            self.terms.push(term);
        }
    }

    fn finish(mut self, select: &str, order: &str, limit: usize) -> (String, Vec<SqlValue>) {
        self.values.push(SqlValue::Integer(limit as i64));
        let sql = format!(
            "{select} WHERE {} {order} LIMIT ?",
            self.terms.join(" AND ")
        );
        (sql, self.values)
    }
}

/// Writes the named fields of an endpoint (`url`, `events`, `description`, `headers`,
/// `enabled`, `rate_limit`, `ordering`) from `endpoint`, and nothing else: a PATCH must not undo what the scheduler wrote
/// meanwhile (an endpoint it disabled, its health). Disabling keeps an earlier reason;
/// enabling a disabled endpoint clears the reason and starts the health record afresh.
pub fn update_endpoint(conn: &Connection, endpoint: &EndpointRow, fields: &[&str]) -> Result<bool> {
    let named = |field: &str| fields.contains(&field);
    let changed = conn
        .prepare_cached(
            "UPDATE endpoints SET url = COALESCE(?2, url), event_types = COALESCE(?3, event_types),
                                  description = COALESCE(?4, description), headers = COALESCE(?5, headers),
                                  failing_since_ms = CASE WHEN ?6 = 1 AND enabled = 0 THEN NULL ELSE failing_since_ms END,
                                  disabled_reason = CASE WHEN ?6 IS NULL THEN disabled_reason
                                                         WHEN ?6 = 1 THEN NULL
                                                         ELSE COALESCE(disabled_reason, ?7) END,
                                  enabled = COALESCE(?6, enabled), updated_at_ms = ?8,
                                  rate_limit = CASE WHEN ?9 THEN ?10 ELSE rate_limit END,
                                  ordering = COALESCE(?11, ordering)
             WHERE seq = ?1",
        )?
        .execute(params![
            endpoint.seq,
            named("url").then_some(&endpoint.url),
            named("events")
                .then(|| serde_json::to_string(&endpoint.event_types).expect("strings serialize")),
            named("description").then_some(&endpoint.description),
            named("headers").then(|| headers_json(&endpoint.headers)),
            named("enabled").then_some(endpoint.enabled),
            endpoint.disabled_reason,
            endpoint.updated_at_ms,
            named("rate_limit"),
            endpoint.rate_limit,
            named("ordering").then_some(&endpoint.ordering),
        ])?;
    if changed == 1 && named("ordering") {
        set_delivery_subjects(conn, endpoint.seq, endpoint.ordering == "subject")?;
    }
    Ok(changed == 1)
}

/// Ordering by subject turned on: the endpoint's unfinished deliveries take their events'
/// subjects (finished ones take theirs if retried); turned off: every delivery forgets it.
fn set_delivery_subjects(conn: &Connection, endpoint_seq: i64, ordered: bool) -> Result<()> {
    let sql = if ordered {
        "UPDATE deliveries SET subject = (SELECT ev.subject FROM events ev WHERE ev.seq = deliveries.event_seq)
         WHERE endpoint_seq = ?1 AND subject IS NULL AND status IN ('pending', 'delivering')"
    } else {
        "UPDATE deliveries SET subject = NULL WHERE endpoint_seq = ?1 AND subject IS NOT NULL"
    };
    conn.prepare_cached(sql)?.execute([endpoint_seq])?;
    Ok(())
}

/// An endpoint's live secrets.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub current: String,
    /// The previous secret while its rotation overlap lasts, with the overlap's end.
    pub previous: Option<(String, i64)>,
}

/// An endpoint's live secrets at `now_ms`; None when the endpoint does not exist (any more).
pub fn endpoint_secrets(conn: &Connection, seq: i64, now_ms: i64) -> Result<Option<Secrets>> {
    Ok(conn
        .prepare_cached(
            "SELECT secret, previous_secret, previous_secret_expires_at_ms FROM endpoints WHERE seq = ?1",
        )?
        .query_row([seq], |row| {
            let previous: Option<String> = row.get(1)?;
            let expires_at_ms: Option<i64> = row.get(2)?;
            let live = match (previous, expires_at_ms) {
                (Some(previous), Some(at)) if at > now_ms => Some((previous, at)),
                _ => None,
            };
            Ok(Secrets {
                current: row.get(0)?,
                previous: live,
            })
        })
        .optional()?)
}

/// Rotation: `secret` becomes current. With an overlap, the secret the receiver last accepted
/// (the current one, or during an earlier overlap the one it still uses) stays live until
/// `now + overlap` and signs `X-ClockEye-Signature` first; the other old one is retired. With
/// no overlap every old secret is retired at once.
pub fn rotate_secret(
    conn: &Connection,
    seq: i64,
    secret: &str,
    overlap_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE endpoints SET
                 previous_secret = CASE WHEN ?3 <= 0 THEN NULL
                                        WHEN sign_with_previous = 1 AND previous_secret_expires_at_ms > ?4
                                            THEN previous_secret
                                        ELSE secret END,
                 previous_secret_expires_at_ms = CASE WHEN ?3 > 0 THEN ?4 + ?3 END,
                 sign_with_previous = ?3 > 0,
                 secret = ?2,
                 updated_at_ms = ?4
             WHERE seq = ?1",
        )?
        .execute(params![seq, secret, overlap_ms, now_ms])?;
    Ok(changed == 1)
}

/// Recover: puts up to `limit` of an endpoint's `failed` deliveries created in
/// [`window.0`, `window.1`), with `seq` above `after_seq`, back to `pending`, due now, oldest
/// first. Their attempt count continues. Returns how many, and when more are left the cursor
/// to go on from (the last `seq` taken).
pub fn recover_failed(
    conn: &Connection,
    endpoint_seq: i64,
    window: (i64, i64),
    after_seq: i64,
    now_ms: i64,
    limit: usize,
) -> Result<(usize, Option<i64>)> {
    // One statement (it waits for the write lock like any other), then a read: a deferred
    // transaction that reads first could not upgrade to a write while the scheduler commits.
    let requeued: Vec<i64> = conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?6, updated_at_ms = ?6,
                                   subject = COALESCE(subject, (SELECT ev.subject FROM events ev JOIN endpoints e ON e.seq = deliveries.endpoint_seq
                                              WHERE ev.seq = deliveries.event_seq AND e.ordering = 'subject'))
             WHERE seq IN (SELECT seq FROM deliveries
                           WHERE endpoint_seq = ?1 AND status = 'failed'
                             AND created_at_ms >= ?2 AND created_at_ms < ?3 AND seq > ?4
                           ORDER BY seq LIMIT ?5)
             RETURNING seq",
        )?
        .query_map(
            params![
                endpoint_seq,
                window.0,
                window.1,
                after_seq,
                limit as i64,
                now_ms
            ],
            |row| row.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let Some(&last) = requeued.iter().max() else {
        return Ok((0, None));
    };
    let more: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deliveries
                            WHERE endpoint_seq = ?1 AND status = 'failed'
                              AND created_at_ms >= ?2 AND created_at_ms < ?3 AND seq > ?4)",
        )?
        .query_row(params![endpoint_seq, window.0, window.1, last], |row| {
            row.get(0)
        })?;
    Ok((requeued.len(), more.then_some(last)))
}

/// An endpoint's deliveries created since `since_ms`, newest first, as (status, created_at_ms),
/// at most `limit` of them: what the stats of one endpoint are counted from.
pub fn recent_deliveries(
    conn: &Connection,
    endpoint_seq: i64,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    let mut statement = conn.prepare_cached(
        "SELECT status, created_at_ms FROM deliveries WHERE endpoint_seq = ?1 ORDER BY seq DESC",
    )?;
    let mut rows = statement.query([endpoint_seq])?;
    let mut recent = Vec::new();
    while let Some(row) = rows.next()? {
        let created_at_ms: i64 = row.get(1)?;
        // Rows come newest first and seq grows with time: the window ends at the first older one.
        if created_at_ms < since_ms || recent.len() >= limit {
            break;
        }
        recent.push((row.get(0)?, created_at_ms));
    }
    Ok(recent)
}

/// Deletes an endpoint as the API sees it: one row written, so it answers at once. From now
/// on the endpoint is not found, gets no new deliveries and has none claimed; its history
/// goes later, in batches (`purge_deleted_endpoint`).
pub fn delete_endpoint(conn: &Connection, seq: i64, now_ms: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE endpoints SET deleted_at_ms = ?2, updated_at_ms = ?2
             WHERE seq = ?1 AND deleted_at_ms IS NULL",
        )?
        .execute(params![seq, now_ms])?
        == 1)
}

/// One batch of a deleted endpoint's history: up to `limit` of its deliveries with their
/// attempts (foreign keys cascade), and once none is left the endpoint's row. Events stay,
/// as other endpoints' deliveries or the event list may still want them; retention prunes
/// them like any other. Returns how many rows of `deliveries` and `endpoints` went (0: no
/// deleted endpoint is left).
pub fn purge_deleted_endpoint(conn: &Connection, limit: usize) -> Result<usize> {
    let Some(endpoint_seq) = conn
        .prepare_cached(
            "SELECT seq FROM endpoints WHERE deleted_at_ms IS NOT NULL ORDER BY seq LIMIT 1",
        )?
        .query_row([], |row| row.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(0);
    };
    let deliveries = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE seq IN (
                 SELECT seq FROM deliveries WHERE endpoint_seq = ?1 ORDER BY seq LIMIT ?2)",
        )?
        .execute(params![endpoint_seq, limit as i64])?;
    if deliveries == limit {
        return Ok(deliveries);
    }
    let endpoints = conn
        .prepare_cached("DELETE FROM endpoints WHERE seq = ?1")?
        .execute([endpoint_seq])?;
    Ok(deliveries + endpoints)
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub workspace_id: String,
    pub event_type: String,
    pub created_at_ms: i64,
    pub body: Vec<u8>,
    pub test: bool,
    pub subject: Option<String>,
}

const EVENT_COLUMNS: &str = "seq, id, workspace_id, type, created_at_ms, body, test, subject";

fn event_from_row(row: &Row) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        workspace_id: row.get(2)?,
        event_type: row.get(3)?,
        created_at_ms: row.get(4)?,
        body: row.get(5)?,
        test: row.get(6)?,
        subject: row.get(7)?,
    })
}

/// The events with this id, in `workspace_id` when given: ids are unique per workspace, so
/// without one there may be several (at most `limit` are returned).
pub fn events_by_id(
    conn: &Connection,
    id: &str,
    workspace_id: Option<&str>,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 AND (?2 IS NULL OR workspace_id = ?2)
         ORDER BY seq LIMIT ?3"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(params![id, workspace_id, limit as i64], event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Narrows `events`: each `None` matches everything.
#[derive(Debug, Default)]
pub struct EventFilter<'a> {
    pub workspace_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub since_ms: Option<i64>,
}

pub fn events(
    conn: &Connection,
    filter: &EventFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let (sql, values) = events_query(filter, before_seq, limit);
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

fn events_query(filter: &EventFilter, before_seq: i64, limit: usize) -> (String, Vec<SqlValue>) {
    let mut sql = Where::default();
    sql.add("workspace_id = ?", filter.workspace_id.map(String::from));
    sql.add("type = ?", filter.event_type.map(String::from));
    sql.add("created_at_ms >= ?", filter.since_ms);
    sql.add("seq < ?", Some(before_seq));
    sql.finish(
        &format!("SELECT {EVENT_COLUMNS} FROM events"),
        "ORDER BY seq DESC",
        limit,
    )
}

/// Creates the database file owner-only (0600) before SQLite does, or takes group and other
/// permissions away from an existing one and its `-wal`/`-shm`: they hold every endpoint secret
/// and the credentials in endpoint headers.
pub fn owner_only(path: &Path) -> std::io::Result<()> {
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

// ---------------------------------------------------------------------------------------------
// Deliveries and attempts

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub seq: i64,
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub workspace_id: String,
    pub endpoint_id: String,
    pub status: String,
    pub attempts_made: i64,
    pub next_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub test: bool,
}

const DELIVERY_SELECT: &str =
    "SELECT d.seq, d.id, ev.id, ev.type, ev.workspace_id, e.id, d.status, d.attempts_made,
        d.next_attempt_at_ms, d.created_at_ms, d.updated_at_ms, ev.test
    FROM deliveries d JOIN events ev ON ev.seq = d.event_seq
    JOIN endpoints e ON e.seq = d.endpoint_seq AND e.deleted_at_ms IS NULL";

fn delivery_from_row(row: &Row) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        workspace_id: row.get(4)?,
        endpoint_id: row.get(5)?,
        status: row.get(6)?,
        attempts_made: row.get(7)?,
        next_attempt_at_ms: row.get(8)?,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        test: row.get(11)?,
    })
}

pub fn delivery(conn: &Connection, id: &str) -> Result<Option<DeliveryRow>> {
    let sql = format!("{DELIVERY_SELECT} WHERE d.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], delivery_from_row)
        .optional()?)
}

/// Narrows `deliveries`: each `None` matches everything.
#[derive(Debug, Default)]
pub struct DeliveryFilter<'a> {
    pub workspace_id: Option<&'a str>,
    pub endpoint_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub status: Option<&'a str>,
}

pub fn deliveries(
    conn: &Connection,
    filter: &DeliveryFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<DeliveryRow>> {
    let (sql, values) = deliveries_query(filter, before_seq, limit);
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), delivery_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

fn deliveries_query(
    filter: &DeliveryFilter,
    before_seq: i64,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut sql = Where::default();
    // A delivery's endpoint and event are in the same workspace (ingest fans out within it):
    // the endpoints of a workspace lead to its deliveries through `deliveries_by_endpoint`.
    sql.add(
        "d.endpoint_seq IN (SELECT seq FROM endpoints WHERE workspace_id = ?) AND ev.workspace_id = ?",
        filter.workspace_id.map(String::from),
    );
    sql.add(
        "d.endpoint_seq = (SELECT seq FROM endpoints WHERE id = ?)",
        filter.endpoint_id.map(String::from),
    );
    // Event ids are unique per workspace: an id alone may name an event in several workspaces.
    sql.add(
        "d.event_seq IN (SELECT seq FROM events WHERE id = ?)",
        filter.event_id.map(String::from),
    );
    sql.add("d.status = ?", filter.status.map(String::from));
    sql.add("d.seq < ?", Some(before_seq));
    sql.finish(DELIVERY_SELECT, "ORDER BY d.seq DESC", limit)
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub number: i64,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub response_excerpt: Option<String>,
}

/// A delivery's last `limit` attempts, oldest first.
pub fn attempts(conn: &Connection, delivery_seq: i64, limit: usize) -> Result<Vec<AttemptRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT * FROM (
               SELECT number, started_at_ms, duration_ms, status_code, error_class, error_message, response_excerpt, seq
               FROM attempts WHERE delivery_seq = ?1 ORDER BY number DESC, seq DESC LIMIT ?2)
             ORDER BY number, seq",
        )?
        .query_map(params![delivery_seq, limit as i64], |row| {
            Ok(AttemptRow {
                number: row.get(0)?,
                started_at_ms: row.get(1)?,
                duration_ms: row.get(2)?,
                status_code: row.get(3)?,
                error_class: row.get(4)?,
                error_message: row.get(5)?,
                response_excerpt: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Puts a delivery that is not in flight back to `pending`, due now. False when it is in flight.
/// On an endpoint ordered by subject it takes its place in its subject's order again.
pub fn retry_delivery(conn: &Connection, seq: i64, now_ms: i64) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?2, updated_at_ms = ?2,
                                   subject = COALESCE(subject, (SELECT ev.subject FROM events ev JOIN endpoints e ON e.seq = deliveries.endpoint_seq
                                              WHERE ev.seq = deliveries.event_seq AND e.ordering = 'subject'))
             WHERE seq = ?1 AND status != 'delivering'",
        )?
        .execute(params![seq, now_ms])?;
    Ok(changed == 1)
}

// ---------------------------------------------------------------------------------------------
// Workspace tokens

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub seq: i64,
    pub id: String,
    pub workspace_id: String,
    pub description: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    /// When it stops working (portal sessions); None: until revoked.
    pub expires_at_ms: Option<i64>,
}

const TOKEN_COLUMNS: &str =
    "seq, id, workspace_id, description, created_at_ms, last_used_at_ms, expires_at_ms";

fn token_from_row(row: &Row) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        workspace_id: row.get(2)?,
        description: row.get(3)?,
        created_at_ms: row.get(4)?,
        last_used_at_ms: row.get(5)?,
        expires_at_ms: row.get(6)?,
    })
}

/// Stores a new workspace token by its hash; fills in `seq`.
pub fn insert_token(conn: &Connection, token: &mut TokenRow, token_sha256: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (id, workspace_id, token_sha256, description, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        token.id,
        token.workspace_id,
        token_sha256,
        token.description,
        token.created_at_ms,
        token.expires_at_ms
    ])?;
    token.seq = conn.last_insert_rowid();
    Ok(())
}

/// The workspace token with this hash, if it exists and has not expired at `now_ms`
/// (revoked tokens do not exist).
pub fn token_by_hash(
    conn: &Connection,
    token_sha256: &str,
    now_ms: i64,
) -> Result<Option<TokenRow>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens
         WHERE token_sha256 = ?1 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![token_sha256, now_ms], token_from_row)
        .optional()?)
}

/// Stores a portal link code (by its hash) for `workspace_id`, usable until `expires_at_ms`.
pub fn insert_portal_code(
    conn: &Connection,
    code_sha256: &str,
    workspace_id: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO portal_codes (code_sha256, workspace_id, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![code_sha256, workspace_id, now_ms, expires_at_ms])?;
    Ok(())
}

/// Uses up a portal code: deletes it and returns its workspace, if it exists and has not
/// expired. A second use finds nothing.
pub fn take_portal_code(
    conn: &Connection,
    code_sha256: &str,
    now_ms: i64,
) -> Result<Option<String>> {
    let workspace: Option<(String, i64)> = conn
        .prepare_cached(
            "DELETE FROM portal_codes WHERE code_sha256 = ?1 RETURNING workspace_id, expires_at_ms",
        )?
        .query_row([code_sha256], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(workspace
        .filter(|(_, expires_at_ms)| *expires_at_ms > now_ms)
        .map(|(workspace, _)| workspace))
}

/// Forgets portal codes and tokens that have expired.
pub fn prune_expired_access(conn: &Connection, now_ms: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM portal_codes WHERE expires_at_ms <= ?1")?
        .execute([now_ms])?
        + conn
            .prepare_cached("DELETE FROM tokens WHERE expires_at_ms <= ?1")?
            .execute([now_ms])?)
}

/// Notes that a token was used, to the minute (a write at most once a minute per token).
pub fn touch_token(conn: &Connection, token: &TokenRow, now_ms: i64) -> Result<()> {
    if token
        .last_used_at_ms
        .is_some_and(|used| now_ms - used < 60_000)
    {
        return Ok(());
    }
    conn.prepare_cached("UPDATE tokens SET last_used_at_ms = ?2 WHERE seq = ?1")?
        .execute(params![token.seq, now_ms])?;
    Ok(())
}

/// A page of one workspace's tokens, newest first, after the cursor `before_seq`.
pub fn tokens(
    conn: &Connection,
    workspace_id: &str,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<TokenRow>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE workspace_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(
            params![workspace_id, before_seq, limit as i64],
            token_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Revokes a token: it stops working at once. False when that workspace has no such token.
pub fn delete_token(conn: &Connection, workspace_id: &str, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM tokens WHERE workspace_id = ?1 AND id = ?2")?
        .execute([workspace_id, id])?
        == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite chooses for `sql`, one line per step.
    fn query_plan(conn: &Connection, sql: &str, values: &[SqlValue]) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(values), |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<String>>>()
            .unwrap()
    }

    /// Every list a workspace can ask for searches an index: none reads a whole table (other
    /// workspaces' rows included), whichever filters are given.
    #[test]
    fn every_workspace_list_uses_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("plans.db")).unwrap();
        let mut plans = Vec::new();
        let (sql, values) = endpoints_query(Some("ws"), i64::MAX, 51);
        plans.push((sql.clone(), query_plan(&conn, &sql, &values)));
        for event_type in [None, Some("user.activated")] {
            for since_ms in [None, Some(1_000)] {
                let filter = EventFilter {
                    workspace_id: Some("ws"),
                    event_type,
                    since_ms,
                };
                let (sql, values) = events_query(&filter, i64::MAX, 51);
                plans.push((sql.clone(), query_plan(&conn, &sql, &values)));
            }
        }
        for endpoint_id in [None, Some("ep_1")] {
            for event_id in [None, Some("evt_1")] {
                for status in [None, Some("failed")] {
                    let filter = DeliveryFilter {
                        workspace_id: Some("ws"),
                        endpoint_id,
                        event_id,
                        status,
                    };
                    let (sql, values) = deliveries_query(&filter, i64::MAX, 51);
                    plans.push((sql.clone(), query_plan(&conn, &sql, &values)));
                }
            }
        }
        // "SCAN t", or a walk of the whole key range "SEARCH t USING INTEGER PRIMARY KEY
        // (rowid<?)" (what `(?1 IS NULL OR workspace_id = ?1) AND seq < ?2` was planned as),
        // reads every workspace's rows.
        for (sql, plan) in plans {
            assert!(
                plan.iter()
                    .all(|step| !step.starts_with("SCAN") && !step.ends_with("(rowid<?)")),
                "{sql}\n{}",
                plan.join("\n")
            );
            assert!(
                plan.iter().any(|step| step.starts_with("SEARCH")),
                "{sql}\n{}",
                plan.join("\n")
            );
        }
    }

    /// A database written by the previous release (schema version 3) opens, gains the new
    /// columns and tables, and keeps its rows.
    #[test]
    fn a_version_3_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(include_str!("../../tests/fixtures/schema-v3.sql"))
                .unwrap();
            old.execute_batch(
                "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
                 VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
                 INSERT INTO events (id, workspace_id, type, created_at_ms, body)
                 VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');
                 INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
                 VALUES ('dlv_1', 1, 1, 'pending', 1, 1, 1);",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let jobs = claim_due(&conn, 1, 10, 10, 1000).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].previous_secret, None);
        assert_eq!(jobs[0].schedule_step, 1);
        assert!(!events_by_id(&conn, "evt_1", None, 2).unwrap()[0].test);
        assert!(token_by_hash(&conn, "nothing", 0).unwrap().is_none());
    }

    /// A version 4 database (event ids unique overall) opens with ids unique per workspace,
    /// keeps its rows and their links, and its indexes are on the rebuilt table.
    #[test]
    fn a_version_4_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(include_str!("../../tests/fixtures/schema-v4.sql"))
                .unwrap();
            old.execute_batch(
                "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
                 VALUES ('ep_1', 'acme', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
                 INSERT INTO events (id, workspace_id, type, created_at_ms, body)
                 VALUES ('evt_1', 'acme', 'user.activated', 1, x'7b7d');
                 INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
                 VALUES ('dlv_1', 1, 1, 'pending', 1, 1, 1);
                 INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms)
                 VALUES (1, 1, 1, 1);",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM attempts"), 1);
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'events' AND type = 'index' AND name LIKE 'events_by_%'"
            ),
            2
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_v4'"),
            0
        );
        let jobs = claim_due(&conn, 1, 10, 10, 1000).unwrap();
        assert_eq!((jobs.len(), jobs[0].event_id.as_str()), (1, "evt_1"));
        // The same id in another workspace is another event; in the same one, the original.
        let new_event = |workspace_id: &str| NewEvent {
            id: "evt_1".into(),
            workspace_id: workspace_id.into(),
            event_type: "user.activated".into(),
            created_at_ms: 2,
            body: b"{}".to_vec(),
            test_endpoint_seq: None,
            subject: None,
        };
        assert!(
            insert_event(&conn, &new_event("globex"), 2)
                .unwrap()
                .created
        );
        assert!(!insert_event(&conn, &new_event("acme"), 2).unwrap().created);
        assert_eq!(events_by_id(&conn, "evt_1", None, 10).unwrap().len(), 2);
        assert_eq!(
            events_by_id(&conn, "evt_1", Some("acme"), 10).unwrap()[0].seq,
            1
        );
        // Deleting the event still cascades to its deliveries (the new table is referenced).
        conn.execute_batch("DELETE FROM events WHERE seq = 1")
            .unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM deliveries"), 0);
    }

    /// A deleted endpoint is gone at once for the API and for claims; its history goes in
    /// batches of the given size, then its row.
    #[test]
    fn a_deleted_endpoint_is_purged_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("purge.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
             INSERT INTO events (id, workspace_id, type, created_at_ms, body)
             VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');",
        )
        .unwrap();
        for n in 0..5 {
            conn.execute(
                "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
                 VALUES (?1, 1, 1, 'pending', 1, 1, 1)",
                [format!("dlv_{n}")],
            )
            .unwrap();
        }
        assert!(delete_endpoint(&conn, 1, 5).unwrap());
        assert!(!delete_endpoint(&conn, 1, 6).unwrap());
        assert!(endpoint(&conn, "ep_1").unwrap().is_none());
        assert!(pending_endpoints(&conn).unwrap().is_empty());
        assert!(claim_due(&conn, 1, 10, 10, 1000).unwrap().is_empty());
        assert!(delivery(&conn, "dlv_0").unwrap().is_none());
        assert_eq!(purge_deleted_endpoint(&conn, 2).unwrap(), 2);
        assert_eq!(purge_deleted_endpoint(&conn, 2).unwrap(), 2);
        // The last delivery and the endpoint's row.
        assert_eq!(purge_deleted_endpoint(&conn, 2).unwrap(), 2);
        assert_eq!(purge_deleted_endpoint(&conn, 2).unwrap(), 0);
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM deliveries) + (SELECT COUNT(*) FROM endpoints)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        // The event stays (retention prunes it like any other).
        assert_eq!(events_by_id(&conn, "evt_1", None, 2).unwrap().len(), 1);
    }

    /// Recover goes on from its cursor: a delivery it re-queued that failed again is not taken
    /// a second time, and every failed one in the window is reached.
    #[test]
    fn recover_goes_on_from_its_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("recover.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
             INSERT INTO events (id, workspace_id, type, created_at_ms, body)
             VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');",
        )
        .unwrap();
        for n in 0..5 {
            conn.execute(
                "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, created_at_ms, updated_at_ms)
                 VALUES (?1, 1, 1, 'failed', 5, 100, 100)",
                [format!("dlv_{n}")],
            )
            .unwrap();
        }
        let fail_pending_again = || {
            conn.execute_batch(
                "UPDATE deliveries SET status = 'failed', next_attempt_at_ms = NULL WHERE status = 'pending'",
            )
            .unwrap()
        };
        let (first, next) = recover_failed(&conn, 1, (0, 1000), 0, 500, 2).unwrap();
        assert_eq!((first, next.is_some()), (2, true));
        fail_pending_again();
        let (second, next) = recover_failed(&conn, 1, (0, 1000), next.unwrap(), 500, 2).unwrap();
        assert_eq!((second, next.is_some()), (2, true));
        fail_pending_again();
        let (third, next) = recover_failed(&conn, 1, (0, 1000), next.unwrap(), 500, 2).unwrap();
        assert_eq!((third, next), (1, None));
        // Outside the window: nothing.
        assert_eq!(
            recover_failed(&conn, 1, (200, 1000), 0, 500, 2).unwrap(),
            (0, None)
        );
    }

    /// A delivery with more attempts than asked lists its last ones, oldest first.
    #[test]
    fn attempts_lists_the_last_ones() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("attempts.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
             INSERT INTO events (id, workspace_id, type, created_at_ms, body)
             VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');
             INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, created_at_ms, updated_at_ms)
             VALUES ('dlv_1', 1, 1, 'failed', 7, 1, 1);",
        )
        .unwrap();
        for number in 1..=7 {
            conn.execute(
                "INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code)
                 VALUES (1, ?1, ?1, 0, 500)",
                [number],
            )
            .unwrap();
        }
        let numbers = |limit| {
            attempts(&conn, 1, limit)
                .unwrap()
                .iter()
                .map(|a| a.number)
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers(3), [5, 6, 7]);
        assert_eq!(numbers(100), [1, 2, 3, 4, 5, 6, 7]);
    }

    /// A PATCH that read the endpoint before the scheduler disabled it writes only its own
    /// fields: the endpoint stays disabled, with the scheduler's reason.
    #[test]
    fn an_update_writes_only_the_named_fields() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("update.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);",
        )
        .unwrap();
        let mut stale = endpoint(&conn, "ep_1").unwrap().unwrap();
        conn.execute_batch(
            "UPDATE endpoints SET enabled = 0, disabled_reason = 'the receiver answered 410 Gone',
                                  failing_since_ms = 5 WHERE id = 'ep_1'",
        )
        .unwrap();
        stale.description = "billing".into();
        assert!(update_endpoint(&conn, &stale, &["description"]).unwrap());
        let now = endpoint(&conn, "ep_1").unwrap().unwrap();
        assert_eq!(now.description, "billing");
        assert!(!now.enabled);
        assert_eq!(
            now.disabled_reason.as_deref(),
            Some("the receiver answered 410 Gone")
        );
        assert_eq!(now.failing_since_ms, Some(5));
        // Disabling it again keeps the first reason; enabling starts afresh.
        stale.enabled = false;
        stale.disabled_reason = Some("disabled through the API".into());
        update_endpoint(&conn, &stale, &["enabled"]).unwrap();
        let now = endpoint(&conn, "ep_1").unwrap().unwrap();
        assert_eq!(
            now.disabled_reason.as_deref(),
            Some("the receiver answered 410 Gone")
        );
        stale.enabled = true;
        update_endpoint(&conn, &stale, &["enabled"]).unwrap();
        let now = endpoint(&conn, "ep_1").unwrap().unwrap();
        assert!(now.enabled);
        assert_eq!((now.disabled_reason, now.failing_since_ms), (None, None));
    }

    /// A refused attempt whose endpoint was deleted while it was in flight is dropped quietly:
    /// it must not fail the scheduler's whole round.
    #[test]
    fn a_refused_attempt_of_a_deleted_endpoint_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("deleted.db")).unwrap();
        let result = AttemptResult {
            delivery_seq: 1,
            delivery_id: "dlv_1".into(),
            endpoint_seq: 1,
            attempt_number: 1,
            claim: 1,
            outcome: crate::model::Outcome {
                started_at_ms: 0,
                duration_ms: 1,
                status_code: Some(401),
                error_class: Some(crate::model::ErrorClass::HttpStatus),
                error_message: Some("401".into()),
                response_excerpt: None,
                retry_after_ms: None,
            },
            decision: Decision::RetryAt(10),
            rejected_secret_sha256: Some(sha256_hex("whsec_x")),
        };
        record_attempt(&conn, &result, 5).unwrap();
        let attempts: i64 = conn
            .query_row("SELECT COUNT(*) FROM attempts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(attempts, 0);
    }

    /// A lease that ran out goes back to `pending`, is claimed again, and the first claim's
    /// late result then changes nothing: the newer claim is not clobbered. A renewal by the
    /// lost claim fails; the newer claim's result is written.
    #[test]
    fn an_expired_lease_is_released_and_a_stale_result_does_not_clobber_the_new_claim() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("lease.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
             INSERT INTO events (id, workspace_id, type, created_at_ms, body)
             VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');
             INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
             VALUES ('dlv_1', 1, 1, 'pending', 1, 1, 1);",
        )
        .unwrap();
        let first = claim_due(&conn, 1, 10, 10, 100).unwrap();
        assert_eq!(first[0].claim, 1);
        assert_eq!(
            release_expired_leases(&conn, 100, 10).unwrap(),
            0,
            "not before its end"
        );
        assert!(renew_lease(&conn, 1, 1, 150).unwrap());
        assert_eq!(release_expired_leases(&conn, 151, 10).unwrap(), 1);
        let second = claim_due(&conn, 1, 151, 10, 300).unwrap();
        assert_eq!((second.len(), second[0].claim), (1, 2));
        assert!(
            !renew_lease(&conn, 1, 1, 400).unwrap(),
            "the lost claim renews nothing"
        );
        let result = |claim: i64, decision: Decision| AttemptResult {
            delivery_seq: 1,
            delivery_id: "dlv_1".into(),
            endpoint_seq: 1,
            attempt_number: 1,
            claim,
            outcome: crate::model::Outcome {
                started_at_ms: 0,
                duration_ms: 1,
                status_code: Some(500),
                error_class: Some(crate::model::ErrorClass::HttpStatus),
                error_message: Some("500".into()),
                response_excerpt: None,
                retry_after_ms: None,
            },
            decision,
            rejected_secret_sha256: None,
        };
        record_attempt(&conn, &result(1, Decision::Failed), 200).unwrap();
        let status = |conn: &Connection| -> (String, Option<i64>, i64) {
            conn.query_row(
                "SELECT status, lease_expires_at_ms, (SELECT COUNT(*) FROM attempts) FROM deliveries",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap()
        };
        assert_eq!(status(&conn), ("delivering".into(), Some(300), 0));
        record_attempt(&conn, &result(2, Decision::RetryAt(500)), 210).unwrap();
        assert_eq!(status(&conn), ("pending".into(), None, 1));
    }
}
