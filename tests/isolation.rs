//! One bad endpoint must not hurt the rest: five endpoints that hang past the attempt timeout,
//! and a healthy one receiving a steady stream, which keeps getting its events within a second.

mod util;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use util::{Backend, Receiver, Reply, Service, eventually};

fn five_hanging_endpoints_do_not_delay_a_healthy_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let hanging = Receiver::start(|_| Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200)
    });
    let healthy = Receiver::ok();
    // Defaults for workers (32) and --endpoint-concurrency (4); a short timeout and schedule.
    let service = Service::start_backend(
        backend,
        dir.path(),
        &[
            "--allow-http",
            "--allow-network",
            "127.0.0.0/8",
            "--attempt-timeout",
            "1s",
            "--retry-schedule",
            "200ms,200ms",
        ],
    );
    let hanging_ids: Vec<String> = (0..5)
        .map(|index| {
            service
                .create_endpoint(&format!("{}/hang{index}", hanging.url), &["*"], None)
                .0
        })
        .collect();
    service.create_endpoint(&format!("{}/healthy", healthy.url), &["*"], None);

    // A steady 40 events/s for 5 s, each to all six endpoints.
    let mut acknowledged: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    for index in 0..200u32 {
        let due = started + Duration::from_millis(u64::from(index) * 25);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait); // pacing the load, not waiting for a state
        }
        let accepted = service.send_sample("time_entry.created", json!({}));
        acknowledged.insert(accepted["id"].as_str().unwrap().to_string(), Instant::now());
    }
    let received = eventually(
        "every event at the healthy endpoint",
        Duration::from_secs(30),
        || {
            let received = healthy.received();
            if received.len() >= acknowledged.len() {
                Ok(received)
            } else {
                Err(format!("{} of {}", received.len(), acknowledged.len()))
            }
        },
    );
    let mut latencies: Vec<Duration> = received
        .iter()
        .map(|r| {
            r.at.saturating_duration_since(acknowledged[r.header("x-clockeye-event-id").unwrap()])
        })
        .collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "healthy endpoint: p50 {:?}, p99 {p99:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
    assert!(
        p99 < Duration::from_secs(1),
        "p99 ingest-to-arrival at the healthy endpoint was {p99:?}"
    );

    // The hanging endpoints really hung: their attempts end in timeouts.
    let attempted = eventually(
        "an attempt at a hanging endpoint to end",
        Duration::from_secs(10),
        || {
            let (_, listed) = service.get(&format!(
                "/v1/deliveries?endpoint_id={}&limit=500",
                hanging_ids[0]
            ));
            listed["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["attempts_made"].as_i64() > Some(0))
                .map(|d| d["id"].as_str().unwrap().to_string())
                .ok_or_else(|| "no attempt ended yet".to_string())
        },
    );
    let (_, delivery) = service.get(&format!("/v1/deliveries/{attempted}"));
    assert_eq!(
        delivery["attempts"][0]["error_class"], "timeout",
        "{delivery}"
    );
}

both_backends!(five_hanging_endpoints_do_not_delay_a_healthy_one);
