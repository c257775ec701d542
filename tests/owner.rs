//! One owner per database file: a second `serve` on a database in use exits 1 with one line
//! naming the file and the pid that holds it, and sends nothing; `backup` still works beside
//! the running service.

mod util;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use util::{ADMIN_TOKEN, BIN, Receiver, Reply, Service, local_flags};

#[test]
fn a_second_serve_on_the_same_database_is_refused_and_nothing_is_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    // Slow answers keep the first service's attempts in flight while the second one starts.
    let receiver = Receiver::start(|_| Reply {
        delay: Duration::from_millis(1500),
        ..Reply::status(200)
    });
    let service = Service::start(dir.path(), &local_flags("100ms"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let accepted: Vec<String> = (0..4)
        .map(|_| {
            service.send_sample("project.created", json!({}))["deliveries"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    receiver.wait_for(4, Duration::from_secs(10));

    let second = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(&service.db)
        .args(["--admin-token", ADMIN_TOKEN])
        .args(local_flags("100ms"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(second.stdout.is_empty(), "it never listened: {second:?}");
    let stderr = String::from_utf8(second.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&service.db.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", service.pid())),
        "names who holds it: {stderr}"
    );

    for delivery_id in &accepted {
        service.wait_for_delivery_status(delivery_id, "succeeded", Duration::from_secs(20));
    }
    let received = receiver.received();
    assert_eq!(received.len(), 4, "each event sent once");
    let (status, health) = service.get("/healthz");
    assert_eq!(status, 200, "{health}");
}

#[test]
fn backup_works_beside_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    service.create_endpoint("http://127.0.0.1:9/hook", &["*"], None);
    let copy = dir.path().join("copy.db");
    let backup = Command::new(BIN)
        .arg("backup")
        .arg(&copy)
        .arg("--db")
        .arg(&service.db)
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    let stdout = String::from_utf8(backup.stdout).unwrap();
    assert!(stdout.starts_with("backup written to"), "{stdout}");
    assert!(copy.exists());
    let (status, _) = service.get("/healthz");
    assert_eq!(status, 200);
}
