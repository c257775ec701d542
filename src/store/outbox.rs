//! The scheduler's writes: events in, deliveries claimed with a lease, attempts recorded,
//! endpoint health, releases, pruning and the purge. Only the scheduler's thread calls these,
//! inside its round's transaction.

#[allow(unused_imports)]
use super::prelude::*;
use super::{Db, pg, sqlite_or};

/// After a crash, attempts that were in flight are unknown: send them again (at least once).
pub(crate) fn recover_delivering(db: &Db, now_ms: i64) -> Result<usize> {
    let conn = sqlite_or!(db, |pg| pg::outbox::recover_delivering(pg, now_ms));
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?1, updated_at_ms = ?1,
                               lease_expires_at_ms = NULL
         WHERE status = 'delivering'",
        [now_ms],
    )?)
}

/// Stores one event and a `pending` delivery for each endpoint of its workspace subscribed to
/// its type. A known id in the same workspace returns the original and queues nothing; ids are
/// per workspace, so another workspace's use of the id is not looked at.
pub(crate) fn insert_event(db: &Db, event: &NewEvent, now_ms: i64) -> Result<StoredEvent> {
    let conn = sqlite_or!(db, |pg| pg::outbox::insert_event(pg, event, now_ms));
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
    // Two statements, not one with `?2 IS NULL OR seq = ?2`: SQLite prepared that one anew
    // whenever the parameter went from NULL to a value or back (its plan depends on it), which
    // a profile found on every event.
    let subscriber = |row: &rusqlite::Row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, bool>(3)?,
        ))
    };
    let subscribers = match event.test_endpoint_seq {
        None => conn
            .prepare_cached(
                "SELECT seq, id, event_types, ordering = 'subject'
                 FROM endpoints WHERE workspace_id = ?1 AND deleted_at_ms IS NULL ORDER BY seq",
            )?
            .query_map(params![event.workspace_id], subscriber)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        Some(endpoint_seq) => conn
            .prepare_cached(
                "SELECT seq, id, '[\"*\"]', ordering = 'subject'
                 FROM endpoints WHERE workspace_id = ?1 AND seq = ?2 AND deleted_at_ms IS NULL",
            )?
            .query_map(params![event.workspace_id, endpoint_seq], subscriber)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
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

/// The events of one round, in order: `insert_event` for each (Postgres writes them all in
/// three statements: one round trip per statement is what a round costs there).
pub(crate) fn insert_events(
    db: &Db,
    events: &[&NewEvent],
    now_ms: i64,
) -> Result<Vec<StoredEvent>> {
    let _sqlite = sqlite_or!(db, |pg| pg::outbox::insert_events(pg, events, now_ms));
    events
        .iter()
        .map(|event| insert_event(db, event, now_ms))
        .collect()
}

/// Does an endpoint's `event_types` JSON (`["*"]` or a list of types) include `event_type`?
pub(crate) fn subscribes(event_types_json: &str, event_type: &str) -> bool {
    // Most endpoints take everything: no JSON to parse per event for them.
    if event_types_json == r#"["*"]"# {
        return true;
    }
    serde_json::from_str::<Vec<String>>(event_types_json)
        .map(|types| types.iter().any(|t| t == "*" || t == event_type))
        .unwrap_or(false)
}

/// The one definition of "pending for an endpoint", matching the partial index
/// `deliveries_pending` (endpoint, then time): every scheduling query reads through it.
pub(crate) const PENDING_FOR_ENDPOINT: &str = "d.status = 'pending' AND d.endpoint_seq = ?1";

/// The one definition of "held by ordering" (both backends): an earlier delivery of the same
/// subject to the same endpoint is unfinished (`pending` or `delivering`), or any other one of
/// that subject is `delivering`. The second half matters with several instances on Postgres:
/// an event committed by one instance after a later one of its subject was claimed by another
/// must not go out while that one is in flight (and a manual retry of an old delivery waits
/// for the one in flight). Only deliveries of endpoints with `ordering: "subject"` have a
/// subject. Written into every claim, so order holds across retries, restarts and kill -9,
/// not only in memory.
pub(crate) const NOT_HELD_BY_ORDERING: &str = "(d.subject IS NULL OR NOT EXISTS (
    SELECT 1 FROM deliveries p
    WHERE p.endpoint_seq = d.endpoint_seq AND p.subject = d.subject AND p.seq <> d.seq
      AND p.status IN ('pending', 'delivering')
      AND (p.status = 'delivering' OR p.seq < d.seq)))";

/// Whether this transaction does the maintenance batches (retention, purge) now: always on
/// SQLite (one process owns the file); on Postgres one instance at a time, the others skip
/// this turn.
pub(crate) fn maintenance_turn(db: &Db) -> Result<bool> {
    let _conn = sqlite_or!(db, |pg| pg::outbox::maintenance_turn(pg));
    Ok(true)
}

/// Whether this transaction may claim for the endpoint now: always on SQLite; on Postgres an
/// endpoint that orders by subject is claimed for by one instance at a time, so two never
/// both decide what ordering holds (not granted: look again shortly).
pub(crate) fn claim_turn(db: &Db, endpoint_seq: i64) -> Result<bool> {
    let _conn = sqlite_or!(db, |pg| pg::outbox::claim_turn(pg, endpoint_seq));
    Ok(true)
}

/// Each enabled endpoint that has pending deliveries, with when its earliest is due. One index
/// seek per such endpoint (a skip scan written as a recursive query), however long the queues:
/// a disabled endpoint's backlog costs one seek, not a scan.
pub(crate) fn pending_endpoints(db: &Db) -> Result<Vec<(i64, i64)>> {
    let conn = sqlite_or!(db, |pg| pg::outbox::pending_endpoints(pg));
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
pub(crate) fn next_due_for_endpoint(db: &Db, endpoint_seq: i64) -> Result<Option<i64>> {
    let conn = sqlite_or!(db, |pg| pg::outbox::next_due_for_endpoint(pg, endpoint_seq));
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
pub(crate) fn claim_due(
    db: &Db,
    endpoint_seq: i64,
    now_ms: i64,
    limit: usize,
    lease_expires_at_ms: i64,
) -> Result<Vec<Job>> {
    let conn = sqlite_or!(db, |pg| pg::outbox::claim_due(
        pg,
        endpoint_seq,
        now_ms,
        limit,
        lease_expires_at_ms
    ));
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
            // Straight from SQLite's buffer into the job's Arc: one copy, not two.
            let body = row.get_ref(9)?.as_blob().map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    9,
                    rusqlite::types::Type::Blob,
                    error.into(),
                )
            })?;
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
/// `decision` is the final one (after `retry::after_refused_signature`); answers whether the
/// delivery's row changed (and so the attempt was written).
pub(crate) fn record_attempt(
    db: &Db,
    result: &AttemptResult,
    decision: Decision,
    now_ms: i64,
) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::outbox::record_attempt(
        pg, result, decision, now_ms
    ));
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
    if changed == 0 {
        return Ok(false);
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
    Ok(true)
}

/// The results of one round: `record_attempt` for each, answering for each whether it was
/// written (Postgres writes them all in two statements).
pub(crate) fn record_attempts(
    db: &Db,
    results: &[(&AttemptResult, Decision)],
    now_ms: i64,
) -> Result<Vec<bool>> {
    let _sqlite = sqlite_or!(db, |pg| pg::outbox::record_attempts(pg, results, now_ms));
    results
        .iter()
        .map(|(result, decision)| record_attempt(db, result, *decision, now_ms))
        .collect()
}

/// Which secret signs `X-ClockEye-Signature` for this endpoint from now on (see
/// `retry::after_refused_signature`).
pub(crate) fn set_signing_secret(db: &Db, endpoint_seq: i64, sign_with: SignWith) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::outbox::set_signing_secret(
        pg,
        endpoint_seq,
        sign_with
    ));
    conn.prepare_cached("UPDATE endpoints SET sign_with_previous = ?2 WHERE seq = ?1")?
        .execute(params![endpoint_seq, sign_with == SignWith::Previous])?;
    Ok(())
}

/// Keeps an endpoint's health up to date after an attempt, in the attempt's transaction: a
/// success clears `failing_since_ms`, a failure sets it if unset. The endpoint is disabled when
/// the receiver answered 410 Gone, or when every attempt has failed for `disable_after_ms`.
/// Returns the reason when it was disabled just now.
pub(crate) fn record_endpoint_health(
    db: &Db,
    result: &AttemptResult,
    now_ms: i64,
    disable_after_ms: i64,
) -> Result<Option<String>> {
    let conn = sqlite_or!(db, |pg| pg::outbox::record_endpoint_health(
        pg,
        result,
        now_ms,
        disable_after_ms
    ));
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
pub(crate) fn prune_events(db: &Db, cutoff_ms: i64, limit: usize) -> Result<usize> {
    let conn = sqlite_or!(db, |pg| pg::outbox::prune_events(pg, cutoff_ms, limit));
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
pub(crate) fn retire_previous_secrets(db: &Db, now_ms: i64) -> Result<usize> {
    let conn = sqlite_or!(db, |pg| pg::outbox::retire_previous_secrets(pg, now_ms));
    Ok(conn
        .prepare_cached(
            "UPDATE endpoints SET previous_secret = NULL, previous_secret_expires_at_ms = NULL,
                                  sign_with_previous = 0
             WHERE previous_secret_expires_at_ms <= ?1",
        )?
        .execute([now_ms])?)
}

/// Puts a claimed delivery whose attempt never started (or whose worker panicked) back to
/// `pending`, due at `due_ms`, if that claim still holds it.
pub(crate) fn release_delivery(db: &Db, release: &Release, now_ms: i64) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::outbox::release_delivery(pg, release, now_ms));
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
pub(crate) struct Release {
    pub(crate) delivery_seq: i64,
    /// The claim given up (`Job::claim`).
    pub(crate) claim: i64,
    /// When the delivery is due again.
    pub(crate) due_ms: i64,
}

/// Extends a claim's lease to `lease_expires_at_ms` while that claim still holds the delivery;
/// false when it does not (its lease ran out and was released, or it was claimed again).
pub(crate) fn renew_lease(
    db: &Db,
    delivery_seq: i64,
    claim: i64,
    lease_expires_at_ms: i64,
) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::outbox::renew_lease(
        pg,
        delivery_seq,
        claim,
        lease_expires_at_ms
    ));
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
pub(crate) fn release_expired_leases(db: &Db, now_ms: i64, limit: usize) -> Result<usize> {
    let conn = sqlite_or!(db, |pg| pg::outbox::release_expired_leases(
        pg, now_ms, limit
    ));
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

/// One batch of a deleted endpoint's history: up to `limit` of its deliveries with their
/// attempts (foreign keys cascade), and once none is left the endpoint's row. Events stay,
/// as other endpoints' deliveries or the event list may still want them; retention prunes
/// them like any other. Returns how many rows of `deliveries` and `endpoints` went (0: no
/// deleted endpoint is left).
pub(crate) fn purge_deleted_endpoint(db: &Db, limit: usize) -> Result<usize> {
    let conn = sqlite_or!(db, |pg| pg::outbox::purge_deleted_endpoint(pg, limit));
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

/// Forgets portal codes and tokens that have expired.
pub(crate) fn prune_expired_access(db: &Db, now_ms: i64) -> Result<usize> {
    let conn = sqlite_or!(db, |pg| pg::outbox::prune_expired_access(pg, now_ms));
    Ok(conn
        .prepare_cached("DELETE FROM portal_codes WHERE expires_at_ms <= ?1")?
        .execute([now_ms])?
        + conn
            .prepare_cached("DELETE FROM tokens WHERE expires_at_ms <= ?1")?
            .execute([now_ms])?)
}
