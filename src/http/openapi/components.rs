//! `components.schemas`: every object the API answers or takes.

use serde_json::{Map, Value, json};

use crate::http::endpoint_actions::RECOVER_DELIVERIES_MAX;

use super::build::*;
use crate::catalog;
use crate::model::{DELIVERY_STATUSES, ErrorClass};

pub(crate) fn schemas() -> Value {
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
        "AttemptRequest": object(json!({
            "delivery_id": {"type": "string"},
            "number": {"type": "integer", "minimum": 1},
            "method": {"type": "string", "const": "POST"},
            "url": {"type": "string"},
            "headers": {"type": "array", "items": object(json!({"name": {"type": "string"}, "value": {"type": "string"}}))},
            "body": {"type": "string", "description": "the event's body, the exact bytes of every attempt"},
            "body_bytes": {"type": "integer", "minimum": 0},
            "signatures": {"type": "string", "description": "how the signatures shown were computed"},
        })),
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
