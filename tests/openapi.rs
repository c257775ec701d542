//! `GET /openapi.json` against the real binary: every operation it documents is called, answers
//! a status the document lists, and a body that validates against the documented schema (a
//! small JSON Schema checker for the keywords the document uses). CI also runs schemathesis
//! against the live binary (`tests/schemathesis.rs`).

mod util;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use util::{ADMIN_TOKEN, Receiver, Service, loopback_flags};

/// Checks `value` against `schema`; `Err` names the place and the broken rule.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return check(
            document,
            &document["components"]["schemas"][name],
            value,
            at,
        );
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|option| check(document, option, value, at).is_ok())
            .count();
        return (matching == 1)
            .then_some(())
            .ok_or(format!("{at}: {matching} of oneOf match {value}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not {constant}"));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} not in {options:?}"));
    }
    if let Some(kind) = schema["type"].as_str() {
        let fits = match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            other => return Err(format!("{at}: unknown type {other}")),
        };
        if !fits {
            return Err(format!("{at}: {value} is not {kind}"));
        }
    }
    if let (Some(minimum), Some(number)) = (schema["minimum"].as_f64(), value.as_f64())
        && number < minimum
    {
        return Err(format!("{at}: {number} < {minimum}"));
    }
    if let (Some(maximum), Some(number)) = (schema["maximum"].as_f64(), value.as_f64())
        && number > maximum
    {
        return Err(format!("{at}: {number} > {maximum}"));
    }
    if let (Some(pattern), Some(text)) = (schema["pattern"].as_str(), value.as_str()) {
        let prefix = pattern.trim_start_matches('^');
        if !text.starts_with(prefix) {
            return Err(format!("{at}: {text} does not match {pattern}"));
        }
    }
    if let (Some("date-time"), Some(text)) = (schema["format"].as_str(), value.as_str())
        && clockeye_webhooks::test_support::parse_rfc3339(text).is_none()
    {
        return Err(format!("{at}: {text} is not a date-time"));
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(name.as_str().unwrap()) {
                return Err(format!("{at}: missing {name}"));
            }
        }
        for (key, item) in object {
            let place = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => check(document, property, item, &place)?,
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{place}: not documented")),
                    Value::Object(_) => {
                        check(document, &schema["additionalProperties"], item, &place)?
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check(document, items, item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

struct Checker<'a> {
    service: &'a Service,
    document: Value,
    called: BTreeSet<(String, String)>,
}

impl Checker<'_> {
    /// Calls `method path` (the documented `template` with real ids) and checks the answer
    /// against the document; returns the body.
    fn call(&mut self, method: &str, template: &str, path: &str, body: Option<Value>) -> Value {
        let operation = &self.document["paths"][template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let body = body.map(|b| b.to_string());
        let (status, value) = self.service.request(
            method,
            path,
            Some(ADMIN_TOKEN),
            body.as_deref().map(str::as_bytes),
        );
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which the document does not list: {value}"
        );
        assert!(status < 500, "{method} {path}: {status} {value}");
        if let Some(schema) = response["content"]["application/json"].get("schema") {
            let document = self.document.clone();
            if let Err(problem) = check(&document, schema, &value, "body") {
                panic!(
                    "{method} {path} ({status}) does not match the document: {problem}\n{value}"
                );
            }
        }
        self.called
            .insert((method.to_string(), template.to_string()));
        value
    }
}

#[test]
fn every_documented_route_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start(dir.path(), &loopback_flags("100ms"));
    let (status, document) = service.request("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let mut api = Checker {
        service: &service,
        document: document.clone(),
        called: BTreeSet::new(),
    };
    let sample = clockeye_webhooks::catalog::sample("project.created").unwrap();

    api.call("GET", "/healthz", "/healthz", None);
    api.call("GET", "/openapi.json", "/openapi.json", None);
    api.call("GET", "/v1/me", "/v1/me", None);
    api.call("GET", "/v1/event-types", "/v1/event-types", None);
    let endpoint = api.call(
        "POST",
        "/v1/endpoints",
        "/v1/endpoints",
        Some(json!({"url": receiver.url, "events": ["*"], "headers": {"X-Key": "k"}})),
    );
    let endpoint = endpoint["id"].as_str().unwrap().to_string();
    let at = |suffix: &str| format!("/v1/endpoints/{endpoint}{suffix}");
    let event = api.call(
        "POST",
        "/v1/events",
        "/v1/events",
        Some(json!({"type": "project.created", "data": sample})),
    );
    let event_id = event["id"].as_str().unwrap().to_string();
    let delivery_id = event["deliveries"][0]["id"].as_str().unwrap().to_string();
    // A known id again: 200 with the original.
    api.call(
        "POST",
        "/v1/events",
        "/v1/events",
        Some(json!({"type": "project.created", "data": sample, "id": event_id})),
    );
    api.call(
        "POST",
        "/v1/events/batch",
        "/v1/events/batch",
        Some(json!({"events": [{"type": "project.created", "data": sample}]})),
    );
    // A bad event: 422 with the documented error shape.
    api.call(
        "POST",
        "/v1/events",
        "/v1/events",
        Some(json!({"type": "project.created", "data": {}})),
    );
    service.wait_for_delivery_status(&delivery_id, "succeeded", Duration::from_secs(20));
    api.call("GET", "/v1/events", "/v1/events?limit=1", None);
    api.call(
        "GET",
        "/v1/events/{id}",
        &format!("/v1/events/{event_id}"),
        None,
    );
    api.call("GET", "/v1/endpoints", "/v1/endpoints", None);
    api.call("GET", "/v1/endpoints/{id}", &at(""), None);
    api.call(
        "PATCH",
        "/v1/endpoints/{id}",
        &at(""),
        Some(json!({"description": "billing"})),
    );
    api.call("GET", "/v1/endpoints/{id}/secret", &at("/secret"), None);
    api.call(
        "POST",
        "/v1/endpoints/{id}/rotate-secret",
        &at("/rotate-secret"),
        Some(json!({"overlap": "1h"})),
    );
    api.call("GET", "/v1/endpoints/{id}/secret", &at("/secret"), None);
    api.call(
        "POST",
        "/v1/endpoints/{id}/test",
        &at("/test"),
        Some(json!({})),
    );
    api.call(
        "POST",
        "/v1/endpoints/{id}/recover",
        &at("/recover"),
        Some(json!({"since": "2024-01-01T00:00:00Z"})),
    );
    api.call("GET", "/v1/endpoints/{id}/stats", &at("/stats"), None);
    api.call("GET", "/v1/deliveries", "/v1/deliveries", None);
    api.call(
        "GET",
        "/v1/deliveries/{id}",
        &format!("/v1/deliveries/{delivery_id}"),
        None,
    );
    api.call(
        "GET",
        "/v1/deliveries/{id}/attempts/{number}/request",
        &format!("/v1/deliveries/{delivery_id}/attempts/1/request"),
        None,
    );
    api.call(
        "POST",
        "/v1/deliveries/{id}/retry",
        &format!("/v1/deliveries/{delivery_id}/retry"),
        None,
    );
    let token = api.call(
        "POST",
        "/v1/workspaces/{workspace}/tokens",
        "/v1/workspaces/acme/tokens",
        Some(json!({"description": "portal"})),
    );
    api.call(
        "GET",
        "/v1/workspaces/{workspace}/tokens",
        "/v1/workspaces/acme/tokens",
        None,
    );
    api.call(
        "DELETE",
        "/v1/workspaces/{workspace}/tokens/{id}",
        &format!(
            "/v1/workspaces/acme/tokens/{}",
            token["id"].as_str().unwrap()
        ),
        None,
    );
    let link = api.call(
        "POST",
        "/v1/workspaces/{workspace}/portal-links",
        "/v1/workspaces/acme/portal-links",
        Some(json!({"expires_in": "5m"})),
    );
    for _ in 0..2 {
        // 201 once, then 401: a code works once.
        api.call(
            "POST",
            "/v1/portal/session",
            "/v1/portal/session",
            Some(json!({"code": link["code"]})),
        );
    }
    api.call("GET", "/v1/endpoints/{id}", "/v1/endpoints/ep_none", None);
    api.call("DELETE", "/v1/endpoints/{id}", &at(""), None);

    // /metrics is text; its operation is checked by status only.
    let metrics = util::client()
        .get(format!("{}/metrics", service.base))
        .call()
        .unwrap();
    assert_eq!(metrics.status(), 200);
    api.called.insert(("GET".into(), "/metrics".into()));
    // So are the dashboard's files: status and media type as documented.
    for (method, template, path, status, media_type) in [
        ("GET", "/", "/", 200, "text/html"),
        ("HEAD", "/", "/", 200, "text/html"),
        (
            "GET",
            "/dashboard/{file}",
            "/dashboard/app.js",
            200,
            "text/javascript",
        ),
        (
            "HEAD",
            "/dashboard/{file}",
            "/dashboard/style.css",
            200,
            "text/css",
        ),
        (
            "GET",
            "/dashboard/{file}",
            "/dashboard/none.js",
            404,
            "application/json",
        ),
    ] {
        let operation = &document["paths"][template][method.to_lowercase()];
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template} {status} undocumented"
        );
        if method == "GET" {
            assert!(
                response["content"].get(media_type).is_some(),
                "{method} {template}: {media_type} undocumented"
            );
        }
        let answer = util::client()
            .run(
                ureq::http::Request::builder()
                    .method(method)
                    .uri(format!("{}{path}", service.base))
                    .body(())
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(answer.status().as_u16(), status, "{method} {path}");
        let content_type = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with(media_type),
            "{method} {path}: {content_type}"
        );
        api.called.insert((method.into(), template.into()));
    }

    let documented = operations_of(&document);
    assert_eq!(
        api.called, documented,
        "every documented operation is called"
    );
}

#[test]
fn the_checker_catches_a_body_that_breaks_the_document() {
    let document = json!({"components": {"schemas": {"Thing": {
        "type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"],
        "additionalProperties": false}}}});
    let schema = json!({"$ref": "#/components/schemas/Thing"});
    assert!(check(&document, &schema, &json!({"id": "a"}), "body").is_ok());
    assert!(check(&document, &schema, &json!({"id": 1}), "body").is_err());
    assert!(check(&document, &schema, &json!({}), "body").is_err());
    assert!(check(&document, &schema, &json!({"id": "a", "extra": 1}), "body").is_err());
}

/// Every (METHOD, path) a document describes.
fn operations_of(document: &Value) -> BTreeSet<(String, String)> {
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
