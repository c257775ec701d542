//! Postgres twins of `store::read`: the same queries, orders, cursors and limits. Lists with
//! filters reuse the SQLite side's WHERE builders (`endpoints_query`, `events_query`,
//! `deliveries_query`), with their `?` turned into `$n` by `dynamic`; the fixed queries are
//! written out here. Every integer column is BIGINT: read `i64`, convert flags and small
//! numbers in Rust.

use postgres::Row;
use postgres::types::ToSql;

use super::Conn;
use crate::error::{Error, Result};
use crate::model::Secrets;
use crate::store::read::*;
use crate::store::{DatabaseGauges, DeliveryFilter, EventFilter};

pub(crate) fn metrics_gauges(pg: &mut Conn, now_ms: i64) -> Result<DatabaseGauges> {
    let row = pg.query_opt(
        "SELECT COUNT(*), MIN(CASE WHEN next_attempt_at_ms <= $1 THEN next_attempt_at_ms END)
         FROM deliveries WHERE status = 'pending'",
        &[&now_ms],
    )?;
    let (deliveries_pending, oldest_due_ms): (i64, Option<i64>) = match row {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, None),
    };
    let endpoints_disabled: i64 = match pg.query_opt(
        "SELECT COUNT(*) FROM endpoints WHERE enabled = 0 AND deleted_at_ms IS NULL",
        &[],
    )? {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    Ok(DatabaseGauges {
        deliveries_pending,
        oldest_due_age_ms: oldest_due_ms.map_or(0, |due| (now_ms - due).max(0)),
        endpoints_disabled,
    })
}

/// A BIGINT 0/1 flag as the bool the row types keep.
fn flag(row: &Row, index: usize) -> Result<bool> {
    Ok(row.try_get::<_, i64>(index)? != 0)
}

pub(crate) fn endpoint_from_pg(row: &Row) -> Result<EndpointRow> {
    let event_types: String = row.try_get(4)?;
    let headers: String = row.try_get(6)?;
    let rate_limit: Option<i64> = row.try_get(14)?;
    Ok(EndpointRow {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        workspace_id: row.try_get(2)?,
        url: row.try_get(3)?,
        event_types: serde_json::from_str(&event_types).unwrap_or_default(),
        description: row.try_get(5)?,
        headers: parse_headers(&headers),
        enabled: flag(row, 7)?,
        disabled_reason: row.try_get(8)?,
        created_at_ms: row.try_get(9)?,
        updated_at_ms: row.try_get(10)?,
        failing_since_ms: row.try_get(11)?,
        last_success_at_ms: row.try_get(12)?,
        previous_secret_expires_at_ms: row.try_get(13)?,
        rate_limit: rate_limit
            .map(|limit| {
                u32::try_from(limit).map_err(|_| {
                    Error::Unavailable(format!("endpoints.rate_limit {limit} is out of range"))
                })
            })
            .transpose()?,
        ordering: row.try_get(15)?,
    })
}

/// Keeps `previous_secret_expires_at_ms` only if it is later than `now_ms` (as on SQLite).
fn live_previous_secret(mut row: EndpointRow, now_ms: i64) -> EndpointRow {
    row.previous_secret_expires_at_ms = row
        .previous_secret_expires_at_ms
        .filter(|&expires_at_ms| expires_at_ms > now_ms);
    row
}

pub(crate) fn endpoint_id(pg: &mut Conn, seq: i64) -> Result<Option<String>> {
    match pg.query_opt("SELECT id FROM endpoints WHERE seq = $1", &[&seq])? {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

pub(crate) fn endpoint(pg: &mut Conn, id: &str, now_ms: i64) -> Result<Option<EndpointRow>> {
    // ENDPOINT_COLUMNS, written out: a prepared statement needs a 'static text.
    let row = pg.query_opt(
        "SELECT seq, id, workspace_id, url, event_types, description, headers, enabled, disabled_reason,
                created_at_ms, updated_at_ms, failing_since_ms, last_success_at_ms,
                previous_secret_expires_at_ms, rate_limit, ordering
         FROM endpoints WHERE id = $1 AND deleted_at_ms IS NULL",
        &[&id],
    )?;
    row.map(|row| Ok(live_previous_secret(endpoint_from_pg(&row)?, now_ms)))
        .transpose()
}

pub(crate) fn endpoints(
    pg: &mut Conn,
    workspace_id: Option<&str>,
    before_seq: i64,
    limit: usize,
    now_ms: i64,
) -> Result<Vec<EndpointRow>> {
    let (sql, values) = endpoints_query(workspace_id, before_seq, limit);
    dynamic(pg, &sql, &values)?
        .iter()
        .map(|row| Ok(live_previous_secret(endpoint_from_pg(row)?, now_ms)))
        .collect()
}

/// Runs SQL made by the SQLite side's `Where` builder: each `?` becomes `$1`, `$2`, … in
/// order (the builders put no `?` anywhere else), each value binds as its Postgres type.
fn dynamic(pg: &mut Conn, sql: &str, values: &[SqlValue]) -> Result<Vec<Row>> {
    let sql = dollar(sql);
    let params: Vec<Box<dyn ToSql + Sync>> = values
        .iter()
        .map(|value| -> Box<dyn ToSql + Sync> {
            match value {
                SqlValue::Integer(integer) => Box::new(*integer),
                SqlValue::Text(text) => Box::new(text.clone()),
                SqlValue::Real(real) => Box::new(*real),
                SqlValue::Blob(blob) => Box::new(blob.clone()),
                SqlValue::Null => Box::new(None::<String>),
            }
        })
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|param| param.as_ref()).collect();
    pg.query_dynamic(&sql, &params)
}

/// `?` → `$1`, `$2`, … in order of appearance.
pub(crate) fn dollar(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut number = 0;
    for c in sql.chars() {
        if c == '?' {
            number += 1;
            out.push('$');
            out.push_str(&number.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn endpoint_secrets(pg: &mut Conn, seq: i64, now_ms: i64) -> Result<Option<Secrets>> {
    let Some(row) = pg.query_opt(
        "SELECT secret, previous_secret, previous_secret_expires_at_ms FROM endpoints WHERE seq = $1",
        &[&seq],
    )?
    else {
        return Ok(None);
    };
    let previous: Option<String> = row.try_get(1)?;
    let expires_at_ms: Option<i64> = row.try_get(2)?;
    let live = match (previous, expires_at_ms) {
        (Some(previous), Some(at)) if at > now_ms => Some((previous, at)),
        _ => None,
    };
    Ok(Some(Secrets {
        current: row.try_get(0)?,
        previous: live,
    }))
}

pub(crate) fn recent_deliveries(
    pg: &mut Conn,
    endpoint_seq: i64,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    // The SQLite twin walks newest first and stops at the first older row or at `limit`: the
    // first `limit` rows are all it can take, so only those are fetched.
    let rows = pg.query(
        "SELECT status, created_at_ms FROM deliveries WHERE endpoint_seq = $1
         ORDER BY seq DESC LIMIT $2",
        &[&endpoint_seq, &(limit as i64)],
    )?;
    let mut recent = Vec::new();
    for row in &rows {
        let created_at_ms: i64 = row.try_get(1)?;
        if created_at_ms < since_ms || recent.len() >= limit {
            break;
        }
        recent.push((row.try_get(0)?, created_at_ms));
    }
    Ok(recent)
}

pub(crate) fn event_from_pg(row: &Row) -> Result<EventRow> {
    Ok(EventRow {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        workspace_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        body: row.try_get(5)?,
        test: flag(row, 6)?,
        subject: row.try_get(7)?,
    })
}

pub(crate) fn events_by_id(
    pg: &mut Conn,
    id: &str,
    workspace_id: Option<&str>,
    limit: usize,
) -> Result<Vec<EventRow>> {
    pg.query(
        "SELECT seq, id, workspace_id, type, created_at_ms, body, test, subject
         FROM events WHERE id = $1 AND ($2::text IS NULL OR workspace_id = $2)
         ORDER BY seq LIMIT $3",
        &[&id, &workspace_id, &(limit as i64)],
    )?
    .iter()
    .map(event_from_pg)
    .collect()
}

pub(crate) fn events(
    pg: &mut Conn,
    filter: &EventFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let (sql, values) = events_query(filter, before_seq, limit);
    dynamic(pg, &sql, &values)?
        .iter()
        .map(event_from_pg)
        .collect()
}

pub(crate) fn delivery_from_pg(row: &Row) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        event_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        workspace_id: row.try_get(4)?,
        endpoint_id: row.try_get(5)?,
        status: row.try_get(6)?,
        attempts_made: row.try_get(7)?,
        next_attempt_at_ms: row.try_get(8)?,
        created_at_ms: row.try_get(9)?,
        updated_at_ms: row.try_get(10)?,
        test: flag(row, 11)?,
    })
}

pub(crate) fn delivery(pg: &mut Conn, id: &str) -> Result<Option<DeliveryRow>> {
    // DELIVERY_SELECT, written out.
    let row = pg.query_opt(
        "SELECT d.seq, d.id, ev.id, ev.type, ev.workspace_id, e.id, d.status, d.attempts_made,
            d.next_attempt_at_ms, d.created_at_ms, d.updated_at_ms, ev.test
         FROM deliveries d JOIN events ev ON ev.seq = d.event_seq
         JOIN endpoints e ON e.seq = d.endpoint_seq AND e.deleted_at_ms IS NULL
         WHERE d.id = $1",
        &[&id],
    )?;
    row.as_ref().map(delivery_from_pg).transpose()
}

pub(crate) fn deliveries(
    pg: &mut Conn,
    filter: &DeliveryFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<DeliveryRow>> {
    let (sql, values) = deliveries_query(filter, before_seq, limit);
    dynamic(pg, &sql, &values)?
        .iter()
        .map(delivery_from_pg)
        .collect()
}

pub(crate) fn attempts(pg: &mut Conn, delivery_seq: i64, limit: usize) -> Result<Vec<AttemptRow>> {
    pg.query(
        "SELECT * FROM (
           SELECT number, started_at_ms, duration_ms, status_code, error_class, error_message, response_excerpt, seq
           FROM attempts WHERE delivery_seq = $1 ORDER BY number DESC, seq DESC LIMIT $2) AS last
         ORDER BY number, seq",
        &[&delivery_seq, &(limit as i64)],
    )?
    .iter()
    .map(|row| {
        Ok(AttemptRow {
            number: row.try_get(0)?,
            started_at_ms: row.try_get(1)?,
            duration_ms: row.try_get(2)?,
            status_code: row.try_get(3)?,
            error_class: row.try_get(4)?,
            error_message: row.try_get(5)?,
            response_excerpt: row.try_get(6)?,
        })
    })
    .collect()
}

pub(crate) fn token_from_pg(row: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        workspace_id: row.try_get(2)?,
        description: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        last_used_at_ms: row.try_get(5)?,
        expires_at_ms: row.try_get(6)?,
    })
}

pub(crate) fn token_by_hash(
    pg: &mut Conn,
    token_sha256: &str,
    now_ms: i64,
) -> Result<Option<TokenRow>> {
    pg.query_opt(
        "SELECT seq, id, workspace_id, description, created_at_ms, last_used_at_ms, expires_at_ms
         FROM tokens WHERE token_sha256 = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)",
        &[&token_sha256, &now_ms],
    )?
    .as_ref()
    .map(token_from_pg)
    .transpose()
}

pub(crate) fn tokens(
    pg: &mut Conn,
    workspace_id: &str,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<TokenRow>> {
    pg.query(
        "SELECT seq, id, workspace_id, description, created_at_ms, last_used_at_ms, expires_at_ms
         FROM tokens WHERE workspace_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        &[&workspace_id, &before_seq, &(limit as i64)],
    )?
    .iter()
    .map(token_from_pg)
    .collect()
}

pub(crate) fn ping(pg: &mut Conn) -> bool {
    pg.query_opt("SELECT 1::bigint", &[])
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<_, i64>(0).ok())
        == Some(1)
}

pub(crate) fn endpoint_row_gone(pg: &mut Conn, id: &str) -> Result<bool> {
    let row = pg.query_opt("SELECT COUNT(*) = 0 FROM endpoints WHERE id = $1", &[&id])?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::dollar;

    #[test]
    fn question_marks_become_numbered_parameters_in_order() {
        assert_eq!(
            dollar("SELECT a FROM t WHERE b = ? AND c < ? LIMIT ?"),
            "SELECT a FROM t WHERE b = $1 AND c < $2 LIMIT $3"
        );
        assert_eq!(dollar("SELECT 1"), "SELECT 1");
    }
}
