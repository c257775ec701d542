//! The customer-facing reference's own verification code, run in node 20 as a receiver, must
//! accept a delivery of every event type in the catalog.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use util::{Service, eventually, local_flags};

/// The seed's receiver in node, reading its secret from `secret_file` on every request.
fn seed_receiver(secret_file: &std::path::Path) -> std::process::Child {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/receivers/seed-receiver.mjs"
    );
    Command::new("node")
        .arg(script)
        .arg(secret_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node 20 is installed (.ci/run installs it)")
}

#[test]
fn the_seeds_verifier_accepts_every_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "not yet").unwrap();
    let mut node = seed_receiver(&secret_file);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = node.stdout.take().unwrap();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.lock().unwrap().push(line);
        }
    });
    let port = eventually("node to listen", Duration::from_secs(20), || {
        let lines = lines.lock().unwrap();
        lines
            .first()
            .and_then(|l| l.strip_prefix("listening "))
            .map(str::to_string)
            .ok_or_else(|| format!("{lines:?}"))
    });

    let service = Service::start(dir.path(), &local_flags("100ms"));
    let (_, secret) = service.create_endpoint(
        &format!("http://127.0.0.1:{port}/webhooks/clockeye"),
        &["*"],
        None,
    );
    std::fs::write(&secret_file, &secret).unwrap();

    let mut deliveries = Vec::new();
    for event_type in clockeye_webhooks::catalog::EVENT_TYPES {
        let accepted = service.send_sample(event_type.name, json!({}));
        deliveries.push((
            event_type.name,
            accepted["deliveries"][0]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    // Non-ASCII data: the signature is over UTF-8 bytes on both sides.
    let (status, accepted) = service.post(
        "/v1/events",
        &json!({"type": "project.created", "data": {"id": "prj_ü", "name": "Café ☕ — Zürich", "created_by": "usr_1"}}),
    );
    assert_eq!(status, 202, "{accepted}");
    deliveries.push((
        "project.created (non-ASCII)",
        accepted["deliveries"][0]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    ));

    for (name, delivery_id) in &deliveries {
        let delivery =
            service.wait_for_delivery_status(delivery_id, "succeeded", Duration::from_secs(20));
        assert_eq!(
            delivery["attempts_made"], 1,
            "{name}: the first attempt verified: {delivery}"
        );
    }
    let lines = lines.lock().unwrap().clone();
    let records: Vec<Value> = lines
        .iter()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), deliveries.len(), "{lines:?}");
    assert!(
        records
            .iter()
            .all(|r| r["ok"] == true && r["standard"] == true),
        "{lines:?}"
    );
    let mut types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), 9, "all nine types were verified: {types:?}");
    let _ = node.kill();
    let _ = node.wait();
}

#[test]
fn the_seeds_verifier_refuses_a_wrong_secret() {
    // The same receiver with another secret answers 401: the check above can fail.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(
        &secret_file,
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    .unwrap();
    let mut node = seed_receiver(&secret_file);
    let mut stdout = BufReader::new(node.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port = first.trim().strip_prefix("listening ").unwrap().to_string();
    let service = Service::start(dir.path(), &local_flags(""));
    service.create_endpoint(
        &format!("http://127.0.0.1:{port}/webhooks/clockeye"),
        &["*"],
        None,
    );
    let accepted = service.send_sample("time_entry.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", Duration::from_secs(20));
    assert_eq!(delivery["attempts"][0]["status_code"], 401, "{delivery}");
    let _ = node.kill();
    let _ = node.wait();
}
