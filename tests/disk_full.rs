//! The disk fills up under the database: ingest answers 503 with a clear error, nothing
//! acknowledged is lost, and the service recovers by itself when space returns.

mod util;

use std::collections::HashSet;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use util::{Receiver, Reply, Service, eventually, local_flags};

/// A small tmpfs (`size` as mount takes it, e.g. `4m`), unmounted on drop. None where this
/// machine cannot mount one (not root).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| SmallDisk(path.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_events_with_503_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), "4m") else {
        eprintln!(
            "SKIPPED: this machine cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    };
    let receiver = Receiver::ok();
    let service = Service::start(&disk.0, &local_flags("100ms"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let mut acknowledged: HashSet<String> = HashSet::new();
    for _ in 0..20 {
        acknowledged.insert(
            service.send_sample("project.created", json!({}))["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    let filler_path = fill(&disk);

    let big_data = json!({"id": "p", "name": "x".repeat(60_000), "created_by": "u"});
    let refused = eventually(
        "ingest to be refused on the full disk",
        Duration::from_secs(20),
        || {
            let (status, answer) = service.post(
                "/v1/events",
                &json!({"type": "project.created", "data": big_data}),
            );
            match status {
                202 => {
                    acknowledged.insert(answer["id"].as_str().unwrap().to_string());
                    Err("still accepted".to_string())
                }
                _ => Ok((status, answer)),
            }
        },
    );
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "unavailable");
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("full") || message.contains("disk"),
        "the message names the problem: {message}"
    );

    // Space returns: the service takes events again without a restart.
    std::fs::remove_file(&filler_path).unwrap();
    let recovered = eventually("ingest to work again", Duration::from_secs(20), || {
        let (status, answer) = service.post(
            "/v1/events",
            &json!({"type": "project.created", "data": big_data}),
        );
        if status == 202 {
            Ok(answer)
        } else {
            Err(format!("{status} {answer}"))
        }
    });
    acknowledged.insert(recovered["id"].as_str().unwrap().to_string());

    eventually(
        "every acknowledged event delivered",
        Duration::from_secs(30),
        || {
            let seen: HashSet<String> = receiver
                .received()
                .iter()
                .map(|r| r.header("x-clockeye-event-id").unwrap().to_string())
                .collect();
            let missing = acknowledged.difference(&seen).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} of {} missing", acknowledged.len()))
            }
        },
    );
    drop(service);
}

/// Fills the disk to the last byte; returns the filler file, to remove to free it.
fn fill(disk: &SmallDisk) -> std::path::PathBuf {
    let filler_path = disk.0.join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while filler.write_all(&small).is_ok() {}
    drop(filler);
    filler_path
}

/// Attempts in flight when the disk fills, their results refused for longer than a lease:
/// the results are kept and written once space returns, every delivery ends `succeeded`
/// without a restart, and nothing is sent twice.
#[test]
fn attempt_results_that_cannot_be_written_are_kept_until_the_disk_takes_writes() {
    const EVENTS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), "12m") else {
        eprintln!(
            "SKIPPED: this machine cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    };
    let receiver = Receiver::start(|_| Reply {
        delay: Duration::from_secs(2),
        ..Reply::status(200)
    });
    // A 3 s timeout: each lease is 3 s + the margin (5 s), shorter than the 12 s the disk
    // stays full.
    let mut flags = local_flags("1s");
    flags.extend([
        "--attempt-timeout",
        "3s",
        "--workers",
        "16",
        "--endpoint-concurrency",
        "16",
    ]);
    let service = Service::start(&disk.0, &flags);
    // One endpoint (in its own workspace) per event: every attempt is in flight at once,
    // whatever window an endpoint starts with.
    for index in 0..EVENTS {
        let workspace_id = format!("ws{index}");
        service.create_endpoint(
            &format!("{}/hook", receiver.url),
            &["*"],
            Some(&workspace_id),
        );
    }
    let deliveries: Vec<String> = (0..EVENTS)
        .map(|index| {
            service.send_sample(
                "project.created",
                json!({"workspace_id": format!("ws{index}")}),
            )["deliveries"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    receiver.wait_for(EVENTS, Duration::from_secs(10));

    // Every attempt is in flight (the receiver holds each for 2 s): fill the disk now, and
    // keep it full for 12 s, past every lease.
    let filler_path = fill(&disk);
    let filled_at = std::time::Instant::now();
    eventually(
        "the results' commit to fail on the full disk",
        Duration::from_secs(10),
        || {
            let stderr = service.stderr();
            let results_refused = stderr
                .lines()
                .any(|line| line.contains("commit failed") && !line.ends_with("results_kept=0"));
            if results_refused { Ok(()) } else { Err(stderr) }
        },
    );
    eventually("12 s with the disk full", Duration::from_secs(20), || {
        for delivery_id in &deliveries {
            let (status, delivery) = service.get(&format!("/v1/deliveries/{delivery_id}"));
            assert_eq!(status, 200, "{delivery}");
            assert_eq!(
                delivery["status"], "delivering",
                "nothing is written while the disk is full: {delivery}"
            );
        }
        if filled_at.elapsed() >= Duration::from_secs(12) {
            Ok(())
        } else {
            Err(format!("{:?} so far", filled_at.elapsed()))
        }
    });
    std::fs::remove_file(&filler_path).unwrap();

    for delivery_id in &deliveries {
        let delivery =
            service.wait_for_delivery_status(delivery_id, "succeeded", Duration::from_secs(20));
        assert_eq!(
            delivery["attempts"].as_array().unwrap().len(),
            1,
            "{delivery}"
        );
    }
    let received = receiver.received();
    let distinct: HashSet<&str> = received
        .iter()
        .map(|r| r.header("x-clockeye-delivery").unwrap())
        .collect();
    assert_eq!(distinct.len(), EVENTS);
    assert_eq!(received.len(), EVENTS, "nothing sent twice");
    drop(service);
}
