//! `GET /openapi.json`: the OpenAPI 3.1 description of every route in `api::ROUTES` (a unit
//! test keeps the two the same, and `tests/openapi.rs` calls every route of this document on
//! the real binary). Built once, from the shapes below; `api.rs` writes the same shapes.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::catalog;
use crate::http::{PAGE_LIMIT_MAX, RECOVER_DELIVERIES_MAX, STATS_HOURS_MAX};
use crate::model::{DELIVERY_STATUSES, ErrorClass};

fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn with_description(schema: Value, description: &str) -> Value {
    let mut schema = schema;
    schema["description"] = Value::from(description);
    schema
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// An object schema: every listed property required, no others (the API writes exactly these).
fn object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .expect("properties are an object")
        .keys()
        .map(|key| Value::from(key.as_str()))
        .collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn list_of(item: &str) -> Value {
    object(json!({
        "data": {"type": "array", "items": reference(item)},
        "next": nullable(json!({"type": "string"})),
    }))
}

fn with(base: Value, extra: Value) -> Value {
    let mut base = base;
    for (key, value) in extra.as_object().expect("extra properties") {
        base["properties"][key] = value.clone();
        base["required"]
            .as_array_mut()
            .expect("an object schema")
            .push(Value::from(key.as_str()));
    }
    base
}

/// Ids given by clients (workspaces, event ids), as `ingest::check_id` accepts them.
fn client_id() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"})
}

/// A duration as `time::parse_duration` reads it.
fn duration() -> Value {
    json!({"type": "string", "pattern": "^[0-9]{1,9}(ms|s|m|h|d)$", "description": "at most 3650d"})
}

/// The JSON Schema of one catalog field kind.
fn kind_schema(kind: catalog::Kind) -> Value {
    use catalog::Kind;
    match kind {
        Kind::Text => json!({"type": "string", "minLength": 1}),
        Kind::Email => json!({"type": "string", "format": "email"}),
        Kind::DateTime => json!({"type": "string", "format": "date-time"}),
        Kind::Date => json!({"type": "string", "format": "date"}),
        Kind::Seconds => json!({"type": "integer", "minimum": 0}),
        Kind::NonNegative => json!({"type": "number", "minimum": 0}),
        Kind::Percent => json!({"type": "number", "minimum": 0, "maximum": 100}),
        Kind::Object => json!({"type": "object"}),
    }
}

/// A new event: one alternative per catalog type, its `data` with the required fields.
fn new_event() -> Value {
    let alternatives: Vec<Value> = catalog::EVENT_TYPES
        .iter()
        .map(|event_type| {
            let fields: Map<String, Value> = event_type
                .fields
                .iter()
                .map(|(name, kind)| (name.to_string(), kind_schema(*kind)))
                .collect();
            let required: Vec<&str> = event_type.fields.iter().map(|(name, _)| *name).collect();
            json!({
                "type": "object",
                "description": event_type.description,
                "properties": {
                    "type": {"const": event_type.name},
                    "data": {"type": "object", "properties": fields, "required": required},
                    "workspace_id": client_id(),
                    "id": client_id(),
                    "subject": {"type": "string", "minLength": 1, "maxLength": 200,
                                "description": "what the event is about, for ordering: \"subject\" endpoints; default <type before the dot>:<data.id>"},
                },
                "required": ["type", "data"],
                "additionalProperties": false,
            })
        })
        .collect();
    json!({ "oneOf": alternatives })
}

fn schemas() -> Value {
    let delivery_status = json!({"type": "string", "enum": DELIVERY_STATUSES});
    let endpoint = object(json!({
        "id": {"type": "string"},
        "workspace_id": {"type": "string"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string", "const": "[redacted]"}},
        "enabled": {"type": "boolean"},
        "disabled_reason": nullable(json!({"type": "string"})),
        "failing_since": nullable(time()),
        "last_success_at": nullable(time()),
        "previous_secret_expires_at": nullable(time()),
        "rate_limit": rate_limit(),
        "ordering": ordering(),
        "window": {"type": "integer", "minimum": 1, "description": "attempts this endpoint's adaptive window lets run at once now (1 to --endpoint-concurrency)"},
        "created_at": time(),
        "updated_at": time(),
    }));
    let delivery = object(json!({
        "id": {"type": "string"},
        "event_id": {"type": "string"},
        "event_type": {"type": "string"},
        "endpoint_id": {"type": "string"},
        "workspace_id": {"type": "string"},
        "status": delivery_status,
        "test": {"type": "boolean"},
        "attempts_made": {"type": "integer", "minimum": 0},
        "next_attempt_at": nullable(time()),
        "created_at": time(),
        "updated_at": time(),
    }));
    let event = object(json!({
        "id": {"type": "string"},
        "type": {"type": "string"},
        "created_at": time(),
        "workspace_id": {"type": "string"},
        "test": {"type": "boolean"},
        "subject": nullable(json!({"type": "string"})),
        "data": {},
    }));
    let accepted = object(json!({
        "id": {"type": "string"},
        "type": {"type": "string"},
        "created_at": time(),
        "workspace_id": {"type": "string"},
        "deliveries": {"type": "array", "items": object(json!({
            "id": {"type": "string"}, "endpoint_id": {"type": "string"}}))},
    }));
    let attempt = object(json!({
        "number": {"type": "integer", "minimum": 1},
        "started_at": time(),
        "duration_ms": {"type": "integer", "minimum": 0},
        "status_code": nullable(json!({"type": "integer"})),
        "error_class": nullable(json!({"type": "string", "enum": ErrorClass::ALL.map(ErrorClass::as_str)})),
        "error": nullable(json!({"type": "string"})),
        "response_excerpt": nullable(json!({"type": "string"})),
    }));
    let token = object(json!({
        "id": {"type": "string"},
        "workspace_id": {"type": "string"},
        "description": {"type": "string"},
        "created_at": time(),
        "last_used_at": nullable(time()),
        "expires_at": nullable(time()),
    }));
    let error = object(json!({"error": {
        "type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
        "required": ["code", "message"],
        "additionalProperties": false,
    }}));
    let event_type = object(json!({
        "type": {"type": "string"},
        "description": {"type": "string"},
        "fields": {"type": "array", "items": object(json!({
            "name": {"type": "string"}, "kind": {"type": "string"}, "required": {"type": "boolean"}}))},
        "sample": {"type": "object"},
    }));
    let counts = |names: &[&str]| {
        let properties: Map<String, Value> = names
            .iter()
            .map(|name| (name.to_string(), json!({"type": "integer", "minimum": 0})))
            .collect();
        object(Value::Object(properties))
    };
    let mut subscribable: Vec<&str> = vec!["*"];
    subscribable.extend(catalog::EVENT_TYPES.iter().map(|t| t.name));
    let subscribed =
        json!({"type": "array", "items": {"type": "string", "enum": subscribable}, "minItems": 1});
    json!({
        "Endpoint": endpoint,
        "EndpointWithSecret": with(endpoint.clone(), json!({"secret": {"type": "string", "pattern": "^whsec_"}})),
        "EndpointList": list_of("Endpoint"),
        "EndpointSecrets": object(json!({
            "secret": {"type": "string"},
            "previous_secret": nullable(json!({"type": "string"})),
            "previous_secret_expires_at": nullable(time()),
        })),
        "EndpointStats": object(json!({
            "hours": {"type": "integer"},
            "last_success_at": nullable(time()),
            "success_rate": nullable(json!({"type": "number", "minimum": 0, "maximum": 1})),
            "totals": counts(&["succeeded", "failed", "pending", "delivering"]),
            "counted": {"type": "integer", "minimum": 0},
            "hourly": {"type": "array", "items": with(counts(&["succeeded", "failed", "pending"]), json!({"hour": time()}))},
        })),
        "Event": event,
        "EventWithDeliveries": with(event.clone(), json!({"deliveries": {"type": "array", "items": reference("Delivery")}})),
        "EventList": list_of("Event"),
        "AcceptedEvent": accepted,
        "AcceptedTestEvent": with(accepted.clone(), json!({"test": {"type": "boolean", "const": true}})),
        "AcceptedBatch": object(json!({"events": {"type": "array", "items": reference("AcceptedEvent")}})),
        "EventType": event_type,
        "EventTypeList": list_of("EventType"),
        "Delivery": delivery,
        "DeliveryWithAttempts": with(delivery.clone(), json!({"attempts": {"type": "array", "items": attempt}})),
        "DeliveryList": list_of("Delivery"),
        "Token": token,
        "TokenWithSecret": with(token.clone(), json!({"token": {"type": "string", "pattern": "^cew_ws_"}})),
        "TokenList": list_of("Token"),
        "PortalLink": object(json!({
            "code": {"type": "string", "pattern": "^cew_pl_"},
            "workspace_id": {"type": "string"},
            "expires_at": time(),
            "url": {"type": "string", "description": "the dashboard's address for this code, to append to the service's origin"},
        })),
        "Recovered": object(json!({
            "requeued": {"type": "integer", "minimum": 0, "maximum": RECOVER_DELIVERIES_MAX},
            "more": {"type": "boolean"},
            "next": nullable(json!({"type": "string", "description": "when more: give it as `after` to go on"})),
        })),
        "Me": {
            "oneOf": [
                object(json!({"role": {"const": "admin"}})),
                object(json!({"role": {"const": "workspace"}, "workspace_id": {"type": "string"}})),
            ]
        },
        "Health": object(json!({
            "database": {"type": "string", "enum": ["ok", "failing"]},
            "scheduler": {"type": "string", "enum": ["ok", "stalled"]},
        })),
        "Error": error,
        "NewEvent": new_event(),
        "NewEndpoint": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "https:// (http:// with --allow-http); a public address unless allowed"},
                "events": subscribed,
                "description": {"type": "string", "maxLength": 1000},
                "workspace_id": client_id(),
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "rate_limit": rate_limit(),
                "ordering": ordering(),
            },
            "required": ["url", "events"],
            "additionalProperties": false,
        },
        "EndpointChange": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "format": "uri"},
                "events": subscribed,
                "description": {"type": "string", "maxLength": 1000},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "enabled": {"type": "boolean"},
                "rate_limit": rate_limit(),
                "ordering": ordering(),
            },
            "additionalProperties": false,
        },
    })
}

/// An endpoint's `rate_limit` (SPEC "Flow control").
fn rate_limit() -> Value {
    nullable(json!({"type": "integer", "minimum": 1, "maximum": 10000,
                    "description": "most attempt starts in any second; null: no limit"}))
}

/// An endpoint's `ordering` (SPEC "Flow control").
fn ordering() -> Value {
    json!({"type": "string", "enum": ["none", "subject"],
           "description": "subject: a delivery waits while an earlier one of the same subject to this endpoint is unfinished"})
}

/// The answers every authenticated route may give besides its own.
fn common_errors(responses: &mut Map<String, Value>) {
    for (status, why) in [
        (
            "400",
            "malformed JSON or query, or a key given twice in an event's data",
        ),
        ("401", "no token, or not a valid one"),
        ("403", "a workspace token acting outside its workspace"),
        ("404", "no such object (or not in the token's workspace)"),
        ("405", "method not allowed on this path"),
        ("408", "the request body did not arrive in time"),
        ("409", "conflict with the object's state"),
        ("411", "a body without a length"),
        ("413", "body too large"),
        ("415", "unsupported body encoding"),
        (
            "422",
            "a field is missing, unknown or invalid; `field` names it",
        ),
        ("431", "request head too large"),
        (
            "503",
            "the database cannot take writes now, or the service is stopping",
        ),
    ] {
        responses.entry(status).or_insert_with(|| {
            json!({"description": why, "content": {"application/json": {"schema": reference("Error")}}})
        });
    }
}

fn answer(description: &str, schema: Option<&str>) -> Value {
    match schema {
        Some(name) => {
            json!({"description": description, "content": {"application/json": {"schema": reference(name)}}})
        }
        None => json!({"description": description}),
    }
}

/// A static page of the dashboard, of this media type.
fn page(media_type: &str) -> Value {
    json!({"description": "the file", "content": {media_type: {"schema": {"type": "string"}}}})
}

/// Any of the dashboard's files.
fn page_file() -> Value {
    let content: Map<String, Value> = ["text/javascript", "text/css", "image/svg+xml"]
        .into_iter()
        .map(|media_type| {
            (
                media_type.to_string(),
                json!({"schema": {"type": "string"}}),
            )
        })
        .collect();
    json!({"description": "the file", "content": content})
}

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<Value>,
    query: Vec<Value>,
    responses: Vec<(&'static str, Value)>,
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn body(schema: Value) -> Option<Value> {
    Some(json!({"required": true, "content": {"application/json": {"schema": schema}}}))
}

fn optional_body(schema: Value) -> Option<Value> {
    Some(json!({"required": false, "content": {"application/json": {"schema": schema}}}))
}

fn operations() -> Vec<Op> {
    let limit = query(
        "limit",
        "items per page (default 50)",
        json!({"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX}),
    );
    let after = query(
        "after",
        "the `next` of the previous page (empty: the first page)",
        json!({"type": "string", "pattern": "^([1-9][0-9]{0,17})?$"}),
    );
    let paging = || vec![limit.clone(), after.clone()];
    let string = json!({"type": "string"});
    let mut deliveries_query = paging();
    deliveries_query.extend([
        query("endpoint_id", "only this endpoint's", string.clone()),
        query("event_id", "only this event's", string.clone()),
        query(
            "status",
            "only in this status",
            json!({"type": "string", "enum": DELIVERY_STATUSES}),
        ),
        query("workspace_id", "only this workspace's", client_id()),
    ]);
    let mut events_query = paging();
    events_query.extend([
        query("type", "only of this type", string.clone()),
        query("workspace_id", "only this workspace's", client_id()),
        query("since", "created at or after (RFC 3339)", time()),
    ]);
    let mut endpoints_query = paging();
    endpoints_query.push(query("workspace_id", "only this workspace's", client_id()));
    let op = |method, path, summary, body, query, responses| Op {
        method,
        path,
        summary,
        body,
        query,
        responses,
    };
    vec![
        op(
            "get",
            "/healthz",
            "Liveness: the database answers and the scheduler runs",
            None,
            vec![],
            vec![
                ("200", answer("healthy", Some("Health"))),
                ("503", answer("unhealthy", Some("Health"))),
            ],
        ),
        op(
            "get",
            "/metrics",
            "Prometheus text metrics",
            None,
            vec![],
            vec![(
                "200",
                json!({"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}),
            )],
        ),
        op(
            "get",
            "/openapi.json",
            "This document",
            None,
            vec![],
            vec![(
                "200",
                json!({"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}),
            )],
        ),
        op(
            "get",
            "/",
            "The dashboard's page",
            None,
            vec![],
            vec![("200", page("text/html"))],
        ),
        op(
            "head",
            "/",
            "The dashboard's page, headers only",
            None,
            vec![],
            vec![("200", answer("the page's headers", None))],
        ),
        op(
            "get",
            "/dashboard/{file}",
            "The dashboard's script, style sheet and icon",
            None,
            vec![],
            vec![
                ("200", page_file()),
                (
                    "304",
                    answer("unchanged since the ETag given in If-None-Match", None),
                ),
                ("404", answer("no such file", Some("Error"))),
            ],
        ),
        op(
            "head",
            "/dashboard/{file}",
            "A dashboard file's headers",
            None,
            vec![],
            vec![
                ("200", answer("the file's headers", None)),
                ("304", answer("unchanged", None)),
                ("404", answer("no such file", None)),
            ],
        ),
        op(
            "get",
            "/v1/me",
            "Who the token belongs to",
            None,
            vec![],
            vec![("200", answer("the caller", Some("Me")))],
        ),
        op(
            "post",
            "/v1/events",
            "Accept one event; 202 once committed",
            body(reference("NewEvent")),
            vec![],
            vec![
                (
                    "202",
                    answer("stored, deliveries queued", Some("AcceptedEvent")),
                ),
                (
                    "200",
                    answer(
                        "this id was accepted before; nothing new queued",
                        Some("AcceptedEvent"),
                    ),
                ),
            ],
        ),
        op(
            "post",
            "/v1/events/batch",
            "Accept up to 1000 events, all or nothing",
            body(
                json!({"type": "object", "properties": {"events": {"type": "array", "items": reference("NewEvent"), "minItems": 1, "maxItems": 1000}}, "required": ["events"]}),
            ),
            vec![],
            vec![("202", answer("all stored", Some("AcceptedBatch")))],
        ),
        op(
            "get",
            "/v1/events",
            "Events, newest first",
            None,
            events_query,
            vec![("200", answer("a page", Some("EventList")))],
        ),
        op(
            "get",
            "/v1/events/{id}",
            "One event with its deliveries; ids are unique per workspace",
            None,
            vec![query(
                "workspace_id",
                "the event's workspace; the admin names it when several workspaces use the id",
                client_id(),
            )],
            vec![("200", answer("the event", Some("EventWithDeliveries")))],
        ),
        op(
            "get",
            "/v1/event-types",
            "The event catalog",
            None,
            vec![],
            vec![("200", answer("every type", Some("EventTypeList")))],
        ),
        op(
            "post",
            "/v1/endpoints",
            "Create an endpoint; the answer holds its secret",
            body(reference("NewEndpoint")),
            vec![],
            vec![("201", answer("created", Some("EndpointWithSecret")))],
        ),
        op(
            "get",
            "/v1/endpoints",
            "Endpoints, newest first",
            None,
            endpoints_query,
            vec![("200", answer("a page", Some("EndpointList")))],
        ),
        op(
            "get",
            "/v1/endpoints/{id}",
            "One endpoint (never its secret)",
            None,
            vec![],
            vec![("200", answer("the endpoint", Some("Endpoint")))],
        ),
        op(
            "patch",
            "/v1/endpoints/{id}",
            "Change an endpoint",
            body(reference("EndpointChange")),
            vec![],
            vec![("200", answer("changed", Some("Endpoint")))],
        ),
        op(
            "delete",
            "/v1/endpoints/{id}",
            "Delete an endpoint: gone at once; its deliveries are purged in the background",
            None,
            vec![],
            vec![("204", answer("deleted", None))],
        ),
        op(
            "get",
            "/v1/endpoints/{id}/secret",
            "The endpoint's live secrets",
            None,
            vec![],
            vec![("200", answer("secrets", Some("EndpointSecrets")))],
        ),
        op(
            "post",
            "/v1/endpoints/{id}/rotate-secret",
            "A new secret; the old one stays live for the overlap",
            optional_body(
                json!({"type": "object", "properties": {"overlap": with_description(duration(), "e.g. 24h (default), 0s; at most 30d")}, "additionalProperties": false}),
            ),
            vec![],
            vec![("200", answer("rotated", Some("EndpointWithSecret")))],
        ),
        op(
            "post",
            "/v1/endpoints/{id}/test",
            "Send a sample event to this endpoint only",
            optional_body(
                json!({"type": "object", "properties": {"type": {"type": "string", "enum": catalog::EVENT_TYPES.iter().map(|t| t.name).collect::<Vec<_>>()}}, "additionalProperties": false}),
            ),
            vec![],
            vec![("202", answer("queued", Some("AcceptedTestEvent")))],
        ),
        op(
            "post",
            "/v1/endpoints/{id}/recover",
            "Failed deliveries in a window back to pending",
            body(
                json!({"type": "object", "properties": {"since": time(), "until": time(), "after": nullable(json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}))}, "required": ["since"], "additionalProperties": false}),
            ),
            vec![],
            vec![("202", answer("requeued", Some("Recovered")))],
        ),
        op(
            "get",
            "/v1/endpoints/{id}/stats",
            "Deliveries per hour by outcome, success rate, last success",
            None,
            vec![query(
                "hours",
                "window in hours (default 24)",
                json!({"type": "integer", "minimum": 1, "maximum": STATS_HOURS_MAX}),
            )],
            vec![("200", answer("stats", Some("EndpointStats")))],
        ),
        op(
            "get",
            "/v1/deliveries",
            "Deliveries, newest first",
            None,
            deliveries_query,
            vec![("200", answer("a page", Some("DeliveryList")))],
        ),
        op(
            "get",
            "/v1/deliveries/{id}",
            "One delivery with its attempts",
            None,
            vec![],
            vec![("200", answer("the delivery", Some("DeliveryWithAttempts")))],
        ),
        op(
            "post",
            "/v1/deliveries/{id}/retry",
            "Back to pending now; the attempt count goes on",
            None,
            vec![],
            vec![("202", answer("queued", Some("Delivery")))],
        ),
        op(
            "post",
            "/v1/workspaces/{workspace}/tokens",
            "A workspace token (admin only); shown only here",
            optional_body(
                json!({"type": "object", "properties": {"description": {"type": "string", "maxLength": 1000}}, "additionalProperties": false}),
            ),
            vec![],
            vec![("201", answer("created", Some("TokenWithSecret")))],
        ),
        op(
            "get",
            "/v1/workspaces/{workspace}/tokens",
            "A workspace's tokens (admin only), never the secret",
            None,
            paging(),
            vec![("200", answer("a page", Some("TokenList")))],
        ),
        op(
            "delete",
            "/v1/workspaces/{workspace}/tokens/{id}",
            "Revoke a token (admin only)",
            None,
            vec![],
            vec![("204", answer("revoked", None))],
        ),
        op(
            "post",
            "/v1/workspaces/{workspace}/portal-links",
            "A single-use, short-lived link that opens the dashboard for the workspace (admin only)",
            optional_body(
                json!({"type": "object", "properties": {"expires_in": with_description(duration(), "default 15m, at most 24h")}, "additionalProperties": false}),
            ),
            vec![],
            vec![("201", answer("created", Some("PortalLink")))],
        ),
        op(
            "post",
            "/v1/portal/session",
            "Use up a portal link's code (no token needed): a workspace token for 12 hours",
            body(
                json!({"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"], "additionalProperties": false}),
            ),
            vec![],
            vec![
                ("201", answer("a portal session", Some("TokenWithSecret"))),
                ("400", answer("malformed JSON", Some("Error"))),
                (
                    "401",
                    answer(
                        "the code was used, has expired or never existed",
                        Some("Error"),
                    ),
                ),
                ("405", answer("method not allowed", Some("Error"))),
                (
                    "408",
                    answer("the body did not arrive in time", Some("Error")),
                ),
                ("413", answer("body too large", Some("Error"))),
                ("422", answer("no code, or an unknown field", Some("Error"))),
                (
                    "503",
                    answer("the database cannot take writes now", Some("Error")),
                ),
            ],
        ),
    ]
}

/// The document as served.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let mut operation = Map::new();
        operation.insert("summary".into(), Value::from(op.summary));
        let operation_id = format!(
            "{}{}",
            op.method,
            op.path
                .split(['/', '-', '.', '{', '}'])
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let mut chars = part.chars();
                    chars
                        .next()
                        .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<String>()
        );
        operation.insert("operationId".into(), Value::from(operation_id));
        let mut parameters: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let schema = if name == "workspace" {
                    client_id()
                } else {
                    json!({"type": "string"})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        parameters.extend(op.query);
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(body) = op.body {
            operation.insert("requestBody".into(), body);
        }
        let mut responses: Map<String, Value> = op
            .responses
            .into_iter()
            .map(|(status, value)| (status.to_string(), value))
            .collect();
        let public = [
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/v1/portal/session",
        ]
        .contains(&op.path)
            || op.path == "/"
            || op.path.starts_with("/dashboard/");
        if public {
            operation.insert("security".into(), json!([]));
        } else {
            common_errors(&mut responses);
        }
        operation.insert("responses".into(), Value::Object(responses));
        paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item")
            .insert(op.method.into(), Value::Object(operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ClockEye Webhooks",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Delivers ClockEye events to webhook endpoints, signed and retried. Every route but /healthz, /metrics, /openapi.json and the dashboard's files (/, /dashboard/…) needs Authorization: Bearer <admin or workspace token>.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

/// Every (METHOD, path) a document describes.
pub fn operations_of(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_exactly_the_routes_of_the_router() {
        let described = operations_of(&document());
        let routed: BTreeSet<(String, String)> = crate::http::ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(described, routed);
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "no schema {name}");
        }
    }
}
