//! `clockeye-webhooks backup` while the service takes events: the copy is consistent, and a
//! service started on it resumes every pending delivery.

mod util;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use util::{BIN, Receiver, Service, eventually, loopback_flags};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_backup_taken_under_load_resumes_every_pending_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let mut service = Service::start(dir.path(), &loopback_flags("100ms"));
    let (endpoint, _) = service.create_endpoint(&receiver.url, &["*"], None);
    // Disabled: every delivery waits as pending, as for an endpoint that was down.
    service.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"enabled": false}),
    );

    let accepted = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let copy = dir.path().join("copy.db");
    let (accepted_before, output) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let event = service.send_sample("project.created", json!({}));
                accepted
                    .lock()
                    .unwrap()
                    .push(event["id"].as_str().unwrap().to_string());
            }
        });
        eventually("20 events accepted", WAIT, || {
            let count = accepted.lock().unwrap().len();
            (count >= 20).then_some(()).ok_or(count.to_string())
        });
        let before: Vec<String> = accepted.lock().unwrap().clone();
        let output = Command::new(BIN)
            .args(["backup", copy.to_str().unwrap(), "--db"])
            .arg(dir.path().join("webhooks.db"))
            .output()
            .unwrap();
        // Writes went on during the backup.
        let during = accepted.lock().unwrap().len();
        eventually("more events after the backup", WAIT, || {
            let count = accepted.lock().unwrap().len();
            (count > during).then_some(()).ok_or(count.to_string())
        });
        stop.store(true, Ordering::SeqCst);
        (before, output)
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("backup written to "), "{stdout}");
    service.kill();

    // The copy is one snapshot: every event has its delivery, all pending, and everything
    // accepted before the backup began is in it.
    let (events, pending) = {
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let events: BTreeSet<String> = conn
            .prepare("SELECT id FROM events")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let pending: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        (events, pending)
    };
    assert_eq!(pending as usize, events.len());
    for id in &accepted_before {
        assert!(
            events.contains(id),
            "{id} accepted before the backup is missing"
        );
    }
    assert!(
        stdout.contains(&format!("{} deliveries pending", events.len())),
        "{stdout}"
    );

    // Restore: a service on the copy sends every one of them once the endpoint is enabled.
    let restored = Service::start_on(dir.path(), "copy.db", &loopback_flags("100ms"));
    let (status, _) = restored.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"enabled": true}),
    );
    assert_eq!(status, 200);
    let received = receiver.wait_for(events.len(), WAIT);
    let delivered: BTreeSet<String> = received
        .iter()
        .map(|request| request.header("x-clockeye-event-id").unwrap().to_string())
        .collect();
    assert_eq!(delivered, events);

    // It never overwrites, and a wrong --db is named, not created.
    let again = Command::new(BIN)
        .args(["backup", copy.to_str().unwrap(), "--db"])
        .arg(dir.path().join("copy.db"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let missing = dir.path().join("missing.db");
    let wrong = Command::new(BIN)
        .args([
            "backup",
            dir.path().join("other.db").to_str().unwrap(),
            "--db",
        ])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no database at"));
    assert!(!missing.exists());
    // A dangling link at PATH is not followed or replaced.
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(dir.path().join("nowhere.db"), &link).unwrap();
    let linked = Command::new(BIN)
        .args(["backup", link.to_str().unwrap(), "--db"])
        .arg(dir.path().join("copy.db"))
        .output()
        .unwrap();
    assert_eq!(linked.status.code(), Some(1));
    assert!(!dir.path().join("nowhere.db").exists());
    // No partial file is left behind, whatever happened.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.contains(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
