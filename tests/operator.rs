//! The operator's tools against the real binary: test events, recover, endpoint stats.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use util::{Receiver, Reply, Service, loopback_flags};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_test_event_goes_to_that_endpoint_only_and_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start(dir.path(), &loopback_flags("100ms"));
    let (tested, _) =
        service.create_endpoint(&format!("{}/tested", receiver.url), &["user.invited"], None);
    let (other, _) = service.create_endpoint(&format!("{}/other", receiver.url), &["*"], None);

    // No type: the endpoint's first subscribed type, with the catalog's sample data.
    let (status, sent) = service.post(&format!("/v1/endpoints/{tested}/test"), &json!({}));
    assert_eq!(status, 202, "{sent}");
    assert_eq!(
        (sent["type"].as_str(), sent["test"].as_bool()),
        (Some("user.invited"), Some(true))
    );
    // A type the endpoint does not subscribe to still goes to it, and to no other endpoint.
    let (status, project) = service.post(
        &format!("/v1/endpoints/{tested}/test"),
        &json!({"type": "project.created"}),
    );
    assert_eq!(status, 202, "{project}");
    let deliveries = project["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{project}");
    assert_eq!(deliveries[0]["endpoint_id"], tested.as_str());
    let delivery = service.first_delivery(&project, "succeeded", WAIT);
    assert_eq!(delivery["test"], true, "{delivery}");
    service.first_delivery(&sent, "succeeded", WAIT);

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.path == "/tested"));
    let body = received
        .iter()
        .find(|r| r.header("x-clockeye-event") == Some("project.created"))
        .unwrap()
        .json();
    // A normal envelope: the four keys, the sample data.
    assert_eq!(
        body["data"],
        clockeye_webhooks::catalog::sample("project.created").unwrap()
    );
    let (_, event) = service.get(&format!("/v1/events/{}", project["id"].as_str().unwrap()));
    assert_eq!(event["test"], true, "{event}");
    let (_, other_deliveries) = service.get(&format!("/v1/deliveries?endpoint_id={other}"));
    assert_eq!(other_deliveries["data"].as_array().unwrap().len(), 0);

    // Bad input and a disabled endpoint get clear errors, and nothing is queued.
    let (status, error) = service.post(
        &format!("/v1/endpoints/{tested}/test"),
        &json!({"type": "nope.nope"}),
    );
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("type"))
    );
    service.patch(
        &format!("/v1/endpoints/{tested}"),
        &json!({"enabled": false}),
    );
    let (status, error) = service.post(&format!("/v1/endpoints/{tested}/test"), &json!({}));
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("endpoint_disabled"))
    );
    let (status, _) = service.post("/v1/endpoints/ep_missing/test", &json!({}));
    assert_eq!(status, 404);
    let (_, events) = service.get("/v1/events");
    assert_eq!(events["data"].as_array().unwrap().len(), 2);
}

#[test]
fn recover_requeues_failed_deliveries_in_the_window_once() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let receiver = {
        let healthy = healthy.clone();
        Receiver::start(move |_| {
            Reply::status(if healthy.load(Ordering::SeqCst) {
                200
            } else {
                500
            })
        })
    };
    let service = Service::start(dir.path(), &loopback_flags("50ms"));
    let (endpoint, _) = service.create_endpoint(&format!("{}/a", receiver.url), &["*"], None);
    let (bystander, _) = service.create_endpoint(&format!("{}/b", receiver.url), &["*"], None);
    let accepted: Vec<_> = (0..5)
        .map(|_| service.send_sample("project.created", json!({})))
        .collect();
    let mine = |accepted: &serde_json::Value, endpoint: &str| {
        accepted["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["endpoint_id"] == endpoint)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for event in &accepted {
        service.wait_for_delivery_status(&mine(event, &endpoint), "failed", WAIT);
        service.wait_for_delivery_status(&mine(event, &bystander), "failed", WAIT);
    }
    healthy.store(true, Ordering::SeqCst);

    // Bad windows are refused and change nothing.
    let path = format!("/v1/endpoints/{endpoint}/recover");
    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "yesterday"}), "since"),
        (
            json!({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}),
            "until",
        ),
        (
            json!({"since": "2024-01-01T00:00:00Z", "extra": 1}),
            "extra",
        ),
    ] {
        let (status, error) = service.post(&path, &body);
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {error}"
        );
    }
    // A window in the future holds nothing.
    let (_, none) = service.post(&path, &json!({"since": "2999-01-01T00:00:00Z"}));
    assert_eq!(none["requeued"], 0, "{none}");

    let (status, recovered) = service.post(&path, &json!({"since": "2024-01-01T00:00:00Z"}));
    assert_eq!((status, recovered["requeued"].as_u64()), (202, Some(5)));
    for event in &accepted {
        let delivery = service.wait_for_delivery_status(&mine(event, &endpoint), "succeeded", WAIT);
        // The attempt count continues: two failed attempts, then the recovered one.
        assert_eq!(delivery["attempts_made"], 3, "{delivery}");
    }
    // Safe to call twice: nothing is failed any more, nothing is sent again.
    let (_, again) = service.post(&path, &json!({"since": "2024-01-01T00:00:00Z"}));
    assert_eq!(again["requeued"], 0, "{again}");
    // The other endpoint's failed deliveries stay failed.
    let (_, other) = service.get(&format!(
        "/v1/deliveries?endpoint_id={bystander}&status=failed"
    ));
    assert_eq!(other["data"].as_array().unwrap().len(), 5, "{other}");

    // Stats count them: 5 succeeded and 5 failed across both endpoints, per endpoint here.
    let (status, stats) = service.get(&format!("/v1/endpoints/{endpoint}/stats?hours=2"));
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["totals"]["succeeded"], 5, "{stats}");
    assert_eq!(stats["success_rate"], 1.0, "{stats}");
    assert!(stats["last_success_at"].is_string(), "{stats}");
    let hourly = stats["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 2);
    let per_hour: u64 = hourly
        .iter()
        .map(|h| h["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(per_hour, 5, "{stats}");
    let (_, bystander_stats) = service.get(&format!("/v1/endpoints/{bystander}/stats"));
    assert_eq!(bystander_stats["totals"]["failed"], 5, "{bystander_stats}");
    assert_eq!(bystander_stats["success_rate"], 0.0, "{bystander_stats}");
    assert!(bystander_stats["last_success_at"].is_null());
    let (status, _) = service.get(&format!("/v1/endpoints/{endpoint}/stats?hours=0"));
    assert_eq!(status, 400);
}
