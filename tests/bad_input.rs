//! Bad input gets the right 4xx and a JSON error naming the problem, stores nothing, and the
//! service keeps serving.

mod util;

use serde_json::{Value, json};
use util::{ADMIN_TOKEN, Receiver, Service, local_flags};

/// method, path, token, body, expected status, error code, field.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    String,
    u16,
    &'a str,
    Option<&'a str>,
);

#[test]
fn bad_requests_get_a_clear_error_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start(
        dir.path(),
        &[&local_flags("1s")[..], &["--max-event-bytes", "2048"]].concat(),
    );
    let (endpoint_id, _) = service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let big_name = "x".repeat(3000);
    let event = |data: Value| json!({"type": "time_entry.created", "data": data}).to_string();
    let good = clockeye_webhooks::catalog::sample("time_entry.created").unwrap();
    let with = |key: &str, value: Value| {
        let mut data = good.clone();
        data[key] = value;
        event(data)
    };
    let without = |key: &str| {
        let mut data = good.clone();
        data.as_object_mut().unwrap().remove(key);
        event(data)
    };
    let token = Some(ADMIN_TOKEN);
    let endpoint_path = format!("/v1/endpoints/{endpoint_id}");
    let cases: Vec<Case> = vec![
        ("POST", "/v1/events", token, "{\"type\": ".into(), 400, "invalid_json", None),
        ("POST", "/v1/events", token, "[1,2]".into(), 422, "invalid_field", None),
        ("POST", "/v1/events", token, json!({"type": "time_entry.exploded", "data": {}}).to_string(), 422, "unknown_event_type", Some("type")),
        ("POST", "/v1/events", token, json!({"type": 7, "data": {}}).to_string(), 422, "invalid_field", Some("type")),
        ("POST", "/v1/events", token, json!({"data": {}}).to_string(), 422, "invalid_field", Some("type")),
        ("POST", "/v1/events", token, without("project_id"), 422, "invalid_field", Some("data.project_id")),
        ("POST", "/v1/events", token, with("duration", json!("an hour")), 422, "invalid_field", Some("data.duration")),
        ("POST", "/v1/events", token, with("start_time", json!("2024-13-45T99:00:00Z")), 422, "invalid_field", Some("data.start_time")),
        ("POST", "/v1/events", token, with("start_time", json!("15/01/2024")), 422, "invalid_field", Some("data.start_time")),
        ("POST", "/v1/events", token, json!({"type": "time_entry.created", "data": good, "colour": "red"}).to_string(), 422, "invalid_field", Some("colour")),
        ("POST", "/v1/events", token, with("description", json!(big_name)), 413, "payload_too_large", None),
        ("POST", "/v1/events", token, "\u{feff}not json".into(), 400, "invalid_json", None),
        ("POST", "/v1/events", None, event(good.clone()), 401, "unauthorized", None),
        ("POST", "/v1/events", Some("wrong-token-wrong-token"), event(good.clone()), 401, "unauthorized", None),
        ("GET", "/v1/nothing-here", token, String::new(), 404, "not_found", None),
        // `/` is the dashboard (tests/dashboard.rs); other paths outside /v1 are not found.
        ("GET", "/index.php", token, String::new(), 404, "not_found", None),
        ("GET", "/dashboard/secrets.txt", token, String::new(), 404, "not_found", None),
        ("PUT", "/v1/events", token, event(good.clone()), 405, "method_not_allowed", None),
        ("DELETE", "/v1/deliveries", token, String::new(), 405, "method_not_allowed", None),
        ("GET", "/v1/events/evt_missing", token, String::new(), 404, "not_found", None),
        ("GET", "/v1/events?limit=0", token, String::new(), 400, "invalid_query", Some("limit")),
        ("GET", "/v1/events?limit=501", token, String::new(), 400, "invalid_query", Some("limit")),
        ("GET", "/v1/events?after=abc", token, String::new(), 400, "invalid_query", Some("after")),
        ("GET", "/v1/events?since=yesterday", token, String::new(), 400, "invalid_query", Some("since")),
        ("GET", "/v1/deliveries?status=lost", token, String::new(), 400, "invalid_query", Some("status")),
        ("POST", "/v1/events/batch", token, json!({"events": []}).to_string(), 422, "invalid_field", Some("events")),
        ("POST", "/v1/events/batch", token, json!({"events": (0..1001).map(|_| json!({})).collect::<Vec<_>>()}).to_string(), 413, "batch_too_large", Some("events")),
        ("POST", "/v1/endpoints", token, json!({"events": ["*"]}).to_string(), 422, "invalid_field", Some("url")),
        ("POST", "/v1/endpoints", token, json!({"url": format!("{}/x", receiver.url)}).to_string(), 422, "invalid_field", Some("events")),
        ("POST", "/v1/endpoints", token, json!({"url": format!("{}/x", receiver.url), "events": []}).to_string(), 422, "invalid_field", Some("events")),
        ("POST", "/v1/endpoints", token, json!({"url": format!("{}/x", receiver.url), "events": ["time_entry.exploded"]}).to_string(), 422, "unknown_event_type", Some("events[0]")),
        ("POST", "/v1/endpoints", token, json!({"url": "ftp://example.com/", "events": ["*"]}).to_string(), 422, "invalid_url", Some("url")),
        ("POST", "/v1/endpoints", token, json!({"url": "https://u:p@example.com/", "events": ["*"]}).to_string(), 422, "invalid_url", Some("url")),
        ("POST", "/v1/endpoints", token, json!({"url": format!("{}/x", receiver.url), "events": ["*"], "headers": {"X-ClockEye-Signature": "forged"}}).to_string(), 422, "invalid_field", Some("headers.X-ClockEye-Signature")),
        ("POST", "/v1/endpoints", token, json!({"url": format!("{}/x", receiver.url), "events": ["*"], "headers": {"X-Ok": "a\r\nInjected: 1"}}).to_string(), 422, "invalid_field", Some("headers.X-Ok")),
        ("POST", "/v1/endpoints", token, json!({"url": format!("{}/x", receiver.url), "events": ["*"], "enabled": false}).to_string(), 422, "invalid_field", Some("enabled")),
        ("PATCH", &endpoint_path, token, json!({"enabled": "yes"}).to_string(), 422, "invalid_field", Some("enabled")),
        ("PATCH", &endpoint_path, token, json!({"workspace_id": "other"}).to_string(), 422, "invalid_field", Some("workspace_id")),
        ("PATCH", "/v1/endpoints/ep_missing", token, json!({"enabled": true}).to_string(), 404, "not_found", None),
        ("POST", "/v1/deliveries/dlv_missing/retry", token, String::new(), 404, "not_found", None),
    ];

    for (method, path, token, body, status, code, field) in cases {
        let body = if body.is_empty() {
            None
        } else {
            Some(body.as_bytes())
        };
        let (got_status, answer) = service.request(method, path, token, body);
        assert_eq!(got_status, status, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{method} {path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.len() > 10,
            "{method} {path}: the message explains: {answer}"
        );
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{method} {path}: {answer}");
        }
    }

    // Nothing was stored, nothing was sent, and the service still serves.
    let (status, events) = service.get("/v1/events");
    assert_eq!(events["data"], json!([]), "{status} {events}");
    let (_, endpoints) = service.get("/v1/endpoints");
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 1);
    assert!(receiver.received().is_empty());
    let (status, health) = service.request("GET", "/healthz", None, None);
    assert_eq!(status, 200, "{health}");
    service.send_sample("time_entry.created", json!({}));
    receiver.wait_for(1, std::time::Duration::from_secs(10));
}

#[test]
fn an_oversized_body_is_refused_before_it_is_read() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--max-event-bytes", "1024"]);
    // A client announces 10 GB and sends none of it: the answer comes from the headers alone.
    let mut socket =
        std::net::TcpStream::connect(service.base.trim_start_matches("http://")).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 512];
    let read = socket.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    drop(socket);
    let (status, _) = service.request("GET", "/healthz", None, None);
    assert_eq!(status, 200);
}
