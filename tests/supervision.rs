//! No silent death: a worker that panics gives its job back unattempted and is replaced; the
//! scheduler dying makes the process exit non-zero; a claim whose lease ran out (its owner
//! died) goes back to `pending` while the service runs. Panics are injected through
//! `CLOCKEYE_FAULTS`, which only a build with the `fault-injection` feature (the tests' build)
//! reads.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use util::{ADMIN_TOKEN, Receiver, Reply, Service, eventually, local_flags};

#[test]
fn a_panicking_worker_releases_its_job_unattempted_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let mut flags = local_flags("100ms");
    // One worker: if the panicked one were not replaced, nothing would be delivered after it.
    flags.extend(["--workers", "1"]);
    let service = Service::start_with_env(
        dir.path(),
        "webhooks.db",
        &flags,
        &[("CLOCKEYE_FAULTS", "worker_after_attempt=1")],
    );
    let (endpoint_id, _) = service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);

    // The first attempt reaches the receiver, then its worker panics before handing back the
    // result: the job goes back to pending, and is sent again by the worker that replaced it.
    let first = service.send_sample("project.created", json!({}));
    let delivered = service.first_delivery(&first, "succeeded", Duration::from_secs(20));
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "the panicked attempt is not recorded: {delivered}"
    );
    assert_eq!(attempts[0]["number"], 1, "{delivered}");
    let requests = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.header("x-clockeye-attempt"),
            Some("1"),
            "the panic spent no attempt"
        );
    }

    // Not the receiver's fault: the endpoint never counted as failing.
    let (_, endpoint) = service.get(&format!("/v1/endpoints/{endpoint_id}"));
    assert!(endpoint["failing_since"].is_null(), "{endpoint}");
    assert_eq!(endpoint["enabled"], true, "{endpoint}");

    // The replacement keeps working.
    let second = service.send_sample("project.created", json!({}));
    service.first_delivery(&second, "succeeded", Duration::from_secs(20));
    let stderr = service.stderr();
    assert!(
        stderr.contains("worker-0 died (panicked); starting another in its place"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the job goes back to pending unattempted"),
        "{stderr}"
    );
    let (status, health) = service.get("/healthz");
    assert_eq!(status, 200, "{health}");
}

#[test]
fn a_dead_scheduler_makes_healthz_503_and_the_process_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A slow receiver keeps one attempt running, so the process is still winding down (and
    // answering) after the scheduler died.
    let receiver = Receiver::start(|_| Reply {
        delay: Duration::from_secs(4),
        ..Reply::status(200)
    });
    let mut flags = local_flags("100ms");
    flags.extend(["--attempt-timeout", "10s"]);
    let mut service = Service::start_with_env(
        dir.path(),
        "webhooks.db",
        &flags,
        &[("CLOCKEYE_FAULTS", "scheduler_round=1")],
    );
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let (status, health) = service.get("/healthz");
    assert_eq!(status, 200, "{health}");
    service.send_sample("project.created", json!({}));
    receiver.wait_for(1, Duration::from_secs(10));

    // The scheduler panics storing this event: it is not acknowledged.
    let body = json!({"id": "panic-scheduler", "type": "project.created",
                      "data": clockeye_webhooks::catalog::sample("project.created").unwrap()});
    let answer = util::client()
        .post(format!("{}/v1/events", service.base))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string());
    if let Ok(response) = answer {
        assert_ne!(
            response.status().as_u16(),
            202,
            "a lost event was acknowledged"
        );
    }
    let (status, health) = service.get("/healthz");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["scheduler"], "stalled", "{health}");

    let exit = service.wait_exit(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(1), "exit status {exit:?}");
    let stderr = service.stderr();
    assert!(
        stderr.contains("the scheduler thread died (panicked)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fault injected at scheduler_round"),
        "{stderr}"
    );
}

/// A claim whose owner died (written here as another instance would leave it: `delivering`,
/// lease running) is left alone until its lease ends, then goes back to `pending` and is
/// delivered, with no restart.
#[test]
fn an_expired_lease_goes_back_to_pending_while_the_service_runs() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let (endpoint_id, _) = service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let (status, _) = service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"enabled": false}),
    );
    assert_eq!(status, 200);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery_id = accepted["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    service.wait_for_delivery_status(&delivery_id, "pending", Duration::from_secs(10));

    let lease = Duration::from_millis(1500);
    let conn = rusqlite::Connection::open(&service.db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let now_ms = clockeye_webhooks::test_support::now_ms();
    let claimed = conn
        .execute(
            "UPDATE deliveries SET status = 'delivering', next_attempt_at_ms = NULL,
                                   lease_expires_at_ms = ?2, claims = claims + 1
             WHERE id = ?1 AND status = 'pending'",
            rusqlite::params![delivery_id, now_ms + lease.as_millis() as i64],
        )
        .unwrap();
    assert_eq!(claimed, 1);
    let lease_ends = Instant::now() + lease;
    drop(conn);
    let (status, _) = service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"enabled": true}),
    );
    assert_eq!(status, 200);

    let delivered =
        service.wait_for_delivery_status(&delivery_id, "succeeded", Duration::from_secs(20));
    let requests = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(requests.len(), 1, "sent once");
    assert!(
        requests[0].at >= lease_ends - Duration::from_millis(50),
        "sent {:?} before the lease ended",
        lease_ends - requests[0].at
    );
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 1);
    eventually("the release to be logged", Duration::from_secs(5), || {
        let stderr = service.stderr();
        if stderr.contains("1 deliveries whose lease ran out went back to pending") {
            Ok(())
        } else {
            Err(stderr)
        }
    });
}
