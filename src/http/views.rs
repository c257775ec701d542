//! Rows as the API's JSON: one function per object, and list pages.

#[allow(unused_imports)]
use super::prelude::*;

/// A page of rows as `{"data": [...], "next": cursor|null}`; `rows` holds up to `limit + 1`.
/// It also stops before passing `pages::PAGE_BYTES_MAX` (rows here are small and bounded, so
/// this rarely cuts; events have their own, see `pages.rs`).
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    seq: impl Fn(&T) -> i64,
    to_json: impl Fn(&T) -> Value,
) -> Value {
    let mut more = rows.len() > limit;
    rows.truncate(limit);
    let mut data = Vec::with_capacity(rows.len());
    let mut bytes = 0;
    for row in &rows {
        let value = to_json(row);
        bytes += value.to_string().len() + 1;
        if !data.is_empty() && bytes > crate::http::pages::PAGE_BYTES_MAX {
            more = true;
            break;
        }
        data.push(value);
    }
    let next = more
        .then(|| {
            rows.get(data.len() - 1)
                .map(|row| Value::from(seq(row).to_string()))
        })
        .flatten();
    json!({ "data": data, "next": next })
}

pub(crate) fn stored_json(stored: &StoredEvent) -> Value {
    json!({
        "id": stored.id,
        "type": stored.event_type,
        "created_at": format_rfc3339_seconds(stored.created_at_ms),
        "workspace_id": stored.workspace_id,
        "deliveries": stored.deliveries.iter().map(|(id, endpoint_id)| json!({"id": id, "endpoint_id": endpoint_id})).collect::<Vec<_>>(),
    })
}

pub(crate) fn event_json(event: &store::EventRow) -> Value {
    let data = serde_json::from_slice::<Value>(&event.body)
        .ok()
        .and_then(|mut body| body.get_mut("data").map(Value::take));
    json!({
        "id": event.id,
        "type": event.event_type,
        "created_at": format_rfc3339_seconds(event.created_at_ms),
        "workspace_id": event.workspace_id,
        "test": event.test,
        "subject": event.subject,
        "data": data,
    })
}

/// A workspace token as listed: never the token itself.
pub(crate) fn token_json(token: &store::TokenRow) -> Value {
    json!({
        "id": token.id,
        "workspace_id": token.workspace_id,
        "description": token.description,
        "created_at": format_rfc3339_millis(token.created_at_ms),
        "last_used_at": token.last_used_at_ms.map(format_rfc3339_millis),
        "expires_at": token.expires_at_ms.map(format_rfc3339_millis),
    })
}

/// An endpoint as the API shows it after creation: never the secret, header values redacted
/// (they often carry the receiver's credentials).
pub(crate) fn endpoint_json(endpoint: &EndpointRow, window: usize) -> Value {
    let headers: serde_json::Map<String, Value> = endpoint
        .headers
        .iter()
        .map(|(name, _)| (name.clone(), Value::from("[redacted]")))
        .collect();
    json!({
        "id": endpoint.id,
        "workspace_id": endpoint.workspace_id,
        "url": endpoint.url,
        "events": endpoint.event_types,
        "description": endpoint.description,
        "headers": headers,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since_ms.map(format_rfc3339_millis),
        "last_success_at": endpoint.last_success_at_ms.map(format_rfc3339_millis),
        "previous_secret_expires_at": endpoint.previous_secret_expires_at_ms.map(format_rfc3339_millis),
        "rate_limit": endpoint.rate_limit,
        "ordering": endpoint.ordering,
        "window": window,
        "created_at": format_rfc3339_millis(endpoint.created_at_ms),
        "updated_at": format_rfc3339_millis(endpoint.updated_at_ms),
    })
}

pub(crate) fn delivery_json(delivery: &DeliveryRow) -> Value {
    json!({
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "workspace_id": delivery.workspace_id,
        "status": delivery.status,
        "test": delivery.test,
        "attempts_made": delivery.attempts_made,
        "next_attempt_at": delivery.next_attempt_at_ms.map(time::format_rfc3339_millis),
        "created_at": format_rfc3339_millis(delivery.created_at_ms),
        "updated_at": format_rfc3339_millis(delivery.updated_at_ms),
    })
}

/// One attempt as listed in `GET /v1/deliveries/{id}`.
pub(crate) fn attempt_json(a: &store::AttemptRow) -> Value {
    json!({
        "number": a.number,
        "started_at": format_rfc3339_millis(a.started_at_ms),
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "error_class": a.error_class,
        "error": a.error_message,
        "response_excerpt": a.response_excerpt,
    })
}
