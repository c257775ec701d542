//! Secret rotation as SPEC "Rotation" says: both secrets live during the overlap, the
//! `X-ClockEye-Signature` secret switches on a 401/403 without using a scheduled retry, only
//! the new secret signs after the overlap, and `0s` retires the old one at once.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clockeye_webhooks::signing::{verify_clockeye, verify_standard};
use serde_json::{Value, json};
use util::{Backend, Received, Receiver, Reply, Service, eventually, loopback_flags, rand_u64};

const WAIT: Duration = Duration::from_secs(20);

/// Does `webhook-signature` hold a valid signature by `secret`, and how many entries in all?
fn standard_entries(request: &Received, secret: &str) -> (bool, usize) {
    let header = request.header("webhook-signature").unwrap();
    let id = request.header("webhook-id").unwrap();
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    (
        verify_standard(secret, id, timestamp, &request.body, header),
        header.split(' ').count(),
    )
}

fn clockeye_signed_by(request: &Received, secret: &str) -> bool {
    verify_clockeye(
        secret,
        &request.body,
        request.header("x-clockeye-signature").unwrap(),
    )
}

/// A receiver's answer: 200 when `X-ClockEye-Signature` is made with the secret it accepts now,
/// else 401.
fn answer_by_signature(request: &Received, accepted_secret: &Mutex<String>) -> Reply {
    let secret = accepted_secret.lock().unwrap().clone();
    Reply::status(if clockeye_signed_by(request, &secret) {
        200
    } else {
        401
    })
}

fn rotate(service: &Service, endpoint: &str, overlap: &str) -> String {
    let (status, rotated) = service.post(
        &format!("/v1/endpoints/{endpoint}/rotate-secret"),
        &json!({ "overlap": overlap }),
    );
    assert_eq!(status, 200, "{rotated}");
    rotated["secret"].as_str().unwrap().to_string()
}

fn sample_batch(count: usize) -> Value {
    let data = clockeye_webhooks::catalog::sample("time_entry.created").unwrap();
    json!({"events": (0..count).map(|_| json!({"type": "time_entry.created", "data": data})).collect::<Vec<_>>()})
}

fn a_receiver_that_switches_secret_during_the_overlap_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // A retry after a scheduled delay would take an hour: every delivery below must succeed
    // without one.
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("1h"));
    let accepted_secret = Arc::new(Mutex::new(String::new()));
    let next_secret = Arc::new(Mutex::new(String::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    const EVENTS: usize = 60;
    // The receiver swaps to the new secret on a random request of the first 40.
    let switch_at = 1 + (rand_u64() % 40) as usize;
    let receiver = {
        let (accepted_secret, next_secret, seen) =
            (accepted_secret.clone(), next_secret.clone(), seen.clone());
        Receiver::start(move |request| {
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == switch_at {
                *accepted_secret.lock().unwrap() = next_secret.lock().unwrap().clone();
            }
            answer_by_signature(request, &accepted_secret)
        })
    };
    let (endpoint, old_secret) = service.create_endpoint(&receiver.url, &["*"], None);
    *accepted_secret.lock().unwrap() = old_secret.clone();
    let new_secret = rotate(&service, &endpoint, "1h");
    *next_secret.lock().unwrap() = new_secret.clone();
    assert_ne!(new_secret, old_secret);
    let (_, secrets) = service.get(&format!("/v1/endpoints/{endpoint}/secret"));
    assert_eq!(secrets["secret"], new_secret.as_str(), "{secrets}");
    assert_eq!(secrets["previous_secret"], old_secret.as_str(), "{secrets}");

    // Events in batches, so attempts are in flight together when the receiver swaps.
    let mut delivery_ids = Vec::new();
    let mut switched = 0;
    for _ in 0..EVENTS / 5 {
        let (status, accepted) = service.post("/v1/events/batch", &sample_batch(5));
        assert_eq!(status, 202, "{accepted}");
        for event in accepted["events"].as_array().unwrap() {
            delivery_ids.push(event["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
    }
    for id in &delivery_ids {
        let delivery = service.wait_for_delivery_status(id, "succeeded", WAIT);
        let attempts = delivery["attempts"].as_array().unwrap();
        // At most one rejected attempt, followed at once by the switched one.
        for rejected in &attempts[..attempts.len() - 1] {
            assert_eq!(rejected["status_code"], 401, "{delivery}");
        }
        assert!(attempts.len() <= 2, "{delivery}");
        switched += attempts.len() - 1;
    }
    // The request on which the receiver swapped was signed with the old secret and refused.
    assert!(
        switched >= 1,
        "no attempt was refused: the swap was not exercised"
    );

    let received = receiver.received();
    for request in &received {
        // During the overlap webhook-signature carries both secrets' signatures.
        assert_eq!(standard_entries(request, &old_secret), (true, 2));
        assert_eq!(standard_entries(request, &new_secret), (true, 2));
    }
    // Before the swap the old secret signed X-ClockEye-Signature; the last request is after it.
    assert!(clockeye_signed_by(&received[0], &old_secret));
    assert!(clockeye_signed_by(received.last().unwrap(), &new_secret));
}

both_backends!(a_receiver_that_switches_secret_during_the_overlap_loses_nothing);

fn a_receiver_that_rejects_both_secrets_is_retried_on_schedule_and_then_fails(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(|_| Reply::status(403));
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms,100ms"));
    let (endpoint, _) = service.create_endpoint(&receiver.url, &["*"], None);
    rotate(&service, &endpoint, "1h");
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", WAIT);
    // Three scheduled attempts, each followed by one switched attempt: bounded, not a loop.
    assert_eq!(delivery["attempts_made"], 6, "{delivery}");
    let received = receiver.received();
    assert_eq!(received.len(), 6);
    // Each switched attempt (2, 4, 6) carries the other secret than the attempt before it.
    for pair in received.chunks(2) {
        assert_ne!(
            pair[0].header("x-clockeye-signature"),
            pair[1].header("x-clockeye-signature"),
        );
    }
}

both_backends!(a_receiver_that_rejects_both_secrets_is_retried_on_schedule_and_then_fails);

fn after_the_overlap_only_the_new_secret_signs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms"));
    let (endpoint, old_secret) = service.create_endpoint(&receiver.url, &["*"], None);
    let new_secret = rotate(&service, &endpoint, "1s");
    let (_, during) = service.get(&format!("/v1/endpoints/{endpoint}"));
    assert!(during["previous_secret_expires_at"].is_string(), "{during}");
    eventually("the overlap to end", WAIT, || {
        let (_, endpoint) = service.get(&format!("/v1/endpoints/{endpoint}"));
        endpoint["previous_secret_expires_at"]
            .is_null()
            .then_some(())
            .ok_or_else(|| endpoint.to_string())
    });
    let (_, secrets) = service.get(&format!("/v1/endpoints/{endpoint}/secret"));
    assert!(secrets["previous_secret"].is_null(), "{secrets}");

    let accepted = service.send_sample("project.created", json!({}));
    service.first_delivery(&accepted, "succeeded", WAIT);
    let request = &receiver.received()[0];
    assert!(clockeye_signed_by(request, &new_secret));
    assert_eq!(standard_entries(request, &new_secret), (true, 1));
    assert_eq!(standard_entries(request, &old_secret), (false, 1));
}

both_backends!(after_the_overlap_only_the_new_secret_signs);

fn a_zero_overlap_retires_the_old_secret_at_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms"));
    let (endpoint, old_secret) = service.create_endpoint(&receiver.url, &["*"], None);
    let new_secret = rotate(&service, &endpoint, "0s");
    let (_, secrets) = service.get(&format!("/v1/endpoints/{endpoint}/secret"));
    assert_eq!(
        (
            secrets["secret"].as_str(),
            secrets["previous_secret"].as_str()
        ),
        (Some(new_secret.as_str()), None),
        "{secrets}"
    );
    let accepted = service.send_sample("project.created", json!({}));
    service.first_delivery(&accepted, "succeeded", WAIT);
    let request = &receiver.received()[0];
    assert!(clockeye_signed_by(request, &new_secret));
    assert!(!clockeye_signed_by(request, &old_secret));
    assert_eq!(standard_entries(request, &old_secret), (false, 1));

    // A bad overlap is refused and changes nothing.
    for (overlap, field) in [(json!("soon"), "overlap"), (json!(5), "overlap")] {
        let (status, error) = service.post(
            &format!("/v1/endpoints/{endpoint}/rotate-secret"),
            &json!({ "overlap": overlap }),
        );
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let (_, unchanged) = service.get(&format!("/v1/endpoints/{endpoint}/secret"));
    assert_eq!(unchanged["secret"], new_secret.as_str());
    // The secret appears in no listing.
    let (_, listed) = service.get("/v1/endpoints");
    assert!(!listed.to_string().contains(&new_secret));
}

both_backends!(a_zero_overlap_retires_the_old_secret_at_once);

fn a_rotation_during_an_attempt_still_switches_on_its_refusal(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("1h"));
    let accepted_secret = Arc::new(Mutex::new(String::new()));
    let next_secret = Arc::new(Mutex::new(String::new()));
    let arrived = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let (accepted_secret, next_secret, arrived) = (
            accepted_secret.clone(),
            next_secret.clone(),
            arrived.clone(),
        );
        Receiver::start(move |request| {
            if arrived.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first attempt is in flight while the secret is rotated and the receiver
                // swaps to the new one; then it is judged.
                let new_secret = eventually("the rotation", WAIT, || {
                    let next = next_secret.lock().unwrap().clone();
                    (!next.is_empty()).then_some(next).ok_or_else(String::new)
                });
                *accepted_secret.lock().unwrap() = new_secret;
            }
            answer_by_signature(request, &accepted_secret)
        })
    };
    let (endpoint, old_secret) = service.create_endpoint(&receiver.url, &["*"], None);
    *accepted_secret.lock().unwrap() = old_secret;
    let accepted = service.send_sample("project.created", json!({}));
    eventually("the first attempt to arrive", WAIT, || {
        (arrived.load(Ordering::SeqCst) > 0)
            .then_some(())
            .ok_or_else(String::new)
    });
    *next_secret.lock().unwrap() = rotate(&service, &endpoint, "1h");
    // Refused with the old secret, then at once (not after the 1h retry) with the new one.
    let delivery = service.first_delivery(&accepted, "succeeded", WAIT);
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{delivery}");
    assert_eq!(attempts[0]["status_code"], 401, "{delivery}");
}

both_backends!(a_rotation_during_an_attempt_still_switches_on_its_refusal);

fn rotating_again_during_an_overlap_keeps_the_secret_the_receiver_accepts(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let accepted_secret = Arc::new(Mutex::new(String::new()));
    let receiver = {
        let accepted_secret = accepted_secret.clone();
        Receiver::start(move |request| answer_by_signature(request, &accepted_secret))
    };
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("1h"));
    let (endpoint, first) = service.create_endpoint(&receiver.url, &["*"], None);
    *accepted_secret.lock().unwrap() = first.clone();
    let second = rotate(&service, &endpoint, "1h");
    let third = rotate(&service, &endpoint, "1h");
    let (_, secrets) = service.get(&format!("/v1/endpoints/{endpoint}/secret"));
    // The receiver never took up `second`: `first` stays live beside `third`.
    assert_eq!(secrets["secret"], third.as_str(), "{secrets}");
    assert_eq!(secrets["previous_secret"], first.as_str(), "{secrets}");
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "succeeded", WAIT);
    assert_eq!(delivery["attempts_made"], 1, "{delivery}");
    let request = &receiver.received()[0];
    assert!(clockeye_signed_by(request, &first));
    assert_eq!(standard_entries(request, &third), (true, 2));
    assert_eq!(standard_entries(request, &second), (false, 2));
}

both_backends!(rotating_again_during_an_overlap_keeps_the_secret_the_receiver_accepts);
