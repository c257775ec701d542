//! Endpoint URLs: https only unless --allow-http; non-public addresses refused unless allowed,
//! at creation for literal addresses and again on every connection for the address dialled.
//! Every address here is loopback or refused before any packet is sent.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::{Receiver, Service, local_flags};

// The check on every connection (against the address actually dialled) is shown by
// `a_policy_tightened_after_creation_blocks_the_next_connection`: the endpoint was allowed
// when created, and its next attempt is refused with `blocked_address`.

fn create(service: &Service, url: &str) -> (u16, Value) {
    service.post("/v1/endpoints", &json!({"url": url, "events": ["*"]}))
}

#[test]
fn http_urls_need_allow_http() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--allow-private-networks"]);
    let (status, answer) = create(&service, "http://127.0.0.1:9/hook");
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "url");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-http"),
        "{answer}"
    );
    let (status, answer) = create(&service, "https://127.0.0.1:9/hook");
    assert_eq!(status, 201, "https is fine: {answer}");
}

#[test]
fn literal_non_public_addresses_are_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--allow-http"]);
    for url in [
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.64.0.1/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://0.0.0.0/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
    ] {
        let (status, answer) = create(&service, url);
        assert_eq!(status, 422, "{url}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_url", "{url}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not public"),
            "{url}: {answer}"
        );
    }
    let (_, endpoints) = service.get("/v1/endpoints");
    assert_eq!(endpoints["data"], json!([]));
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--allow-http"]);
    let (status, answer) = create(&service, "http://localhost:8080/hook");
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("localhost resolves to"),
        "{answer}"
    );
    let (status, answer) = create(&service, "http://[2002:7f00:1::]/");
    assert_eq!(status, 422, "6to4 carrying 127.0.0.1: {answer}");
}

#[test]
fn allow_network_opens_one_range_for_names_too() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let port = receiver.url.rsplit(':').next().unwrap().to_string();
    let service = Service::start(dir.path(), &local_flags(""));
    let (status, endpoint) = create(&service, &format!("http://localhost:{port}/hook"));
    assert_eq!(status, 201, "{endpoint}");
    let (status, answer) = create(&service, "http://10.0.0.1/");
    assert_eq!(status, 422, "other private ranges stay closed: {answer}");
    let accepted = service.send_sample("project.created", json!({}));
    service.first_delivery(&accepted, "succeeded", Duration::from_secs(10));
    assert_eq!(receiver.received().len(), 1);
}

#[test]
fn a_policy_tightened_after_creation_blocks_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let mut service = Service::start(dir.path(), &local_flags(""));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    service.terminate(Duration::from_secs(10));

    let service = Service::start(dir.path(), &["--allow-http", "--retry-schedule", ""]);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", Duration::from_secs(10));
    assert_eq!(
        delivery["attempts"][0]["error_class"], "blocked_address",
        "{delivery}"
    );
    assert!(receiver.received().is_empty());
}
