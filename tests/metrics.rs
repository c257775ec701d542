//! `GET /metrics` parses as Prometheus text and counts what happened.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use util::{Receiver, Reply, Service, loopback_flags};

/// A small parser for the text format: every sample's family has a TYPE line, every value is a
/// number; returns `name{labels}` → value.
fn parse(page: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in page.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample without a TYPE: {line}");
        if let Some(labels) = key.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples.insert(
            key.to_string(),
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        );
    }
    samples
}

#[test]
fn metrics_count_events_attempts_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let receiver =
        Receiver::start(|request| Reply::status(if request.path == "/broken" { 500 } else { 200 }));
    let service = Service::start(dir.path(), &loopback_flags(""));
    service.create_endpoint(&format!("{}/ok", receiver.url), &["*"], Some("good"));
    service.create_endpoint(&format!("{}/broken", receiver.url), &["*"], Some("bad"));
    let mut accepted = Vec::new();
    for (event_type, workspace) in [
        ("project.created", "good"),
        ("project.created", "good"),
        ("user.invited", "good"),
        ("user.invited", "bad"),
    ] {
        accepted.push(service.send_sample(event_type, json!({"workspace_id": workspace})));
    }
    for (index, answer) in accepted.iter().enumerate() {
        service.first_delivery(
            answer,
            if index == 3 { "failed" } else { "succeeded" },
            Duration::from_secs(10),
        );
    }

    let page = util::client()
        .get(&format!("{}/metrics", service.base))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let samples = parse(&page);
    assert_eq!(
        samples["clockeye_events_ingested_total{type=\"project.created\"}"], 2.0,
        "{page}"
    );
    assert_eq!(
        samples["clockeye_events_ingested_total{type=\"user.invited\"}"], 2.0,
        "{page}"
    );
    assert_eq!(
        samples["clockeye_events_ingested_total{type=\"timesheet.approved\"}"], 0.0,
        "{page}"
    );
    assert_eq!(
        samples["clockeye_attempts_total{outcome=\"succeeded\"}"], 3.0,
        "{page}"
    );
    assert_eq!(
        samples["clockeye_attempts_total{outcome=\"http_status\"}"], 1.0,
        "{page}"
    );
    assert_eq!(
        samples["clockeye_attempt_duration_seconds_count"], 4.0,
        "{page}"
    );
    assert_eq!(
        samples["clockeye_attempt_duration_seconds_bucket{le=\"+Inf\"}"], 4.0,
        "{page}"
    );
    assert_eq!(samples["clockeye_deliveries_pending"], 0.0, "{page}");
    assert_eq!(samples["clockeye_endpoints_disabled"], 0.0, "{page}");
    assert!(
        !page.contains("whsec_") && !page.contains("usr_"),
        "no secrets or payloads in metrics"
    );
}
