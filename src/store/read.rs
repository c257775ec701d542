//! The rows and the read queries: endpoints, events, deliveries, attempts, tokens, gauges.

#[allow(unused_imports)]
use super::prelude::*;
use super::{Db, pg, sqlite_or};

/// What `/metrics` reads from the database at render time.
pub(crate) struct DatabaseGauges {
    pub(crate) deliveries_pending: i64,
    /// Age of the oldest pending delivery that is due (0 when none is).
    pub(crate) oldest_due_age_ms: i64,
    pub(crate) endpoints_disabled: i64,
}

/// The database's share of `/metrics`.
pub(crate) fn metrics_gauges(db: &Db, now_ms: i64) -> Result<DatabaseGauges> {
    let conn = sqlite_or!(db, |pg| pg::read::metrics_gauges(pg, now_ms));
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
    Ok(DatabaseGauges {
        deliveries_pending,
        oldest_due_age_ms: oldest_due_ms.map_or(0, |due| (now_ms - due).max(0)),
        endpoints_disabled,
    })
}

#[derive(Debug, Clone)]
pub(crate) struct EndpointRow {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) workspace_id: String,
    pub(crate) url: String,
    pub(crate) event_types: Vec<String>,
    pub(crate) description: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) enabled: bool,
    pub(crate) disabled_reason: Option<String>,
    pub(crate) failing_since_ms: Option<i64>,
    pub(crate) last_success_at_ms: Option<i64>,
    /// End of the running rotation overlap, if one is running.
    pub(crate) previous_secret_expires_at_ms: Option<i64>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    /// Most attempt starts in any second; None: no limit.
    pub(crate) rate_limit: Option<u32>,
    /// `"none"` or `"subject"`.
    pub(crate) ordering: String,
}

pub(crate) fn parse_headers(json: &str) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
        .map(|map| {
            map.into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

pub(crate) const ENDPOINT_COLUMNS: &str = "seq, id, workspace_id, url, event_types, description, headers, enabled, disabled_reason, \
     created_at_ms, updated_at_ms, failing_since_ms, last_success_at_ms, \
     previous_secret_expires_at_ms, rate_limit, ordering";

pub(crate) fn endpoint_from_row(row: &Row) -> rusqlite::Result<EndpointRow> {
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

/// The public id of the endpoint with this `seq`, if it still exists.
pub(crate) fn endpoint_id(db: &Db, seq: i64) -> Result<Option<String>> {
    let conn = sqlite_or!(db, |pg| pg::read::endpoint_id(pg, seq));
    Ok(conn
        .prepare_cached("SELECT id FROM endpoints WHERE seq = ?1")?
        .query_row([seq], |row| row.get(0))
        .optional()?)
}

/// The endpoint with this id; its previous secret's expiry only while it is later than
/// `now_ms` (the clock is read by the caller, never in SQL).
pub(crate) fn endpoint(db: &Db, id: &str, now_ms: i64) -> Result<Option<EndpointRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::endpoint(pg, id, now_ms));
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1 AND deleted_at_ms IS NULL");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], endpoint_from_row)
        .optional()?
        .map(|row| live_previous_secret(row, now_ms)))
}

/// Keeps `previous_secret_expires_at_ms` only if it is later than `now_ms`.
fn live_previous_secret(mut row: EndpointRow, now_ms: i64) -> EndpointRow {
    row.previous_secret_expires_at_ms = row
        .previous_secret_expires_at_ms
        .filter(|&expires_at_ms| expires_at_ms > now_ms);
    row
}

/// A page of endpoints, newest first, after the cursor `before_seq`; `workspace_id` narrows it.
pub(crate) fn endpoints(
    db: &Db,
    workspace_id: Option<&str>,
    before_seq: i64,
    limit: usize,
    now_ms: i64,
) -> Result<Vec<EndpointRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::endpoints(
        pg,
        workspace_id,
        before_seq,
        limit,
        now_ms
    ));
    let (sql, values) = endpoints_query(workspace_id, before_seq, limit);
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), endpoint_from_row)?
        .map(|row| row.map(|row| live_previous_secret(row, now_ms)))
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn endpoints_query(
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

pub(crate) type SqlValue = rusqlite::types::Value;

/// A WHERE clause made of only the filters given. A term written `(?1 IS NULL OR col = ?1)`
/// keeps one statement for every filter set but hides the column from the planner, so every
/// list scanned the whole table; with the term left out, each list searches an index.
#[derive(Default)]
pub(crate) struct Where {
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

/// An endpoint's live secrets at `now_ms`; None when the endpoint does not exist (any more).
pub(crate) fn endpoint_secrets(db: &Db, seq: i64, now_ms: i64) -> Result<Option<Secrets>> {
    let conn = sqlite_or!(db, |pg| pg::read::endpoint_secrets(pg, seq, now_ms));
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

/// An endpoint's deliveries created since `since_ms`, newest first, as (status, created_at_ms),
/// at most `limit` of them: what the stats of one endpoint are counted from.
pub(crate) fn recent_deliveries(
    db: &Db,
    endpoint_seq: i64,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    let conn = sqlite_or!(db, |pg| pg::read::recent_deliveries(
        pg,
        endpoint_seq,
        since_ms,
        limit
    ));
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

#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) workspace_id: String,
    pub(crate) event_type: String,
    pub(crate) created_at_ms: i64,
    pub(crate) body: Vec<u8>,
    pub(crate) test: bool,
    pub(crate) subject: Option<String>,
}

pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, workspace_id, type, created_at_ms, body, test, subject";

pub(crate) fn event_from_row(row: &Row) -> rusqlite::Result<EventRow> {
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
pub(crate) fn events_by_id(
    db: &Db,
    id: &str,
    workspace_id: Option<&str>,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::events_by_id(pg, id, workspace_id, limit));
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
pub(crate) struct EventFilter<'a> {
    pub(crate) workspace_id: Option<&'a str>,
    pub(crate) event_type: Option<&'a str>,
    pub(crate) since_ms: Option<i64>,
}

pub(crate) fn events(
    db: &Db,
    filter: &EventFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::events(pg, filter, before_seq, limit));
    let (sql, values) = events_query(filter, before_seq, limit);
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn events_query(
    filter: &EventFilter,
    before_seq: i64,
    limit: usize,
) -> (String, Vec<SqlValue>) {
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

#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) workspace_id: String,
    pub(crate) endpoint_id: String,
    pub(crate) status: String,
    pub(crate) attempts_made: i64,
    pub(crate) next_attempt_at_ms: Option<i64>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    pub(crate) test: bool,
}

pub(crate) const DELIVERY_SELECT: &str =
    "SELECT d.seq, d.id, ev.id, ev.type, ev.workspace_id, e.id, d.status, d.attempts_made,
        d.next_attempt_at_ms, d.created_at_ms, d.updated_at_ms, ev.test
    FROM deliveries d JOIN events ev ON ev.seq = d.event_seq
    JOIN endpoints e ON e.seq = d.endpoint_seq AND e.deleted_at_ms IS NULL";

pub(crate) fn delivery_from_row(row: &Row) -> rusqlite::Result<DeliveryRow> {
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

pub(crate) fn delivery(db: &Db, id: &str) -> Result<Option<DeliveryRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::delivery(pg, id));
    let sql = format!("{DELIVERY_SELECT} WHERE d.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], delivery_from_row)
        .optional()?)
}

/// Narrows `deliveries`: each `None` matches everything.
#[derive(Debug, Default)]
pub(crate) struct DeliveryFilter<'a> {
    pub(crate) workspace_id: Option<&'a str>,
    pub(crate) endpoint_id: Option<&'a str>,
    pub(crate) event_id: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    /// Only deliveries of events of this type.
    pub(crate) event_type: Option<&'a str>,
    /// Only deliveries created at or after / before these times (unix ms).
    pub(crate) since_ms: Option<i64>,
    pub(crate) until_ms: Option<i64>,
}

pub(crate) fn deliveries(
    db: &Db,
    filter: &DeliveryFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<DeliveryRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::deliveries(pg, filter, before_seq, limit));
    let (sql, values) = deliveries_query(filter, before_seq, limit);
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), delivery_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn deliveries_query(
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
    sql.add("ev.type = ?", filter.event_type.map(String::from));
    sql.add("d.created_at_ms >= ?", filter.since_ms);
    sql.add("d.created_at_ms < ?", filter.until_ms);
    sql.add("d.seq < ?", Some(before_seq));
    sql.finish(DELIVERY_SELECT, "ORDER BY d.seq DESC", limit)
}

#[derive(Debug, Clone)]
pub(crate) struct AttemptRow {
    pub(crate) number: i64,
    pub(crate) started_at_ms: i64,
    pub(crate) duration_ms: i64,
    pub(crate) status_code: Option<i64>,
    pub(crate) error_class: Option<String>,
    pub(crate) error_message: Option<String>,
    pub(crate) response_excerpt: Option<String>,
}

/// A delivery's last `limit` attempts, oldest first.
pub(crate) fn attempts(db: &Db, delivery_seq: i64, limit: usize) -> Result<Vec<AttemptRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::attempts(pg, delivery_seq, limit));
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

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) workspace_id: String,
    pub(crate) description: String,
    pub(crate) created_at_ms: i64,
    pub(crate) last_used_at_ms: Option<i64>,
    /// When it stops working (portal sessions); None: until revoked.
    pub(crate) expires_at_ms: Option<i64>,
}

pub(crate) const TOKEN_COLUMNS: &str =
    "seq, id, workspace_id, description, created_at_ms, last_used_at_ms, expires_at_ms";

pub(crate) fn token_from_row(row: &Row) -> rusqlite::Result<TokenRow> {
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

/// The workspace token with this hash, if it exists and has not expired at `now_ms`
/// (revoked tokens do not exist).
pub(crate) fn token_by_hash(db: &Db, token_sha256: &str, now_ms: i64) -> Result<Option<TokenRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::token_by_hash(pg, token_sha256, now_ms));
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens
         WHERE token_sha256 = ?1 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![token_sha256, now_ms], token_from_row)
        .optional()?)
}

/// A page of one workspace's tokens, newest first, after the cursor `before_seq`.
pub(crate) fn tokens(
    db: &Db,
    workspace_id: &str,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<TokenRow>> {
    let conn = sqlite_or!(db, |pg| pg::read::tokens(
        pg,
        workspace_id,
        before_seq,
        limit
    ));
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

/// Whether the database answers a query (`/healthz`).
pub(crate) fn ping(db: &Db) -> bool {
    let conn = sqlite_or!(db, |pg| pg::read::ping(pg));
    conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
        .is_ok()
}

/// Whether the endpoint's row is gone, purge included (`endpoint` answers None as soon as it is
/// deleted); the benchmark waits for this.
pub(crate) fn endpoint_row_gone(db: &Db, id: &str) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::read::endpoint_row_gone(pg, id));
    Ok(conn.query_row(
        "SELECT COUNT(*) = 0 FROM endpoints WHERE id = ?1",
        [id],
        |row| row.get::<_, bool>(0),
    )?)
}
