//! Endpoints left broken are disabled, with the reason visible in the API: at once on 410 Gone,
//! or when every attempt has failed for --disable-after. Enabling one resumes its deliveries.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use util::{Backend, Receiver, Reply, Service, eventually, loopback_flags};

const WAIT: Duration = Duration::from_secs(15);

fn delivery_for(accepted: &Value, endpoint_id: &str) -> String {
    let deliveries = accepted["deliveries"].as_array().unwrap();
    deliveries
        .iter()
        .find(|d| d["endpoint_id"] == endpoint_id)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn gone_fails_the_delivery_at_once_and_disables_the_endpoint(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver =
        Receiver::start(|request| Reply::status(if request.path == "/gone" { 410 } else { 200 }));
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms,100ms"));
    let (gone, _) = service.create_endpoint(&format!("{}/gone", receiver.url), &["*"], None);
    let (live, _) = service.create_endpoint(&format!("{}/live", receiver.url), &["*"], None);

    let first = service.send_sample("project.created", json!({}));
    let delivery = service.wait_for_delivery_status(&delivery_for(&first, &gone), "failed", WAIT);
    assert_eq!(
        delivery["attempts_made"], 1,
        "no retry after 410: {delivery}"
    );
    let (_, endpoint) = service.get(&format!("/v1/endpoints/{gone}"));
    assert_eq!(endpoint["enabled"], false, "{endpoint}");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410 Gone"),
        "{endpoint}"
    );

    // Later events wait for it as pending, while the other endpoint gets them.
    let second = service.send_sample("project.created", json!({}));
    service.wait_for_delivery_status(&delivery_for(&second, &live), "succeeded", WAIT);
    let (_, waiting) = service.get(&format!("/v1/deliveries/{}", delivery_for(&second, &gone)));
    assert_eq!(
        (
            waiting["status"].as_str(),
            waiting["attempts_made"].as_i64()
        ),
        (Some("pending"), Some(0)),
        "{waiting}"
    );
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|r| r.path == "/gone")
            .count(),
        1
    );
}

both_backends!(gone_fails_the_delivery_at_once_and_disables_the_endpoint);

fn an_endpoint_failing_for_disable_after_is_disabled_and_resumes_when_enabled(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let answer = Arc::new(AtomicU16::new(500));
    let status = answer.clone();
    let receiver = Receiver::start(move |_| Reply::status(status.load(Ordering::SeqCst)));
    let service = Service::start_backend(
        backend,
        dir.path(),
        &[
            &loopback_flags("300ms,300ms,300ms,300ms,300ms,300ms")[..],
            &["--disable-after", "1s"],
        ]
        .concat(),
    );
    let (endpoint_id, _) = service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery_id = accepted["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let endpoint = eventually("the failing endpoint to be disabled", WAIT, || {
        let (_, endpoint) = service.get(&format!("/v1/endpoints/{endpoint_id}"));
        if endpoint["enabled"] == false {
            Ok(endpoint)
        } else {
            Err(endpoint.to_string())
        }
    });
    let reason = endpoint["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("every attempt failed since") && reason.contains("--disable-after 1s"),
        "{reason}"
    );
    assert!(endpoint["failing_since"].is_string(), "{endpoint}");
    let (_, delivery) = service.get(&format!("/v1/deliveries/{delivery_id}"));
    let attempts_when_disabled = delivery["attempts_made"].as_i64().unwrap();
    assert!(
        attempts_when_disabled >= 4,
        "it failed for at least a second first: {delivery}"
    );
    assert_eq!(
        delivery["status"], "pending",
        "the delivery waits for the endpoint: {delivery}"
    );

    // The receiver is fixed and the endpoint enabled again: the delivery goes out.
    answer.store(200, Ordering::SeqCst);
    let (status, enabled) = service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"enabled": true}),
    );
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["disabled_reason"], Value::Null);
    assert_eq!(enabled["failing_since"], Value::Null);
    let delivery = service.wait_for_delivery_status(&delivery_id, "succeeded", WAIT);
    assert_eq!(
        delivery["attempts_made"].as_i64().unwrap(),
        attempts_when_disabled + 1,
        "{delivery}"
    );
    let _ = receiver.received();
}

both_backends!(an_endpoint_failing_for_disable_after_is_disabled_and_resumes_when_enabled);

fn retry_after_is_honoured_within_one_to_two_scheduled_delays(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU16::new(0));
    let seen = calls.clone();
    let receiver = Receiver::start(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        // Asks for 5 s: more than twice the 400 ms delay, so the wait is 800 ms.
        0 => Reply {
            headers: vec![("Retry-After".into(), "5".into())],
            body: "x".repeat(10_000),
            ..Reply::status(429)
        },
        // Asks for 0 s: less than the delay, so the wait is the scheduled 400 ms.
        1 => Reply {
            headers: vec![("Retry-After".into(), "Thu, 01 Jan 1970 00:00:00 GMT".into())],
            ..Reply::status(503)
        },
        _ => Reply::status(200),
    });
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("400ms,400ms,400ms"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "succeeded", WAIT);
    let received = receiver.received();
    assert_eq!(received.len(), 3, "{delivery}");
    let gap = |n: usize| received[n + 1].at.duration_since(received[n].at);
    assert!(
        gap(0) >= Duration::from_millis(800) && gap(0) < Duration::from_millis(1400),
        "429 Retry-After: 5 → {:?}",
        gap(0)
    );
    assert!(
        gap(1) >= Duration::from_millis(400) && gap(1) < Duration::from_millis(800),
        "503 with a past date → {:?}",
        gap(1)
    );
    // The first 4 KiB of the 10,000-byte body are kept with the attempt.
    assert_eq!(
        delivery["attempts"][0]["response_excerpt"]
            .as_str()
            .unwrap()
            .len(),
        4096,
        "{delivery}"
    );
    assert_eq!(delivery["attempts"][0]["status_code"], 429);
}

both_backends!(retry_after_is_honoured_within_one_to_two_scheduled_delays);

fn disabling_an_endpoint_stops_work_already_claimed_for_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(|_| Reply {
        delay: Duration::from_millis(300),
        ..Reply::status(200)
    });
    let flags = [&loopback_flags("1s")[..], &["--endpoint-concurrency", "1"]].concat();
    let service = Service::start_backend(backend, dir.path(), &flags);
    let (endpoint_id, _) = service.create_endpoint(&format!("{}/slow", receiver.url), &["*"], None);
    let sample =
        json!({"type": "project.created", "data": {"id": "p", "name": "n", "created_by": "u"}});
    let (status, _) = service.post("/v1/events/batch", &json!({"events": vec![sample; 20]}));
    assert_eq!(status, 202);
    // One attempt runs (300 ms each, one at a time); the rest are claimed and queued behind it.
    receiver.wait_for(1, WAIT);
    let (status, _) = service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"enabled": false}),
    );
    assert_eq!(status, 200);
    let pending = eventually("queued work to go back to pending", WAIT, || {
        let (_, delivering) = service.get("/v1/deliveries?status=delivering");
        let (_, pending) = service.get("/v1/deliveries?status=pending&limit=100");
        let pending = pending["data"].as_array().unwrap().len();
        if delivering["data"].as_array().unwrap().is_empty() {
            Ok(pending)
        } else {
            Err(format!("{delivering}"))
        }
    });
    let sent = receiver.received().len();
    assert!(
        sent <= 2,
        "only attempts already running when it was disabled went out: {sent}"
    );
    assert_eq!(pending + sent, 20, "the rest wait as pending");
}

both_backends!(disabling_an_endpoint_stops_work_already_claimed_for_it);
