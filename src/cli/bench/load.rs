//! The benchmark's loads: ingest (single and batches), end to end, latency at a rate, and
//! DELETE of an endpoint with a long history during ingest.

use super::*;

/// Events/s through single-event POSTs from `INGEST_CLIENTS` clients.
pub(super) fn ingest_single(service: &Service, events: usize) -> f64 {
    let body = event_json().to_string();
    let started = Instant::now();
    let threads: Vec<_> = (0..INGEST_CLIENTS)
        .map(|index| {
            let (base, body) = (service.base_for(index), body.clone());
            let share = events / INGEST_CLIENTS + usize::from(index < events % INGEST_CLIENTS);
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                for _ in 0..share {
                    let (status, answer) = client.post("/v1/events", &body);
                    assert_eq!(status, 202, "{answer}");
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|t| t.join().expect("client thread"));
    events as f64 / started.elapsed().as_secs_f64()
}

/// Single events from `INGEST_CLIENTS` keep-alive clients to `fan_out` endpoints, delivered
/// meanwhile, as production sees them: events/s ingested, and deliveries/s from the first
/// ingest to the receiver holding all of them (the figure peers quote for such a load).
pub(super) fn single_end_to_end(
    service: &Service,
    receiver: &Receiver,
    fan_out: usize,
    events: usize,
) -> (f64, f64) {
    receiver.reset();
    add_endpoints(service, &receiver.url, fan_out);
    let started = Instant::now();
    let ingested = ingest_single(service, events);
    let received = drain(started, events * fan_out, Duration::from_millis(5), || {
        receiver.count.load(Ordering::SeqCst)
    });
    (ingested, received as f64 / started.elapsed().as_secs_f64())
}

/// `fan_out` endpoints subscribed to everything, at `base/ep0`, `base/ep1`, …
fn add_endpoints(service: &Service, base: &str, fan_out: usize) {
    for index in 0..fan_out {
        service.endpoint(&format!("{base}/ep{index}"));
    }
}

/// Waits, looking every `every`, until `arrived()` reaches `expected` or `DRAIN_TIMEOUT` has
/// passed since `started`; returns the last count.
fn drain(started: Instant, expected: usize, every: Duration, arrived: impl Fn() -> usize) -> usize {
    let deadline = started + DRAIN_TIMEOUT;
    let mut received = arrived();
    while received < expected && Instant::now() < deadline {
        thread::sleep(every);
        received = arrived();
    }
    received
}

/// Sends `events` events in batches from `BATCH_CLIENTS` clients; returns events/s.
pub(super) fn ingest_batches(service: &Service, events: usize) -> f64 {
    let batch = json!({"events": vec![event_json(); BATCH_EVENTS]}).to_string();
    let batches = events.div_ceil(BATCH_EVENTS);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..BATCH_CLIENTS)
        .map(|index| {
            let (base, batch, next) = (service.base_for(index), batch.clone(), next.clone());
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                while next.fetch_add(1, Ordering::SeqCst) < batches {
                    let (status, answer) = client.post("/v1/events/batch", &batch);
                    assert_eq!(status, 202, "{answer}");
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|t| t.join().expect("client thread"));
    (batches * BATCH_EVENTS) as f64 / started.elapsed().as_secs_f64()
}

/// Deliveries/s from the first ingest to the receiver holding all of them, events in batches.
pub(super) fn end_to_end(
    service: &Service,
    receiver: &Receiver,
    fan_out: usize,
    deliveries: usize,
) -> (f64, u64) {
    receiver.reset();
    let arrived = || receiver.count.load(Ordering::SeqCst);
    let every = Duration::from_millis(5);
    end_to_end_at(service, &receiver.url, fan_out, deliveries, every, arrived)
}

/// `end_to_end` to a receiver outside the bench (`--receiver-url`): arrivals are the
/// service's succeeded attempts, summed over its instances.
pub(super) fn end_to_end_external(
    service: &Service,
    url: &str,
    fan_out: usize,
    deliveries: usize,
) -> (f64, u64) {
    // `/metrics` counts pending deliveries in the database being measured: looked at every
    // 50 ms (the figures in README were taken so).
    let every = Duration::from_millis(50);
    let arrived = || service.succeeded_attempts();
    let base = url.trim_end_matches('/');
    end_to_end_at(service, base, fan_out, deliveries, every, arrived)
}

/// Endpoints at `base`, events in batches, then waiting for `arrived()` to count every
/// delivery (looked at `every`); returns deliveries/s and database bytes per 100,000.
fn end_to_end_at(
    service: &Service,
    base: &str,
    fan_out: usize,
    deliveries: usize,
    every: Duration,
    arrived: impl Fn() -> usize,
) -> (f64, u64) {
    add_endpoints(service, base, fan_out);
    let events = deliveries.div_ceil(fan_out).div_ceil(BATCH_EVENTS) * BATCH_EVENTS;
    let started = Instant::now();
    ingest_batches(service, events);
    let received = drain(started, events * fan_out, every, arrived);
    let elapsed = started.elapsed().as_secs_f64();
    let bytes_per_100k = service.database_bytes() * 100_000 / received.max(1) as u64;
    (received as f64 / elapsed, bytes_per_100k)
}

/// Ingest-acknowledgement-to-arrival latencies (ms) at a steady rate: p50, p99, max.
pub(super) fn latency(
    service: &Service,
    receiver: &Receiver,
    rate: u64,
    seconds: u64,
) -> (f64, f64, f64) {
    receiver.reset();
    let total = (rate * seconds) as usize;
    let body = event_json().to_string();
    let acks: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let started = Instant::now() + Duration::from_millis(50);
    let senders = 4;
    let threads: Vec<_> = (0..senders)
        .map(|sender| {
            let (base, body, acks) = (service.base_for(sender), body.clone(), acks.clone());
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                for index in (sender..total).step_by(senders) {
                    let due = started + Duration::from_micros(index as u64 * 1_000_000 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let (status, answer) = client.post("/v1/events", &body);
                    let acked = Instant::now();
                    assert_eq!(status, 202, "{answer}");
                    acks.lock()
                        .expect("acks")
                        .push((answer["id"].as_str().unwrap_or_default().to_string(), acked));
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|t| t.join().expect("sender thread"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.count.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let arrivals = receiver.arrivals.lock().expect("arrivals");
    let mut latencies: Vec<f64> = acks
        .lock()
        .expect("acks")
        .iter()
        .filter_map(|(id, acked)| {
            let arrived = arrivals.get(&format!("/ep0 {id}"))?;
            // The receiver may see the event before the client sees the 202: that is 0 ms.
            Some(arrived.saturating_duration_since(*acked).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    )
}

/// Finished deliveries of the endpoint deleted in `delete_during_ingest`.
pub(super) const DELETE_HISTORY: usize = 100_000;

/// `DELETE /v1/endpoints/{id}` of an endpoint with `DELETE_HISTORY` finished deliveries while
/// one client sends single events for another endpoint, until the history is purged. Returns
/// the slowest ingest answer (ms), the DELETE's answer (ms) and the purge's length (s).
pub(super) fn delete_during_ingest(service: &Service, receiver: &Receiver) -> (f64, f64, f64) {
    receiver.reset();
    let (status, deleted) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/deleted", receiver.url), "events": ["*"]}).to_string(),
    );
    assert_eq!(status, 201, "creating an endpoint: {deleted}");
    let deleted_id = deleted["id"].as_str().unwrap_or_default().to_string();
    ingest_batches(service, DELETE_HISTORY);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while receiver.count.load(Ordering::SeqCst) < DELETE_HISTORY && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let (status, kept) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/kept", receiver.url), "events": ["*"], "workspace_id": "kept"})
            .to_string(),
    );
    assert_eq!(status, 201, "creating an endpoint: {kept}");
    let db = service.db();
    let purged = || crate::store::endpoint_row_gone(&db, &deleted_id).unwrap_or(false);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (base, stop) = (service.base_for(1), stop.clone());
        let mut body = event_json();
        body["workspace_id"] = "kept".into();
        let body = body.to_string();
        thread::spawn(move || {
            let mut client = RawClient::new(&base);
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let (status, answer) = client.post("/v1/events", &body);
                slowest = slowest.max(started.elapsed());
                assert_eq!(status, 202, "{answer}");
            }
            slowest
        })
    };
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let answer = service
        .agent
        .delete(&format!("{}/v1/endpoints/{deleted_id}", service.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .expect("the service answers");
    let delete_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        answer.status().as_u16(),
        204,
        "DELETE /v1/endpoints/{deleted_id}"
    );
    while !purged() && started.elapsed() < DRAIN_TIMEOUT {
        thread::sleep(Duration::from_millis(5));
    }
    let purge_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let slowest = sender.join().expect("sender thread");
    (slowest.as_secs_f64() * 1000.0, delete_ms, purge_s)
}
