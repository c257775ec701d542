//! The disk fills up under the database: ingest answers 503 with a clear error, nothing
//! acknowledged is lost, and the service recovers by itself when space returns.

mod util;

use std::collections::HashSet;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use util::{Receiver, Service, eventually, local_flags};

/// A 4 MiB tmpfs, unmounted on drop. None where this machine cannot mount one (not root).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &std::path::Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
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
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk")) else {
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

    // Fill the disk to the last byte.
    let filler_path = disk.0.join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while filler.write_all(&small).is_ok() {}
    drop(filler);

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
