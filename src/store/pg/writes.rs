//! Postgres twins of `store::writes`: the same statements as on SQLite, in Postgres' dialect.
//! Parameters that are NULL or used in several places carry a cast (`$6::bigint`), since
//! Postgres infers one type per parameter; flags bind as BIGINT 0/1; a new row's `seq` comes
//! back from `RETURNING`.

use super::Conn;
use crate::error::Result;
use crate::store::read::*;

pub(crate) fn meta(pg: &mut Conn, key: &str) -> Result<Option<String>> {
    match pg.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])? {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

// The admin token now uses `set_meta_if_absent`; kept for tools that overwrite a setting.
#[allow(dead_code)]
pub(crate) fn set_meta(pg: &mut Conn, key: &str, value: &str) -> Result<()> {
    pg.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&key, &value],
    )?;
    Ok(())
}

pub(crate) fn set_meta_if_absent(pg: &mut Conn, key: &str, value: &str) -> Result<Option<String>> {
    if let Some(row) = pg.query_opt(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value",
        &[&key, &value],
    )? {
        return Ok(Some(row.try_get(0)?));
    }
    meta(pg, key)
}

pub(crate) fn insert_endpoint(
    pg: &mut Conn,
    endpoint: &mut EndpointRow,
    secret: &str,
) -> Result<()> {
    let row = pg.query_opt(
        "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, description, headers, enabled,
                                disabled_reason, created_at_ms, updated_at_ms, rate_limit, ordering)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING seq",
        &[
            &endpoint.id,
            &endpoint.workspace_id,
            &endpoint.url,
            &secret,
            &serde_json::to_string(&endpoint.event_types).expect("strings serialize"),
            &endpoint.description,
            &headers_json(&endpoint.headers),
            &i64::from(endpoint.enabled),
            &endpoint.disabled_reason,
            &endpoint.created_at_ms,
            &endpoint.updated_at_ms,
            &endpoint.rate_limit.map(i64::from),
            &endpoint.ordering,
        ],
    )?;
    if let Some(row) = row {
        endpoint.seq = row.try_get(0)?;
    }
    Ok(())
}

pub(crate) fn update_endpoint(
    pg: &mut Conn,
    endpoint: &EndpointRow,
    fields: &[&str],
) -> Result<bool> {
    let named = |field: &str| fields.contains(&field);
    let changed = pg.execute(
        "UPDATE endpoints SET url = COALESCE($2::text, url), event_types = COALESCE($3::text, event_types),
                              description = COALESCE($4::text, description), headers = COALESCE($5::text, headers),
                              failing_since_ms = CASE WHEN $6::bigint = 1 AND enabled = 0 THEN NULL ELSE failing_since_ms END,
                              disabled_reason = CASE WHEN $6::bigint IS NULL THEN disabled_reason
                                                     WHEN $6::bigint = 1 THEN NULL
                                                     ELSE COALESCE(disabled_reason, $7::text) END,
                              enabled = COALESCE($6::bigint, enabled), updated_at_ms = $8,
                              rate_limit = CASE WHEN $9::boolean THEN $10::bigint ELSE rate_limit END,
                              ordering = COALESCE($11::text, ordering)
         WHERE seq = $1",
        &[
            &endpoint.seq,
            &named("url").then_some(&endpoint.url),
            &named("events")
                .then(|| serde_json::to_string(&endpoint.event_types).expect("strings serialize")),
            &named("description").then_some(&endpoint.description),
            &named("headers").then(|| headers_json(&endpoint.headers)),
            &named("enabled").then_some(i64::from(endpoint.enabled)),
            &endpoint.disabled_reason,
            &endpoint.updated_at_ms,
            &named("rate_limit"),
            &endpoint.rate_limit.map(i64::from),
            &named("ordering").then_some(&endpoint.ordering),
        ],
    )?;
    if changed == 1 && named("ordering") {
        set_delivery_subjects(pg, endpoint.seq, endpoint.ordering == "subject")?;
    }
    Ok(changed == 1)
}

pub(crate) fn set_delivery_subjects(pg: &mut Conn, endpoint_seq: i64, ordered: bool) -> Result<()> {
    if ordered {
        pg.execute(
            "UPDATE deliveries SET subject = (SELECT ev.subject FROM events ev WHERE ev.seq = deliveries.event_seq)
             WHERE endpoint_seq = $1 AND subject IS NULL AND status IN ('pending', 'delivering')",
            &[&endpoint_seq],
        )?;
    } else {
        pg.execute(
            "UPDATE deliveries SET subject = NULL WHERE endpoint_seq = $1 AND subject IS NOT NULL",
            &[&endpoint_seq],
        )?;
    }
    Ok(())
}

pub(crate) fn rotate_secret(
    pg: &mut Conn,
    seq: i64,
    secret: &str,
    overlap_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let changed = pg.execute(
        "UPDATE endpoints SET
             previous_secret = CASE WHEN $3::bigint <= 0 THEN NULL
                                    WHEN sign_with_previous = 1 AND previous_secret_expires_at_ms > $4::bigint
                                        THEN previous_secret
                                    ELSE secret END,
             previous_secret_expires_at_ms = CASE WHEN $3::bigint > 0 THEN $4::bigint + $3::bigint END,
             sign_with_previous = CASE WHEN $3::bigint > 0 THEN 1 ELSE 0 END,
             secret = $2,
             updated_at_ms = $4::bigint
         WHERE seq = $1",
        &[&seq, &secret, &overlap_ms, &now_ms],
    )?;
    Ok(changed == 1)
}

pub(crate) fn recover_failed(
    pg: &mut Conn,
    endpoint_seq: i64,
    window: (i64, i64),
    after_seq: i64,
    now_ms: i64,
    limit: usize,
) -> Result<(usize, Option<i64>)> {
    let requeued: Vec<i64> = pg
        .query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = $6, updated_at_ms = $6,
                                   subject = COALESCE(subject, (SELECT ev.subject FROM events ev JOIN endpoints e ON e.seq = deliveries.endpoint_seq
                                              WHERE ev.seq = deliveries.event_seq AND e.ordering = 'subject'))
             WHERE seq IN (SELECT seq FROM deliveries
                           WHERE endpoint_seq = $1 AND status = 'failed'
                             AND created_at_ms >= $2 AND created_at_ms < $3 AND seq > $4
                           ORDER BY seq LIMIT $5)
             RETURNING seq",
            &[
                &endpoint_seq,
                &window.0,
                &window.1,
                &after_seq,
                &(limit as i64),
                &now_ms,
            ],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let Some(&last) = requeued.iter().max() else {
        return Ok((0, None));
    };
    let more: bool = match pg.query_opt(
        "SELECT EXISTS (SELECT 1 FROM deliveries
                        WHERE endpoint_seq = $1 AND status = 'failed'
                          AND created_at_ms >= $2 AND created_at_ms < $3 AND seq > $4)",
        &[&endpoint_seq, &window.0, &window.1, &last],
    )? {
        Some(row) => row.try_get(0)?,
        None => false,
    };
    Ok((requeued.len(), more.then_some(last)))
}

pub(crate) fn delete_endpoint(pg: &mut Conn, seq: i64, now_ms: i64) -> Result<bool> {
    Ok(pg.execute(
        "UPDATE endpoints SET deleted_at_ms = $2, updated_at_ms = $2
         WHERE seq = $1 AND deleted_at_ms IS NULL",
        &[&seq, &now_ms],
    )? == 1)
}

pub(crate) fn retry_delivery(pg: &mut Conn, seq: i64, now_ms: i64) -> Result<bool> {
    let changed = pg.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = $2, updated_at_ms = $2,
                               subject = COALESCE(subject, (SELECT ev.subject FROM events ev JOIN endpoints e ON e.seq = deliveries.endpoint_seq
                                          WHERE ev.seq = deliveries.event_seq AND e.ordering = 'subject'))
         WHERE seq = $1 AND status != 'delivering'",
        &[&seq, &now_ms],
    )?;
    Ok(changed == 1)
}

pub(crate) fn insert_token(pg: &mut Conn, token: &mut TokenRow, token_sha256: &str) -> Result<()> {
    let row = pg.query_opt(
        "INSERT INTO tokens (id, workspace_id, token_sha256, description, created_at_ms, expires_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING seq",
        &[
            &token.id,
            &token.workspace_id,
            &token_sha256,
            &token.description,
            &token.created_at_ms,
            &token.expires_at_ms,
        ],
    )?;
    if let Some(row) = row {
        token.seq = row.try_get(0)?;
    }
    Ok(())
}

pub(crate) fn insert_portal_code(
    pg: &mut Conn,
    code_sha256: &str,
    workspace_id: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<()> {
    pg.execute(
        "INSERT INTO portal_codes (code_sha256, workspace_id, created_at_ms, expires_at_ms)
         VALUES ($1, $2, $3, $4)",
        &[&code_sha256, &workspace_id, &now_ms, &expires_at_ms],
    )?;
    Ok(())
}

pub(crate) fn take_portal_code(
    pg: &mut Conn,
    code_sha256: &str,
    now_ms: i64,
) -> Result<Option<String>> {
    let Some(row) = pg.query_opt(
        "DELETE FROM portal_codes WHERE code_sha256 = $1 RETURNING workspace_id, expires_at_ms",
        &[&code_sha256],
    )?
    else {
        return Ok(None);
    };
    let workspace: String = row.try_get(0)?;
    let expires_at_ms: i64 = row.try_get(1)?;
    Ok((expires_at_ms > now_ms).then_some(workspace))
}

pub(crate) fn touch_token(pg: &mut Conn, token: &TokenRow, now_ms: i64) -> Result<()> {
    if token
        .last_used_at_ms
        .is_some_and(|used| now_ms - used < 60_000)
    {
        return Ok(());
    }
    pg.execute(
        "UPDATE tokens SET last_used_at_ms = $2 WHERE seq = $1",
        &[&token.seq, &now_ms],
    )?;
    Ok(())
}

pub(crate) fn delete_token(pg: &mut Conn, workspace_id: &str, id: &str) -> Result<bool> {
    Ok(pg.execute(
        "DELETE FROM tokens WHERE workspace_id = $1 AND id = $2",
        &[&workspace_id, &id],
    )? == 1)
}
