//! SIGTERM: stop taking requests, let attempts in flight finish and be recorded, put queued
//! work back, exit 0; nothing pending is lost and nothing is sent twice.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use util::{Receiver, Reply, Service};

#[test]
fn sigterm_lets_attempts_in_flight_finish_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(|_| Reply {
        delay: Duration::from_millis(800),
        ..Reply::status(200)
    });
    let flags = [
        "--allow-http",
        "--allow-network",
        "127.0.0.0/8",
        "--workers",
        "2",
        "--attempt-timeout",
        "3s",
        "--retry-schedule",
        "1s",
    ];
    let mut service = Service::start(dir.path(), &flags);
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let mut deliveries = Vec::new();
    for _ in 0..6 {
        let accepted = service.send_sample("project.created", json!({}));
        deliveries.push(
            accepted["deliveries"][0]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Two attempts are at the receiver (it answers after 800 ms); the rest wait in the queue.
    receiver.wait_for(2, Duration::from_secs(10));
    let started = Instant::now();
    let exit = service.terminate(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", service.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        started.elapsed()
    );
    assert!(
        service.stderr().contains("scheduler stopped"),
        "{}",
        service.stderr()
    );
    let sent_before_restart = receiver.received().len();
    assert_eq!(
        sent_before_restart, 2,
        "queued jobs were not started during shutdown"
    );

    let service = Service::start(dir.path(), &flags);
    for delivery_id in &deliveries {
        let delivery =
            service.wait_for_delivery_status(delivery_id, "succeeded", Duration::from_secs(20));
        assert_eq!(
            delivery["attempts_made"], 1,
            "each delivery was attempted once: {delivery}"
        );
    }
    assert_eq!(receiver.received().len(), 6, "nothing was sent twice");
}
