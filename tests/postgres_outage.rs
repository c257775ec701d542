//! The database goes away under a running service on Postgres (an operator's restart: `pg_ctl
//! -m fast stop`, which ends every session with 57P01) and comes back: meanwhile `/healthz`
//! and ingest answer 503 and an attempt that finishes keeps its result in memory; afterwards
//! every connection is made again on its first use (no 503 per API thread), the kept result is
//! written once, and new events are delivered. Its own test binary: it stops the cluster that
//! the binary's tests share.

mod util;

use std::time::Duration;

use serde_json::json;
use util::{Backend, Receiver, Reply, Service, eventually, pg};

#[test]
fn the_service_rides_out_a_database_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Events about user `slow` are answered after 2 s: long enough to stop the database while
    // the attempt is in flight.
    let receiver = Receiver::start(|request| {
        if request.json()["data"]["id"] == "slow" {
            Reply {
                delay: Duration::from_secs(2),
                ..Reply::status(200)
            }
        } else {
            Reply::status(200)
        }
    });
    let mut flags = util::loopback_flags("1s");
    flags.extend(["--attempt-timeout", "5s"]);
    let service = Service::start_backend(Backend::Postgres, dir.path(), &flags);
    service.create_endpoint(&receiver.url, &["*"], None);
    service.send_sample("user.activated", json!({}));
    receiver.wait_for(1, Duration::from_secs(10));

    let mut slow = json!({"type": "user.activated", "data": clockeye_webhooks::catalog::sample("user.activated").unwrap()});
    slow["data"]["id"] = "slow".into();
    let (status, slow) = service.post("/v1/events", &slow);
    assert_eq!(status, 202, "{slow}");
    receiver.wait_for(2, Duration::from_secs(10));

    // The attempt is in flight (the receiver holds it for 2 s): the database goes away.
    let cluster = pg::cluster();
    cluster.stop_server();
    eventually(
        "healthz to answer 503",
        Duration::from_secs(15),
        || match service.request("GET", "/healthz", None, None) {
            (503, body) => Ok(body),
            other => Err(format!("{other:?}")),
        },
    );
    let (status, answer) = service.post(
        "/v1/events",
        &json!({"type": "user.activated", "data": clockeye_webhooks::catalog::sample("user.activated").unwrap()}),
    );
    assert_eq!(status, 503, "ingest while the database is down: {answer}");
    // The slow attempt ends (200) while the database is still down; its result is kept (the
    // scheduler's failed-commit line counts it).
    eventually(
        "the slow attempt's result kept",
        Duration::from_secs(15),
        || {
            let stderr = service.stderr();
            if stderr.contains("results_kept=1") {
                Ok(())
            } else {
                Err(stderr.lines().last().unwrap_or_default().to_string())
            }
        },
    );
    assert_eq!(service.request("GET", "/healthz", None, None).0, 503);

    cluster.start_server();
    eventually(
        "healthz to answer 200 again",
        Duration::from_secs(20),
        || match service.request("GET", "/healthz", None, None) {
            (200, body) => Ok(body),
            other => Err(format!("{other:?}")),
        },
    );
    // Every API thread's first call after the restart succeeds (24 threads; more calls
    // than threads, so each meets its ended connection once), a read or an ingest (which
    // begins a transaction of its own on Postgres).
    let data = clockeye_webhooks::catalog::sample("user.activated").unwrap();
    for call in 0..120 {
        let (status, answer) = if call % 2 == 0 {
            service.post(
                "/v1/events",
                &json!({"type": "user.activated", "data": data}),
            )
        } else {
            service.get("/v1/endpoints")
        };
        assert!(
            matches!(status, 200 | 202),
            "call {call} after the restart: {status} {answer}"
        );
    }
    // The kept result was written once: succeeded, one attempt, one arrival.
    let delivery = service.first_delivery(&slow, "succeeded", Duration::from_secs(20));
    assert_eq!(
        delivery["attempts"].as_array().unwrap().len(),
        1,
        "{delivery}"
    );
    // New events are taken and delivered.
    let after = service.send_sample("user.activated", json!({}));
    service.first_delivery(&after, "succeeded", Duration::from_secs(20));
    let slow_arrivals = receiver
        .received()
        .iter()
        .filter(|r| r.json()["data"]["id"] == "slow")
        .count();
    assert_eq!(slow_arrivals, 1, "the slow event was sent again");
}
