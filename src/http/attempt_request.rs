//! `GET /v1/deliveries/{id}/attempts/{number}/request`: what one attempt sent, for the
//! dashboard's "Request" view and `deliveries show --request`.
//!
//! Nothing extra is stored per attempt. The body is the event's stored body, which is the exact
//! bytes every attempt sends. The headers are rebuilt from the delivery and the attempt as the
//! worker (`worker::attempt`) makes them, with the two the HTTP client adds (`Host`, `Accept`):
//! ids, attempt number, `webhook-timestamp` = the second the attempt started. A test compares
//! them with what a receiver got. The signatures are recomputed with the endpoint's secrets as they stand
//! now, taking those that were live when the attempt started; after a later rotation the
//! attempt was signed with a secret that is gone, and the answer says so (`signatures`).
//! Secrets never appear; the endpoint's extra headers show their names, values masked (they
//! often carry the receiver's credentials).

use crate::store::Db;
use serde_json::{Value, json};

use super::problem::Problem;
use crate::signing::{clockeye_signature, standard_signature};
use crate::store::{self, DeliveryRow};

/// What stands in for an extra header's value.
pub const MASKED: &str = "[masked]";

/// How many of a delivery's attempts are looked through for the one asked for.
const ATTEMPTS_SEARCHED_MAX: usize = 1000;

/// The request of attempt `number` of `delivery`, or a problem (404 when there is none).
pub fn rebuild(conn: &Db, delivery: &DeliveryRow, number: &str) -> Result<Value, Problem> {
    let internal = |error: crate::error::Error| {
        log::error!("attempt request: {error}");
        Problem::new(500, "internal", "internal error")
    };
    let not_found = || {
        Problem::new(
            404,
            "not_found",
            format!("delivery {} has no attempt {number}", delivery.id),
        )
    };
    let number: i64 = number.parse().map_err(|_| not_found())?;
    let attempt = store::attempts(conn, delivery.seq, ATTEMPTS_SEARCHED_MAX)
        .map_err(internal)?
        .into_iter()
        .rfind(|a| a.number == number)
        .ok_or_else(not_found)?;
    let event = store::events_by_id(conn, &delivery.event_id, Some(&delivery.workspace_id), 1)
        .map_err(internal)?
        .pop()
        .ok_or_else(not_found)?;
    let endpoint = store::endpoint(conn, &delivery.endpoint_id, attempt.started_at_ms)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let timestamp_s = attempt.started_at_ms.div_euclid(1000);
    let body = &event.body[..];
    let secrets = store::endpoint_secrets(conn, endpoint.seq, attempt.started_at_ms)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let mut standard = standard_signature(&secrets.current, &event.id, timestamp_s, body);
    let mut clockeye = clockeye_signature(&secrets.current, body);
    if let Some((previous, _)) = &secrets.previous {
        standard.push(' ');
        standard.push_str(&standard_signature(previous, &event.id, timestamp_s, body));
        // During an overlap one of the two signs it: the one the receiver last accepted.
        clockeye = format!(
            "{} (or, signed with the newer secret, {clockeye})",
            clockeye_signature(previous, body)
        );
    }
    let mut headers = vec![
        ("Host".to_string(), host_header(&endpoint.url)),
        ("Content-Type".to_string(), "application/json".to_string()),
        (
            "User-Agent".to_string(),
            crate::engine::worker::user_agent(),
        ),
        ("X-ClockEye-Signature".to_string(), clockeye),
        ("X-ClockEye-Event".to_string(), delivery.event_type.clone()),
        ("X-ClockEye-Event-Id".to_string(), event.id.clone()),
        ("X-ClockEye-Delivery".to_string(), delivery.id.clone()),
        ("X-ClockEye-Attempt".to_string(), attempt.number.to_string()),
        ("webhook-id".to_string(), event.id.clone()),
        ("webhook-timestamp".to_string(), timestamp_s.to_string()),
        ("webhook-signature".to_string(), standard),
    ];
    for (name, _) in &endpoint.headers {
        headers.push((name.clone(), MASKED.to_string()));
    }
    // What the HTTP client (ureq) adds by itself.
    headers.push(("Accept".to_string(), "*/*".to_string()));
    headers.push(("Content-Length".to_string(), body.len().to_string()));
    let endpoint_updated_after = endpoint.updated_at_ms > attempt.started_at_ms;
    Ok(json!({
        "delivery_id": delivery.id,
        "number": attempt.number,
        "method": "POST",
        "url": endpoint.url,
        "headers": headers.iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(body),
        "body_bytes": body.len(),
        "signatures": if endpoint_updated_after {
            "recomputed with the endpoint's secrets of now; the endpoint changed after this attempt (a rotation among others), so it may have been signed with an earlier secret"
        } else {
            "recomputed with the secrets that were live when the attempt started"
        },
    }))
}

/// The `Host` header for `url`: its host, and its port unless the scheme's default.
fn host_header(url: &str) -> String {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return String::new();
    };
    let host = uri.host().unwrap_or("");
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_string(),
    }
}
