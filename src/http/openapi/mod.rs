//! The OpenAPI 3.1 document (`GET /openapi.json`), made from the route table it is given:
//! each route's method, path, auth rule and `Doc` (`operations.rs`), with `components.rs`'s
//! schemas. It imports no router, so nothing imports back.

mod build;
pub(crate) mod components;
pub(crate) mod operations;

use serde_json::{Map, Value, json};

use crate::http::route::Route;
use build::{client_id, common_errors};
use components::schemas;

/// The document as served.
/// The document of `routes`, in their order.
pub(crate) fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let op = (route.doc)();
        let mut operation = Map::new();
        operation.insert("summary".into(), Value::from(op.summary));
        let operation_id = format!(
            "{}{}",
            route.method.to_lowercase(),
            route
                .path
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
        let mut parameters: Vec<Value> = route
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
        let public = !route.handler.needs_token();
        if public {
            operation.insert("security".into(), json!([]));
        } else {
            common_errors(&mut responses);
        }
        operation.insert("responses".into(), Value::Object(responses));
        paths
            .entry(route.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item")
            .insert(route.method.to_lowercase(), Value::Object(operation));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::routes::ROUTES;

    #[test]
    fn operation_ids_are_unique() {
        let document = document(ROUTES);
        let mut ids = BTreeSet::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
            }
        }
        assert_eq!(ids.len(), ROUTES.len());
    }

    #[test]
    fn every_reference_resolves() {
        let document = document(ROUTES);
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "no schema {name}");
        }
    }
}
