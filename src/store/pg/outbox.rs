//! Postgres twins of `store::outbox`: the scheduler's writes, safe with several instances on
//! one database. Claims lock their rows with `FOR UPDATE … SKIP LOCKED` (an instance never
//! waits for another's claim, and never claims what another holds); claims of an endpoint that
//! orders by subject are taken by one instance at a time (`claim_turn`); result writes keep
//! the `claims = $claim` guard, so a claim that lost its lease writes nothing; maintenance runs
//! on one instance at a time (`maintenance_turn`). Text from receivers has its NUL bytes
//! replaced (Postgres TEXT cannot hold them).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use postgres::Row;

use super::Conn;
use super::open::LOCK_MAINTENANCE;
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::{AttemptResult, Decision, Job, NewEvent, SignWith, StoredEvent};
use crate::store::outbox::{NOT_HELD_BY_ORDERING, PENDING_FOR_ENDPOINT, subscribes};
use crate::store::{Release, read::parse_headers};

/// Not on Postgres: other instances' claims are live. A restarted instance's own claims go
/// back to `pending` when their lease ends (`release_expired_leases`).
pub(crate) fn recover_delivering(_pg: &mut Conn, _now_ms: i64) -> Result<usize> {
    Ok(0)
}

/// Whether this transaction does the maintenance batches (retention, purge) this turn: one
/// instance at a time; the others skip, and nothing waits. Held until the transaction ends.
pub(crate) fn maintenance_turn(pg: &mut Conn) -> Result<bool> {
    let row = pg.query_opt("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_MAINTENANCE])?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => false,
    })
}

/// Whether this transaction may claim for the endpoint: always, unless it orders by subject;
/// then only the instance holding the endpoint's advisory lock (its key is the endpoint's
/// seq, ≥ 1) claims, so two instances never both decide what is held. Not granted: another
/// instance is claiming for it right now; try again shortly.
pub(crate) fn claim_turn(pg: &mut Conn, endpoint_seq: i64) -> Result<bool> {
    // Unordered endpoints (as this round's `pending_endpoints` found them) need no turn: no
    // round trip for them. An endpoint switched to ordering meanwhile is caught by the next
    // round; the hold in the claim itself still applies.
    if !pg.ordered_endpoints.contains(&endpoint_seq) {
        return Ok(true);
    }
    let row = pg.query_opt(
        "SELECT ordering <> 'subject' OR pg_try_advisory_xact_lock(seq) FROM endpoints WHERE seq = $1",
        &[&endpoint_seq],
    )?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        // Gone (purged): nothing of it is claimed anyway.
        None => true,
    })
}

/// Before deliveries with a subject are inserted for endpoints that order by it: waits for
/// each such endpoint's advisory lock (the key its claim turn takes), in ascending order, held
/// until this transaction ends. A delivery's seq is taken at insert but seen at commit; with
/// the lock, transactions writing to one ordered endpoint insert and commit one after another,
/// so its seqs become visible in seq order and the claim never sends a later delivery of a
/// subject while an earlier one is still uncommitted (API threads and instances ingest at
/// once on Postgres). Endpoints without ordering take no lock.
fn lock_ordered_endpoints(
    pg: &mut Conn,
    endpoint_seqs: &[i64],
    subjects: &[Option<&str>],
) -> Result<()> {
    let mut ordered: Vec<i64> = endpoint_seqs
        .iter()
        .zip(subjects)
        .filter(|(_, subject)| subject.is_some())
        .map(|(endpoint_seq, _)| *endpoint_seq)
        .collect();
    ordered.sort_unstable();
    ordered.dedup();
    for endpoint_seq in ordered {
        pg.execute("SELECT pg_advisory_xact_lock($1)", &[&endpoint_seq])?;
    }
    Ok(())
}

/// As on SQLite, with `INSERT … ON CONFLICT DO NOTHING`: when another instance inserts the
/// same id at the same moment, the insert waits for its commit and then finds it, so both
/// clients get an answer (202 and 200), never a unique-key error.
pub(crate) fn insert_event(pg: &mut Conn, event: &NewEvent, now_ms: i64) -> Result<StoredEvent> {
    let inserted = pg.query_opt(
        "INSERT INTO events (id, workspace_id, type, created_at_ms, body, test, subject)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id, workspace_id) DO NOTHING RETURNING seq",
        &[
            &event.id,
            &event.workspace_id,
            &event.event_type,
            &event.created_at_ms,
            &event.body,
            &i64::from(event.test_endpoint_seq.is_some()),
            &event.subject,
        ],
    )?;
    let Some(inserted) = inserted else {
        return existing_event(pg, event);
    };
    let event_seq: i64 = inserted.try_get(0)?;
    // A test event goes to its one endpoint, whatever that subscribes to.
    let subscribers = match event.test_endpoint_seq {
        None => pg.query(
            "SELECT seq, id, event_types, ordering = 'subject'
             FROM endpoints WHERE workspace_id = $1 AND deleted_at_ms IS NULL ORDER BY seq",
            &[&event.workspace_id],
        )?,
        Some(endpoint_seq) => pg.query(
            "SELECT seq, id, '[\"*\"]', ordering = 'subject'
             FROM endpoints WHERE workspace_id = $1 AND seq = $2 AND deleted_at_ms IS NULL",
            &[&event.workspace_id, &endpoint_seq],
        )?,
    };
    let mut delivery_ids: Vec<String> = Vec::new();
    let mut endpoint_seqs: Vec<i64> = Vec::new();
    let mut subjects: Vec<Option<&str>> = Vec::new();
    let mut deliveries = Vec::new();
    for row in &subscribers {
        let event_types: &str = row.try_get(2)?;
        if !subscribes(event_types, &event.event_type) {
            continue;
        }
        let ordered: bool = row.try_get(3)?;
        let delivery_id = new_id("dlv");
        delivery_ids.push(delivery_id.clone());
        endpoint_seqs.push(row.try_get(0)?);
        // The subject is kept only where the endpoint orders by it (see the SQLite twin).
        subjects.push(event.subject.as_deref().filter(|_| ordered));
        deliveries.push((delivery_id, row.try_get::<_, String>(1)?));
    }
    if !deliveries.is_empty() {
        lock_ordered_endpoints(pg, &endpoint_seqs, &subjects)?;
        // One statement for all of the event's deliveries, in subscriber order (their seqs).
        pg.execute(
            "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms,
                                     created_at_ms, updated_at_ms, subject)
             SELECT r.id, $2, r.endpoint_seq, 'pending', $3, $3, $3, r.subject
             FROM unnest($1::text[], $4::bigint[], $5::text[]) WITH ORDINALITY
                  AS r(id, endpoint_seq, subject, n)
             ORDER BY r.n",
            &[
                &delivery_ids,
                &event_seq,
                &now_ms,
                &endpoint_seqs,
                &subjects,
            ],
        )?;
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

/// The events of one round in three statements: their endpoints (all workspaces at once),
/// the events (`ON CONFLICT DO NOTHING`, in order), their deliveries (one `unnest` insert).
/// A repeated id, in the round or before it, then answers as `insert_event` does. A test
/// event (one endpoint, whatever it subscribes to) takes the one-by-one way.
pub(crate) fn insert_events(
    pg: &mut Conn,
    events: &[&NewEvent],
    now_ms: i64,
) -> Result<Vec<StoredEvent>> {
    if events.len() <= 1 || events.iter().any(|event| event.test_endpoint_seq.is_some()) {
        return events
            .iter()
            .map(|event| insert_event(pg, event, now_ms))
            .collect();
    }
    let mut workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    let endpoints = pg.query(
        "SELECT workspace_id, seq, id, event_types, ordering = 'subject'
         FROM endpoints WHERE workspace_id = ANY($1) AND deleted_at_ms IS NULL ORDER BY seq",
        &[&workspaces],
    )?;
    let inserted = pg.query(
        "INSERT INTO events (id, workspace_id, type, created_at_ms, body, test, subject)
         SELECT r.id, r.workspace_id, r.type, r.created_at_ms, r.body, 0, r.subject
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::text[])
              WITH ORDINALITY AS r(id, workspace_id, type, created_at_ms, body, subject, n)
         ORDER BY r.n
         ON CONFLICT (id, workspace_id) DO NOTHING
         RETURNING id, workspace_id, seq",
        &[
            &events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            &events
                .iter()
                .map(|e| e.workspace_id.as_str())
                .collect::<Vec<_>>(),
            &events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            &events.iter().map(|e| e.created_at_ms).collect::<Vec<_>>(),
            &events.iter().map(|e| e.body.as_slice()).collect::<Vec<_>>(),
            &events
                .iter()
                .map(|e| e.subject.as_deref())
                .collect::<Vec<_>>(),
        ],
    )?;
    let mut seqs: std::collections::HashMap<(String, String), i64> =
        std::collections::HashMap::with_capacity(inserted.len());
    for row in &inserted {
        seqs.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
    }
    let mut delivery_ids: Vec<String> = Vec::new();
    let mut event_seqs: Vec<i64> = Vec::new();
    let mut endpoint_seqs: Vec<i64> = Vec::new();
    let mut subjects: Vec<Option<&str>> = Vec::new();
    // Each event's answer, or None for a repeated id (answered once its deliveries exist).
    let mut answers: Vec<Option<StoredEvent>> = Vec::with_capacity(events.len());
    for event in events {
        // The first of a repeated id in the round takes the seq; later ones are repeats.
        let Some(event_seq) = seqs.remove(&(event.id.clone(), event.workspace_id.clone())) else {
            answers.push(None);
            continue;
        };
        let mut deliveries = Vec::new();
        for row in &endpoints {
            let workspace_id: &str = row.try_get(0)?;
            let event_types: &str = row.try_get(3)?;
            if workspace_id != event.workspace_id || !subscribes(event_types, &event.event_type) {
                continue;
            }
            let ordered: bool = row.try_get(4)?;
            let delivery_id = new_id("dlv");
            delivery_ids.push(delivery_id.clone());
            event_seqs.push(event_seq);
            endpoint_seqs.push(row.try_get(1)?);
            subjects.push(event.subject.as_deref().filter(|_| ordered));
            deliveries.push((delivery_id, row.try_get::<_, String>(2)?));
        }
        answers.push(Some(StoredEvent {
            id: event.id.clone(),
            workspace_id: event.workspace_id.clone(),
            event_type: event.event_type.clone(),
            created_at_ms: event.created_at_ms,
            deliveries,
            created: true,
        }));
    }
    if !delivery_ids.is_empty() {
        lock_ordered_endpoints(pg, &endpoint_seqs, &subjects)?;
        pg.execute(
            "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms,
                                     created_at_ms, updated_at_ms, subject)
             SELECT r.id, r.event_seq, r.endpoint_seq, 'pending', $3, $3, $3, r.subject
             FROM unnest($1::text[], $2::bigint[], $4::bigint[], $5::text[]) WITH ORDINALITY
                  AS r(id, event_seq, endpoint_seq, subject, n)
             ORDER BY r.n",
            &[
                &delivery_ids,
                &event_seqs,
                &now_ms,
                &endpoint_seqs,
                &subjects,
            ],
        )?;
    }
    events
        .iter()
        .zip(answers)
        .map(|(event, answer)| match answer {
            Some(stored) => Ok(stored),
            None => existing_event(pg, event),
        })
        .collect()
}

/// A repeated id: the original event and its deliveries, as the SQLite twin answers.
fn existing_event(pg: &mut Conn, event: &NewEvent) -> Result<StoredEvent> {
    let Some(original) = pg.query_opt(
        "SELECT seq, type, created_at_ms FROM events WHERE id = $1 AND workspace_id = $2",
        &[&event.id, &event.workspace_id],
    )?
    else {
        // Deleted between the conflict and this read (retention): rare enough to refuse.
        return Err(Error::Unavailable(format!(
            "event {} was removed while it was being stored again; send it again",
            event.id
        )));
    };
    let seq: i64 = original.try_get(0)?;
    let deliveries = pg
        .query(
            "SELECT d.id, e.id FROM deliveries d JOIN endpoints e ON e.seq = d.endpoint_seq
             WHERE d.event_seq = $1 AND e.deleted_at_ms IS NULL ORDER BY d.seq",
            &[&seq],
        )?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(StoredEvent {
        id: event.id.clone(),
        workspace_id: event.workspace_id.clone(),
        event_type: original.try_get(1)?,
        created_at_ms: original.try_get(2)?,
        deliveries,
        created: false,
    })
}

/// `?1` of the shared SQLite fragments written as `$1`.
fn dollar(sql: &str) -> String {
    sql.replace("?1", "$1")
}

/// The SQLite twin's skip scan: Postgres runs the recursive query unchanged (a loose index
/// scan over `deliveries_pending`).
static PENDING_ENDPOINTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE pending(endpoint_seq) AS (
             SELECT (SELECT MIN(endpoint_seq) FROM deliveries WHERE status = 'pending')
             UNION ALL
             SELECT (SELECT MIN(endpoint_seq) FROM deliveries
                     WHERE status = 'pending' AND endpoint_seq > pending.endpoint_seq)
             FROM pending WHERE pending.endpoint_seq IS NOT NULL
         )
         SELECT p.endpoint_seq,
                (SELECT MIN(d.next_attempt_at_ms) FROM deliveries d WHERE {PENDING_FOR_ENDPOINT}),
                e.ordering = 'subject'
         FROM pending p JOIN endpoints e ON e.seq = p.endpoint_seq
         WHERE e.enabled = 1 AND e.deleted_at_ms IS NULL"
    )
    .replace("?1", "p.endpoint_seq")
});

pub(crate) fn pending_endpoints(pg: &mut Conn) -> Result<Vec<(i64, i64)>> {
    let rows = pg.query(PENDING_ENDPOINTS.as_str(), &[])?;
    pg.ordered_endpoints.clear();
    rows.iter()
        .map(|row| {
            let endpoint_seq = row.try_get(0)?;
            if row.try_get::<_, bool>(2)? {
                pg.ordered_endpoints.insert(endpoint_seq);
            }
            Ok((endpoint_seq, row.try_get(1)?))
        })
        .collect()
}

static NEXT_DUE_FOR_ENDPOINT: LazyLock<String> = LazyLock::new(|| {
    dollar(&format!(
        "SELECT d.next_attempt_at_ms FROM deliveries d WHERE {PENDING_FOR_ENDPOINT} AND {NOT_HELD_BY_ORDERING}
         ORDER BY d.next_attempt_at_ms LIMIT 1"
    ))
});

pub(crate) fn next_due_for_endpoint(pg: &mut Conn, endpoint_seq: i64) -> Result<Option<i64>> {
    match pg.query_opt(NEXT_DUE_FOR_ENDPOINT.as_str(), &[&endpoint_seq])? {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

/// One statement: pick the due rows not locked by another instance (`SKIP LOCKED`: never
/// waits), mark them `delivering` with `claims` counted up, and return them joined to their
/// endpoint and event, oldest due first. The endpoint's deletion is checked where rows are
/// picked, so a deleted endpoint's deliveries are never marked without being returned.
static CLAIM_DUE: LazyLock<String> = LazyLock::new(|| {
    dollar(&format!(
        "WITH due AS (
             SELECT d.seq, d.next_attempt_at_ms AS due_ms
             FROM deliveries d JOIN endpoints e ON e.seq = d.endpoint_seq AND e.deleted_at_ms IS NULL
             WHERE {PENDING_FOR_ENDPOINT} AND d.next_attempt_at_ms <= $2 AND {NOT_HELD_BY_ORDERING}
             ORDER BY d.next_attempt_at_ms LIMIT $3
             FOR UPDATE OF d SKIP LOCKED),
         c AS (
             UPDATE deliveries d SET status = 'delivering', next_attempt_at_ms = NULL,
                                     updated_at_ms = $2, lease_expires_at_ms = $4,
                                     claims = d.claims + 1
             FROM due WHERE d.seq = due.seq
             RETURNING d.seq, d.id, d.attempts_made, d.endpoint_seq, d.event_seq, d.free_attempts,
                       d.free_attempt_number, d.claims, due.due_ms)
         SELECT c.seq, c.id, c.attempts_made, e.seq, e.url, e.secret, e.headers, ev.id, ev.type, ev.body,
                CASE WHEN e.previous_secret_expires_at_ms > $2 THEN e.previous_secret END,
                e.sign_with_previous, c.free_attempts, c.free_attempt_number,
                COALESCE(e.previous_secret_expires_at_ms, 0), e.workspace_id, c.claims, e.rate_limit
         FROM c JOIN endpoints e ON e.seq = c.endpoint_seq JOIN events ev ON ev.seq = c.event_seq
         ORDER BY c.due_ms, c.seq"
    ))
});

pub(crate) fn claim_due(
    pg: &mut Conn,
    endpoint_seq: i64,
    now_ms: i64,
    limit: usize,
    lease_expires_at_ms: i64,
) -> Result<Vec<Job>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    pg.query(
        CLAIM_DUE.as_str(),
        &[&endpoint_seq, &now_ms, &limit, &lease_expires_at_ms],
    )?
    .iter()
    .map(job_from_pg)
    .collect()
}

fn job_from_pg(row: &Row) -> Result<Job> {
    let headers: &str = row.try_get(6)?;
    let body: &[u8] = row.try_get(9)?;
    let attempt_number = small(row.try_get(2)?, "attempts_made")? + 1;
    let free_attempts = small(row.try_get(12)?, "free_attempts")?;
    let free_attempt_number = row
        .try_get::<_, Option<i64>>(13)?
        .map(|number| small(number, "free_attempt_number"))
        .transpose()?;
    Ok(Job {
        delivery_seq: row.try_get(0)?,
        delivery_id: row.try_get(1)?,
        attempt_number,
        endpoint_seq: row.try_get(3)?,
        url: row.try_get(4)?,
        secret: row.try_get(5)?,
        previous_secret: row.try_get(10)?,
        previous_secret_until_ms: row.try_get(14)?,
        sign_with_previous: row.try_get::<_, i64>(11)? != 0,
        headers: parse_headers(headers),
        event_id: row.try_get(7)?,
        event_type: row.try_get(8)?,
        body: Arc::from(body),
        schedule_step: attempt_number.saturating_sub(free_attempts).max(1),
        may_switch_secret: free_attempt_number != Some(attempt_number),
        workspace_id: row.try_get(15)?,
        // Counted up by the claim itself.
        claim: row.try_get(16)?,
        rate_limit: row
            .try_get::<_, Option<i64>>(17)?
            .map(|limit| small(limit, "rate_limit"))
            .transpose()?,
    })
}

/// A BIGINT column that holds a small count (its CHECKs and our writes keep it in range).
fn small(value: i64, column: &str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::Unavailable(format!("deliveries.{column} holds {value}, out of range")))
}

/// Text from a receiver without NUL bytes (U+FFFD in their place): Postgres TEXT cannot hold
/// them, and a receiver answering one must not fail every round.
fn without_nul(text: &Option<String>) -> Option<Cow<'_, str>> {
    text.as_deref().map(|text| {
        if text.contains('\0') {
            Cow::Owned(text.replace('\0', "\u{FFFD}"))
        } else {
            Cow::Borrowed(text)
        }
    })
}

pub(crate) fn record_attempt(
    pg: &mut Conn,
    result: &AttemptResult,
    decision: Decision,
    now_ms: i64,
) -> Result<bool> {
    let (status, next_attempt_at_ms) = match decision {
        Decision::Succeeded => ("succeeded", None),
        Decision::RetryAt(at_ms) | Decision::SwitchSecret(at_ms) => ("pending", Some(at_ms)),
        Decision::Failed => ("failed", None),
    };
    // The attempt after a secret switch is free: it uses no step of the retry schedule.
    let free_attempt = i64::from(matches!(decision, Decision::SwitchSecret(_)));
    let attempt_number = i64::from(result.attempt_number);
    let changed = pg.execute(
        "UPDATE deliveries SET status = $2, attempts_made = $3::bigint, next_attempt_at_ms = $4, updated_at_ms = $5,
                               free_attempts = free_attempts + $6::bigint,
                               free_attempt_number = CASE WHEN $6::bigint = 1 THEN $3::bigint + 1
                                                          ELSE free_attempt_number END,
                               lease_expires_at_ms = NULL
         WHERE seq = $1 AND claims = $7 AND status IN ('delivering', 'pending')",
        &[
            &result.delivery_seq,
            &status,
            &attempt_number,
            &next_attempt_at_ms,
            &now_ms,
            &free_attempt,
            &result.claim,
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    let outcome = &result.outcome;
    pg.execute(
        "INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code, error_class,
                               error_message, response_excerpt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &result.delivery_seq,
            &attempt_number,
            &outcome.started_at_ms,
            &outcome.duration_ms,
            &outcome.status_code.map(i64::from),
            &outcome.error_class.map(|class| class.as_str()),
            &without_nul(&outcome.error_message).as_deref(),
            &without_nul(&outcome.response_excerpt).as_deref(),
        ],
    )?;
    Ok(true)
}

/// The results of one round in two statements: the deliveries' rows (each under its claim
/// guard), then the attempts of those that changed. Answers, for each result, whether it was
/// written, as `record_attempt` does.
pub(crate) fn record_attempts(
    pg: &mut Conn,
    results: &[(&AttemptResult, Decision)],
    now_ms: i64,
) -> Result<Vec<bool>> {
    if results.len() <= 1 {
        return results
            .iter()
            .map(|(result, decision)| record_attempt(pg, result, *decision, now_ms))
            .collect();
    }
    let mut seqs = Vec::with_capacity(results.len());
    let mut claims = Vec::with_capacity(results.len());
    let mut statuses = Vec::with_capacity(results.len());
    let mut numbers = Vec::with_capacity(results.len());
    let mut next_ats = Vec::with_capacity(results.len());
    let mut frees = Vec::with_capacity(results.len());
    for (result, decision) in results {
        let (status, next_attempt_at_ms) = match decision {
            Decision::Succeeded => ("succeeded", None),
            Decision::RetryAt(at_ms) | Decision::SwitchSecret(at_ms) => ("pending", Some(*at_ms)),
            Decision::Failed => ("failed", None),
        };
        seqs.push(result.delivery_seq);
        claims.push(result.claim);
        statuses.push(status);
        numbers.push(i64::from(result.attempt_number));
        next_ats.push(next_attempt_at_ms);
        frees.push(i64::from(matches!(decision, Decision::SwitchSecret(_))));
    }
    let written: std::collections::HashSet<(i64, i64)> = pg
        .query(
            "UPDATE deliveries d
             SET status = r.status, attempts_made = r.number, next_attempt_at_ms = r.next_at,
                 updated_at_ms = $7, free_attempts = d.free_attempts + r.free,
                 free_attempt_number = CASE WHEN r.free = 1 THEN r.number + 1
                                            ELSE d.free_attempt_number END,
                 lease_expires_at_ms = NULL
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                  AS r(seq, claim, status, number, next_at, free)
             WHERE d.seq = r.seq AND d.claims = r.claim AND d.status IN ('delivering', 'pending')
             RETURNING d.seq, d.claims",
            &[
                &seqs, &claims, &statuses, &numbers, &next_ats, &frees, &now_ms,
            ],
        )?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_>>()?;
    let answers: Vec<bool> = results
        .iter()
        .map(|(result, _)| written.contains(&(result.delivery_seq, result.claim)))
        .collect();
    let kept: Vec<&AttemptResult> = results
        .iter()
        .zip(&answers)
        .filter(|(_, written)| **written)
        .map(|((result, _), _)| *result)
        .collect();
    if !kept.is_empty() {
        let messages: Vec<Option<Cow<'_, str>>> = kept
            .iter()
            .map(|r| without_nul(&r.outcome.error_message))
            .collect();
        let excerpts: Vec<Option<Cow<'_, str>>> = kept
            .iter()
            .map(|r| without_nul(&r.outcome.response_excerpt))
            .collect();
        pg.execute(
            "INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code,
                                   error_class, error_message, response_excerpt)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bigint[], $6::text[], $7::text[], $8::text[])",
            &[
                &kept.iter().map(|r| r.delivery_seq).collect::<Vec<_>>(),
                &kept
                    .iter()
                    .map(|r| i64::from(r.attempt_number))
                    .collect::<Vec<_>>(),
                &kept
                    .iter()
                    .map(|r| r.outcome.started_at_ms)
                    .collect::<Vec<_>>(),
                &kept
                    .iter()
                    .map(|r| r.outcome.duration_ms)
                    .collect::<Vec<_>>(),
                &kept
                    .iter()
                    .map(|r| r.outcome.status_code.map(i64::from))
                    .collect::<Vec<_>>(),
                &kept
                    .iter()
                    .map(|r| r.outcome.error_class.map(|class| class.as_str()))
                    .collect::<Vec<_>>(),
                &messages.iter().map(|m| m.as_deref()).collect::<Vec<_>>(),
                &excerpts.iter().map(|m| m.as_deref()).collect::<Vec<_>>(),
            ],
        )?;
    }
    Ok(answers)
}

pub(crate) fn set_signing_secret(
    pg: &mut Conn,
    endpoint_seq: i64,
    sign_with: SignWith,
) -> Result<()> {
    pg.execute(
        "UPDATE endpoints SET sign_with_previous = $2 WHERE seq = $1",
        &[&endpoint_seq, &i64::from(sign_with == SignWith::Previous)],
    )?;
    Ok(())
}

pub(crate) fn record_endpoint_health(
    pg: &mut Conn,
    result: &AttemptResult,
    now_ms: i64,
    disable_after_ms: i64,
) -> Result<Option<String>> {
    let endpoint_seq = result.endpoint_seq;
    if result.outcome.succeeded() {
        // To the second: most successes in a busy second then write nothing.
        let finished_at_ms = result.outcome.started_at_ms + result.outcome.duration_ms;
        pg.execute(
            "UPDATE endpoints SET failing_since_ms = NULL, last_success_at_ms = $2::bigint
             WHERE seq = $1 AND (failing_since_ms IS NOT NULL OR last_success_at_ms IS NULL
                                 OR last_success_at_ms < $2::bigint - 1000)",
            &[&endpoint_seq, &finished_at_ms],
        )?;
        return Ok(None);
    }
    pg.execute(
        "UPDATE endpoints SET failing_since_ms = $2 WHERE seq = $1 AND failing_since_ms IS NULL",
        &[&endpoint_seq, &now_ms],
    )?;
    let reason = if result.outcome.status_code == Some(410) {
        Some(format!(
            "the receiver answered 410 Gone (delivery {})",
            result.delivery_id
        ))
    } else {
        let failing_since_ms: Option<i64> = match pg.query_opt(
            "SELECT failing_since_ms FROM endpoints WHERE seq = $1 AND enabled = 1",
            &[&endpoint_seq],
        )? {
            Some(row) => row.try_get(0)?,
            None => None,
        };
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
    let changed = pg.execute(
        "UPDATE endpoints SET enabled = 0, disabled_reason = $2, updated_at_ms = $3
         WHERE seq = $1 AND enabled = 1",
        &[&endpoint_seq, &reason, &now_ms],
    )?;
    Ok((changed == 1).then_some(reason))
}

pub(crate) fn prune_events(pg: &mut Conn, cutoff_ms: i64, limit: usize) -> Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(pg.execute(
        "DELETE FROM events WHERE seq IN (
             SELECT ev.seq FROM events ev
             WHERE ev.created_at_ms < $1
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.event_seq = ev.seq AND d.status IN ('pending', 'delivering'))
             ORDER BY ev.created_at_ms LIMIT $2)",
        &[&cutoff_ms, &limit],
    )? as usize)
}

pub(crate) fn retire_previous_secrets(pg: &mut Conn, now_ms: i64) -> Result<usize> {
    Ok(pg.execute(
        "UPDATE endpoints SET previous_secret = NULL, previous_secret_expires_at_ms = NULL,
                              sign_with_previous = 0
         WHERE previous_secret_expires_at_ms <= $1",
        &[&now_ms],
    )? as usize)
}

pub(crate) fn release_delivery(pg: &mut Conn, release: &Release, now_ms: i64) -> Result<()> {
    pg.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = $2, updated_at_ms = $4,
                               lease_expires_at_ms = NULL
         WHERE seq = $1 AND claims = $3 AND status = 'delivering'",
        &[
            &release.delivery_seq,
            &release.due_ms,
            &release.claim,
            &now_ms,
        ],
    )?;
    Ok(())
}

pub(crate) fn renew_lease(
    pg: &mut Conn,
    delivery_seq: i64,
    claim: i64,
    lease_expires_at_ms: i64,
) -> Result<bool> {
    Ok(pg.execute(
        "UPDATE deliveries SET lease_expires_at_ms = $3
         WHERE seq = $1 AND claims = $2 AND status = 'delivering'",
        &[&delivery_seq, &claim, &lease_expires_at_ms],
    )? == 1)
}

/// Any instance may run this every round: rows another instance is writing right now are
/// skipped (`SKIP LOCKED`), so it never waits, and the lock re-checks each row's latest
/// version, so a lease renewed meanwhile is left alone.
pub(crate) fn release_expired_leases(pg: &mut Conn, now_ms: i64, limit: usize) -> Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(pg.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = $1, updated_at_ms = $1,
                               lease_expires_at_ms = NULL
         WHERE status = 'delivering'
           AND seq IN (SELECT seq FROM deliveries
                       WHERE status = 'delivering' AND lease_expires_at_ms < $1
                       LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&now_ms, &limit],
    )? as usize)
}

pub(crate) fn purge_deleted_endpoint(pg: &mut Conn, limit: usize) -> Result<usize> {
    let Some(row) = pg.query_opt(
        "SELECT seq FROM endpoints WHERE deleted_at_ms IS NOT NULL ORDER BY seq LIMIT 1",
        &[],
    )?
    else {
        return Ok(0);
    };
    let endpoint_seq: i64 = row.try_get(0)?;
    let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
    let deliveries = pg.execute(
        "DELETE FROM deliveries WHERE seq IN (
             SELECT seq FROM deliveries WHERE endpoint_seq = $1 ORDER BY seq LIMIT $2)",
        &[&endpoint_seq, &limit_i64],
    )? as usize;
    if deliveries == limit {
        return Ok(deliveries);
    }
    let endpoints = pg.execute("DELETE FROM endpoints WHERE seq = $1", &[&endpoint_seq])? as usize;
    Ok(deliveries + endpoints)
}

pub(crate) fn prune_expired_access(pg: &mut Conn, now_ms: i64) -> Result<usize> {
    Ok(pg.execute(
        "DELETE FROM portal_codes WHERE expires_at_ms <= $1",
        &[&now_ms],
    )? as usize
        + pg.execute("DELETE FROM tokens WHERE expires_at_ms <= $1", &[&now_ms])? as usize)
}
