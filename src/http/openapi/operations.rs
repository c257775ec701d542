//! Each route's operation, one function per route (the route table in `http::routes` names
//! them); method and path are the route's.

use serde_json::{Value, json};

use super::build::*;
use crate::catalog;
use crate::http::endpoint_actions::STATS_HOURS_MAX;
use crate::http::request::PAGE_LIMIT_MAX;
use crate::http::route::Doc;
use crate::model::DELIVERY_STATUSES;

fn limit() -> Value {
    query(
        "limit",
        "items per page (default 50)",
        json!({"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX}),
    )
}

fn after() -> Value {
    query(
        "after",
        "the `next` of the previous page (empty: the first page)",
        json!({"type": "string", "pattern": "^([1-9][0-9]{0,17})?$"}),
    )
}

fn paging() -> Vec<Value> {
    vec![limit(), after()]
}

fn string() -> Value {
    json!({"type": "string"})
}

fn deliveries_query() -> Vec<Value> {
    let mut deliveries_query = paging();
    deliveries_query.extend([
        query("endpoint_id", "only this endpoint's", string()),
        query("event_id", "only this event's", string()),
        query(
            "status",
            "only in this status",
            json!({"type": "string", "enum": DELIVERY_STATUSES}),
        ),
        query("workspace_id", "only this workspace's", client_id()),
        query("type", "only of this event type", string()),
        query("since", "created at or after (RFC 3339)", time()),
        query("until", "created before (RFC 3339)", time()),
    ]);
    deliveries_query
}

fn events_query() -> Vec<Value> {
    let mut events_query = paging();
    events_query.extend([
        query("type", "only of this type", string()),
        query("workspace_id", "only this workspace's", client_id()),
        query("since", "created at or after (RFC 3339)", time()),
    ]);
    events_query
}

fn endpoints_query() -> Vec<Value> {
    let mut endpoints_query = paging();
    endpoints_query.push(query("workspace_id", "only this workspace's", client_id()));
    endpoints_query
}

pub(crate) fn get_healthz() -> Doc {
    Doc {
        summary: "Liveness: the database answers and the scheduler runs",
        body: None,
        query: vec![],
        responses: vec![
            ("200", answer("healthy", Some("Health"))),
            ("503", answer("unhealthy", Some("Health"))),
        ],
    }
}

pub(crate) fn get_metrics() -> Doc {
    Doc {
        summary: "Prometheus text metrics",
        body: None,
        query: vec![],
        responses: vec![(
            "200",
            json!({"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}),
        )],
    }
}

pub(crate) fn get_openapi_json() -> Doc {
    Doc {
        summary: "This document",
        body: None,
        query: vec![],
        responses: vec![(
            "200",
            json!({"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}),
        )],
    }
}

pub(crate) fn get_root() -> Doc {
    Doc {
        summary: "The dashboard's page",
        body: None,
        query: vec![],
        responses: vec![("200", page("text/html"))],
    }
}

pub(crate) fn head_root() -> Doc {
    Doc {
        summary: "The dashboard's page, headers only",
        body: None,
        query: vec![],
        responses: vec![("200", answer("the page's headers", None))],
    }
}

pub(crate) fn get_dashboard_file() -> Doc {
    Doc {
        summary: "The dashboard's script, style sheet and icon",
        body: None,
        query: vec![],
        responses: vec![
            ("200", page_file()),
            (
                "304",
                answer("unchanged since the ETag given in If-None-Match", None),
            ),
            ("404", answer("no such file", Some("Error"))),
        ],
    }
}

pub(crate) fn head_dashboard_file() -> Doc {
    Doc {
        summary: "A dashboard file's headers",
        body: None,
        query: vec![],
        responses: vec![
            ("200", answer("the file's headers", None)),
            ("304", answer("unchanged", None)),
            ("404", answer("no such file", None)),
        ],
    }
}

pub(crate) fn get_me() -> Doc {
    Doc {
        summary: "Who the token belongs to",
        body: None,
        query: vec![],
        responses: vec![("200", answer("the caller", Some("Me")))],
    }
}

pub(crate) fn post_events() -> Doc {
    Doc {
        summary: "Accept one event; 202 once committed",
        body: body(reference("NewEvent")),
        query: vec![],
        responses: vec![
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
    }
}

pub(crate) fn post_events_batch() -> Doc {
    Doc {
        summary: "Accept up to 1000 events, all or nothing",
        body: body(
            json!({"type": "object", "properties": {"events": {"type": "array", "items": reference("NewEvent"), "minItems": 1, "maxItems": 1000}}, "required": ["events"]}),
        ),
        query: vec![],
        responses: vec![("202", answer("all stored", Some("AcceptedBatch")))],
    }
}

pub(crate) fn get_events() -> Doc {
    Doc {
        summary: "Events, newest first",
        body: None,
        query: events_query(),
        responses: vec![("200", answer("a page", Some("EventList")))],
    }
}

pub(crate) fn get_events_id() -> Doc {
    Doc {
        summary: "One event with its deliveries; ids are unique per workspace",
        body: None,
        query: vec![query(
            "workspace_id",
            "the event's workspace; the admin names it when several workspaces use the id",
            client_id(),
        )],
        responses: vec![("200", answer("the event", Some("EventWithDeliveries")))],
    }
}

pub(crate) fn get_event_types() -> Doc {
    Doc {
        summary: "The event catalog",
        body: None,
        query: vec![],
        responses: vec![("200", answer("every type", Some("EventTypeList")))],
    }
}

pub(crate) fn post_endpoints() -> Doc {
    Doc {
        summary: "Create an endpoint; the answer holds its secret",
        body: body(reference("NewEndpoint")),
        query: vec![],
        responses: vec![("201", answer("created", Some("EndpointWithSecret")))],
    }
}

pub(crate) fn get_endpoints() -> Doc {
    Doc {
        summary: "Endpoints, newest first",
        body: None,
        query: endpoints_query(),
        responses: vec![("200", answer("a page", Some("EndpointList")))],
    }
}

pub(crate) fn get_endpoints_id() -> Doc {
    Doc {
        summary: "One endpoint (never its secret)",
        body: None,
        query: vec![],
        responses: vec![("200", answer("the endpoint", Some("Endpoint")))],
    }
}

pub(crate) fn patch_endpoints_id() -> Doc {
    Doc {
        summary: "Change an endpoint",
        body: body(reference("EndpointChange")),
        query: vec![],
        responses: vec![("200", answer("changed", Some("Endpoint")))],
    }
}

pub(crate) fn delete_endpoints_id() -> Doc {
    Doc {
        summary: "Delete an endpoint: gone at once; its deliveries are purged in the background",
        body: None,
        query: vec![],
        responses: vec![("204", answer("deleted", None))],
    }
}

pub(crate) fn get_endpoints_id_secret() -> Doc {
    Doc {
        summary: "The endpoint's live secrets",
        body: None,
        query: vec![],
        responses: vec![("200", answer("secrets", Some("EndpointSecrets")))],
    }
}

pub(crate) fn post_endpoints_id_rotate_secret() -> Doc {
    Doc {
        summary: "A new secret; the old one stays live for the overlap",
        body: optional_body(
            json!({"type": "object", "properties": {"overlap": with_description(duration(), "e.g. 24h (default), 0s; at most 30d")}, "additionalProperties": false}),
        ),
        query: vec![],
        responses: vec![("200", answer("rotated", Some("EndpointWithSecret")))],
    }
}

pub(crate) fn post_endpoints_id_test() -> Doc {
    Doc {
        summary: "Send a sample event to this endpoint only",
        body: optional_body(
            json!({"type": "object", "properties": {"type": {"type": "string", "enum": catalog::EVENT_TYPES.iter().map(|t| t.name).collect::<Vec<_>>()}}, "additionalProperties": false}),
        ),
        query: vec![],
        responses: vec![("202", answer("queued", Some("AcceptedTestEvent")))],
    }
}

pub(crate) fn post_endpoints_id_recover() -> Doc {
    Doc {
        summary: "Failed deliveries in a window back to pending",
        body: body(
            json!({"type": "object", "properties": {"since": time(), "until": time(), "after": nullable(json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}))}, "required": ["since"], "additionalProperties": false}),
        ),
        query: vec![],
        responses: vec![("202", answer("requeued", Some("Recovered")))],
    }
}

pub(crate) fn get_endpoints_id_stats() -> Doc {
    Doc {
        summary: "Deliveries per hour by outcome, success rate, last success",
        body: None,
        query: vec![query(
            "hours",
            "window in hours (default 24)",
            json!({"type": "integer", "minimum": 1, "maximum": STATS_HOURS_MAX}),
        )],
        responses: vec![("200", answer("stats", Some("EndpointStats")))],
    }
}

pub(crate) fn get_deliveries() -> Doc {
    Doc {
        summary: "Deliveries, newest first",
        body: None,
        query: deliveries_query(),
        responses: vec![("200", answer("a page", Some("DeliveryList")))],
    }
}

pub(crate) fn get_deliveries_id() -> Doc {
    Doc {
        summary: "One delivery with its attempts",
        body: None,
        query: vec![],
        responses: vec![("200", answer("the delivery", Some("DeliveryWithAttempts")))],
    }
}

pub(crate) fn get_deliveries_id_attempts_number_request() -> Doc {
    Doc {
        summary: "What one attempt sent: headers rebuilt (no secret; extra header values masked) and the body bytes",
        body: None,
        query: vec![],
        responses: vec![("200", answer("the request", Some("AttemptRequest")))],
    }
}

pub(crate) fn post_deliveries_id_retry() -> Doc {
    Doc {
        summary: "Back to pending now; the attempt count goes on",
        body: None,
        query: vec![],
        responses: vec![("202", answer("queued", Some("Delivery")))],
    }
}

pub(crate) fn post_workspaces_workspace_tokens() -> Doc {
    Doc {
        summary: "A workspace token (admin only); shown only here",
        body: optional_body(
            json!({"type": "object", "properties": {"description": {"type": "string", "maxLength": 1000}}, "additionalProperties": false}),
        ),
        query: vec![],
        responses: vec![("201", answer("created", Some("TokenWithSecret")))],
    }
}

pub(crate) fn get_workspaces_workspace_tokens() -> Doc {
    Doc {
        summary: "A workspace's tokens (admin only), never the secret",
        body: None,
        query: paging(),
        responses: vec![("200", answer("a page", Some("TokenList")))],
    }
}

pub(crate) fn delete_workspaces_workspace_tokens_id() -> Doc {
    Doc {
        summary: "Revoke a token (admin only)",
        body: None,
        query: vec![],
        responses: vec![("204", answer("revoked", None))],
    }
}

pub(crate) fn post_workspaces_workspace_portal_links() -> Doc {
    Doc {
        summary: "A single-use, short-lived link that opens the dashboard for the workspace (admin only)",
        body: optional_body(
            json!({"type": "object", "properties": {"expires_in": with_description(duration(), "default 15m, at most 24h")}, "additionalProperties": false}),
        ),
        query: vec![],
        responses: vec![("201", answer("created", Some("PortalLink")))],
    }
}

pub(crate) fn post_portal_session() -> Doc {
    Doc {
        summary: "Use up a portal link's code (no token needed): a workspace token for 12 hours",
        body: body(
            json!({"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"], "additionalProperties": false}),
        ),
        query: vec![],
        responses: vec![
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
    }
}
