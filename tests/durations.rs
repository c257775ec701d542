//! Durations have one maximum, `3650d` (SPEC "Running"): a longer flag is refused with one line
//! and exit 2, a longer API field with an error naming the field, and the maximum itself
//! works end to end without any time arithmetic wrapping (no early prune, no early disable,
//! no worker panic on a huge `Retry-After`).

mod util;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use util::{BIN, Receiver, Reply, Service, eventually, loopback_flags};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_flag_longer_than_the_maximum_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("webhooks.db");
    for (flag, value) in [
        ("--retention", "200000000000d"),
        ("--retention", "3651d"),
        ("--disable-after", "200000000000d"),
        ("--disable-after", "87601h"),
        ("--retry-schedule", "1s,60000000000d"),
        ("--retry-schedule", "99999999999999999999999s"),
    ] {
        let output = Command::new(BIN)
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                util::ADMIN_TOKEN,
            ])
            .arg("--db")
            .arg(&db)
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{flag} {value}: {stderr}"
        );
        assert!(
            stderr.contains(flag) && stderr.contains("maximum, 3650d"),
            "{flag} {value}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{flag} {value}: nothing listens");
    }
}

#[test]
fn the_maximum_works_without_overflow() {
    let dir = tempfile::tempdir().unwrap();
    // A receiver that asks for the longest wait HTTP lets it say.
    let refusing = Receiver::start(|_| Reply {
        headers: vec![("Retry-After".into(), u32::MAX.to_string())],
        ..Reply::status(429)
    });
    let accepting = Receiver::ok();
    let flags = [
        &loopback_flags("3650d")[..],
        &[
            "--retention",
            "3650d",
            "--disable-after",
            "3650d",
            // One worker: if the 429 killed it, nothing else would be sent.
            "--workers",
            "1",
        ],
    ]
    .concat();
    let service = Service::start(dir.path(), &flags);
    let (refusing_id, _) = service.create_endpoint(
        &format!("{}/hook", refusing.url),
        &["*"],
        Some("ws_refusing"),
    );
    service.create_endpoint(
        &format!("{}/hook", accepting.url),
        &["*"],
        Some("ws_accepting"),
    );

    let before_ms = clockeye_webhooks::test_support::now_ms();
    let refused = service.send_sample("time_entry.created", json!({"workspace_id": "ws_refusing"}));
    let delivery = eventually("the 429 to be recorded", WAIT, || {
        let delivery_id = refused["deliveries"][0]["id"].as_str().unwrap();
        let (_, delivery) = service.get(&format!("/v1/deliveries/{delivery_id}"));
        if delivery["attempts_made"] == 1 && delivery["status"] == "pending" {
            Ok(delivery)
        } else {
            Err(delivery.to_string())
        }
    });
    // Retry-After is honoured within [3650d, 7300d]: the next attempt is ten years or more away.
    let next_ms = clockeye_webhooks::test_support::parse_rfc3339(
        delivery["next_attempt_at"].as_str().unwrap(),
    )
    .unwrap();
    let ten_years_ms = 3650 * 86_400_000;
    assert!(
        next_ms >= before_ms + ten_years_ms && next_ms <= before_ms + 2 * ten_years_ms + 60_000,
        "{delivery}"
    );
    // The worker lives on: another workspace's event is delivered.
    service.send_sample(
        "time_entry.created",
        json!({"workspace_id": "ws_accepting"}),
    );
    accepting.wait_for(1, WAIT);
    // One failure is far from `--disable-after 3650d`, and retention keeps a new event.
    let (_, endpoint) = service.get(&format!("/v1/endpoints/{refusing_id}"));
    assert_eq!(endpoint["enabled"], true, "{endpoint}");
    let (status, event) = service.get(&format!("/v1/events/{}", refused["id"].as_str().unwrap()));
    assert_eq!(status, 200, "{event}");
    assert!(
        !service.stderr().contains("panicked"),
        "{}",
        service.stderr()
    );
}

#[test]
fn an_api_duration_longer_than_the_maximum_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &loopback_flags("1s"));
    let (endpoint, secret) = service.create_endpoint("http://127.0.0.1:9/hook", &["*"], None);
    for overlap in ["213503982335d", "3651d", "99999999999999999999d"] {
        let (status, error) = service.post(
            &format!("/v1/endpoints/{endpoint}/rotate-secret"),
            &json!({ "overlap": overlap }),
        );
        assert_eq!(status, 422, "{overlap}: {error}");
        assert_eq!(error["error"]["field"], "overlap", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("maximum, 3650d"),
            "{error}"
        );
    }
    // Nothing rotated.
    let (_, secrets) = service.get(&format!("/v1/endpoints/{endpoint}/secret"));
    assert_eq!(secrets["secret"], secret.as_str());
    let (status, error) = service.post(
        "/v1/workspaces/ws_a/portal-links",
        &json!({ "expires_in": "213503982335d" }),
    );
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "expires_in", "{error}");
}
