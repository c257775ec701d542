//! The API's small writes: settings, endpoints, secrets, recovery and manual retries, tokens
//! and portal codes. Each is one short statement (or a few) on an API thread's connection.

#[allow(unused_imports)]
use super::prelude::*;
use super::{Db, pg, sqlite_or};

pub(crate) fn meta(db: &Db, key: &str) -> Result<Option<String>> {
    let conn = sqlite_or!(db, |pg| pg::writes::meta(pg, key));
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

// The admin token now uses `set_meta_if_absent`; kept for tools that overwrite a setting.
#[allow(dead_code)]
pub(crate) fn set_meta(db: &Db, key: &str, value: &str) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::writes::set_meta(pg, key, value));
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        [key, value],
    )?;
    Ok(())
}

/// Stores `value` under `key` unless a value is there already, and returns the value kept
/// (ours, or the one that was first): two instances starting together on an empty database
/// agree on one. None only if the row was deleted in between.
pub(crate) fn set_meta_if_absent(db: &Db, key: &str, value: &str) -> Result<Option<String>> {
    let conn = sqlite_or!(db, |pg| pg::writes::set_meta_if_absent(pg, key, value));
    let inserted: Option<String> = conn
        .query_row(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING RETURNING value",
            [key, value],
            |row| row.get(0),
        )
        .optional()?;
    match inserted {
        Some(value) => Ok(Some(value)),
        None => meta(db, key),
    }
}

/// Inserts a new endpoint with its secret; fills in `seq`.
pub(crate) fn insert_endpoint(db: &Db, endpoint: &mut EndpointRow, secret: &str) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::writes::insert_endpoint(pg, endpoint, secret));
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

/// Writes the named fields of an endpoint (`url`, `events`, `description`, `headers`,
/// `enabled`, `rate_limit`, `ordering`) from `endpoint`, and nothing else: a PATCH must not undo what the scheduler wrote
/// meanwhile (an endpoint it disabled, its health). Disabling keeps an earlier reason;
/// enabling a disabled endpoint clears the reason and starts the health record afresh.
pub(crate) fn update_endpoint(db: &Db, endpoint: &EndpointRow, fields: &[&str]) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::writes::update_endpoint(pg, endpoint, fields));
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
        set_delivery_subjects(db, endpoint.seq, endpoint.ordering == "subject")?;
    }
    Ok(changed == 1)
}

/// Ordering by subject turned on: the endpoint's unfinished deliveries take their events'
/// subjects (finished ones take theirs if retried); turned off: every delivery forgets it.
pub(crate) fn set_delivery_subjects(db: &Db, endpoint_seq: i64, ordered: bool) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::writes::set_delivery_subjects(
        pg,
        endpoint_seq,
        ordered
    ));
    let sql = if ordered {
        "UPDATE deliveries SET subject = (SELECT ev.subject FROM events ev WHERE ev.seq = deliveries.event_seq)
         WHERE endpoint_seq = ?1 AND subject IS NULL AND status IN ('pending', 'delivering')"
    } else {
        "UPDATE deliveries SET subject = NULL WHERE endpoint_seq = ?1 AND subject IS NOT NULL"
    };
    conn.prepare_cached(sql)?.execute([endpoint_seq])?;
    Ok(())
}

/// Rotation: `secret` becomes current. With an overlap, the secret the receiver last accepted
/// (the current one, or during an earlier overlap the one it still uses) stays live until
/// `now + overlap` and signs `X-ClockEye-Signature` first; the other old one is retired. With
/// no overlap every old secret is retired at once.
pub(crate) fn rotate_secret(
    db: &Db,
    seq: i64,
    secret: &str,
    overlap_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::writes::rotate_secret(
        pg, seq, secret, overlap_ms, now_ms
    ));
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
pub(crate) fn recover_failed(
    db: &Db,
    endpoint_seq: i64,
    window: (i64, i64),
    after_seq: i64,
    now_ms: i64,
    limit: usize,
) -> Result<(usize, Option<i64>)> {
    let conn = sqlite_or!(db, |pg| pg::writes::recover_failed(
        pg,
        endpoint_seq,
        window,
        after_seq,
        now_ms,
        limit
    ));
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

/// Deletes an endpoint as the API sees it: one row written, so it answers at once. From now
/// on the endpoint is not found, gets no new deliveries and has none claimed; its history
/// goes later, in batches (`purge_deleted_endpoint`).
pub(crate) fn delete_endpoint(db: &Db, seq: i64, now_ms: i64) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::writes::delete_endpoint(pg, seq, now_ms));
    Ok(conn
        .prepare_cached(
            "UPDATE endpoints SET deleted_at_ms = ?2, updated_at_ms = ?2
             WHERE seq = ?1 AND deleted_at_ms IS NULL",
        )?
        .execute(params![seq, now_ms])?
        == 1)
}

/// Puts a delivery that is not in flight back to `pending`, due now. False when it is in flight.
/// On an endpoint ordered by subject it takes its place in its subject's order again.
pub(crate) fn retry_delivery(db: &Db, seq: i64, now_ms: i64) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::writes::retry_delivery(pg, seq, now_ms));
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

/// Stores a new workspace token by its hash; fills in `seq`.
pub(crate) fn insert_token(db: &Db, token: &mut TokenRow, token_sha256: &str) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::writes::insert_token(pg, token, token_sha256));
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

/// Stores a portal link code (by its hash) for `workspace_id`, usable until `expires_at_ms`.
pub(crate) fn insert_portal_code(
    db: &Db,
    code_sha256: &str,
    workspace_id: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::writes::insert_portal_code(
        pg,
        code_sha256,
        workspace_id,
        now_ms,
        expires_at_ms
    ));
    conn.prepare_cached(
        "INSERT INTO portal_codes (code_sha256, workspace_id, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![code_sha256, workspace_id, now_ms, expires_at_ms])?;
    Ok(())
}

/// Uses up a portal code: deletes it and returns its workspace, if it exists and has not
/// expired. A second use finds nothing.
pub(crate) fn take_portal_code(db: &Db, code_sha256: &str, now_ms: i64) -> Result<Option<String>> {
    let conn = sqlite_or!(db, |pg| pg::writes::take_portal_code(
        pg,
        code_sha256,
        now_ms
    ));
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

/// Notes that a token was used, to the minute (a write at most once a minute per token).
pub(crate) fn touch_token(db: &Db, token: &TokenRow, now_ms: i64) -> Result<()> {
    let conn = sqlite_or!(db, |pg| pg::writes::touch_token(pg, token, now_ms));
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

/// Revokes a token: it stops working at once. False when that workspace has no such token.
pub(crate) fn delete_token(db: &Db, workspace_id: &str, id: &str) -> Result<bool> {
    let conn = sqlite_or!(db, |pg| pg::writes::delete_token(pg, workspace_id, id));
    Ok(conn
        .prepare_cached("DELETE FROM tokens WHERE workspace_id = ?1 AND id = ?2")?
        .execute([workspace_id, id])?
        == 1)
}
