//! --retention prunes finished work older than it, in small batches in the background, and
//! never pending work.

mod util;

use std::time::Duration;

use serde_json::json;
use util::{Backend, Receiver, Service, eventually, loopback_flags};

fn finished_events_older_than_retention_are_pruned_and_pending_ones_kept(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let mut flags = loopback_flags("1s");
    flags.extend(["--retention", "2s"]);
    let service = Service::start_backend(backend, dir.path(), &flags);
    service.create_endpoint(&format!("{}/done", receiver.url), &["*"], Some("done"));
    let (paused, _) =
        service.create_endpoint(&format!("{}/paused", receiver.url), &["*"], Some("waiting"));
    service.patch(
        &format!("/v1/endpoints/{paused}"),
        &json!({"enabled": false}),
    );

    let finished = service.send_sample("project.created", json!({"workspace_id": "done"}));
    let waiting = service.send_sample("project.created", json!({"workspace_id": "waiting"}));
    service.first_delivery(&finished, "succeeded", Duration::from_secs(10));
    let finished_id = finished["id"].as_str().unwrap();
    eventually(
        "the finished event to be pruned",
        Duration::from_secs(20),
        || {
            let (status, answer) = service.get(&format!("/v1/events/{finished_id}"));
            if status == 404 {
                Ok(())
            } else {
                Err(answer.to_string())
            }
        },
    );
    // The event whose delivery still waits (its endpoint is disabled) is as old, and kept.
    let (status, kept) = service.get(&format!("/v1/events/{}", waiting["id"].as_str().unwrap()));
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["deliveries"][0]["status"], "pending", "{kept}");
    let (_, deliveries) = service.get("/v1/deliveries?workspace_id=done");
    assert_eq!(
        deliveries["data"],
        json!([]),
        "its deliveries and attempts went with it: {deliveries}"
    );
}

both_backends!(finished_events_older_than_retention_are_pruned_and_pending_ones_kept);
