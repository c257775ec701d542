//! Event ids are unique per workspace (SPEC, the events row of the API table): a repeat in the
//! same workspace is idempotent, another workspace's use of the id is invisible, and the admin
//! names the workspace when two share an id.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::{Backend, Receiver, Service, local_flags};

const WAIT: Duration = Duration::from_secs(20);

fn token_for(service: &Service, workspace: &str) -> String {
    let (status, created) = service.post(&format!("/v1/workspaces/{workspace}/tokens"), &json!({}));
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_string()
}

fn send(service: &Service, token: &str, body: &Value) -> (u16, Value) {
    service.request(
        "POST",
        "/v1/events",
        Some(token),
        Some(body.to_string().as_bytes()),
    )
}

fn the_same_id_in_two_workspaces_is_two_events(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    service.create_endpoint(&format!("{}/acme", receiver.url), &["*"], Some("acme"));
    service.create_endpoint(&format!("{}/globex", receiver.url), &["*"], Some("globex"));
    let acme = token_for(&service, "acme");
    let globex = token_for(&service, "globex");
    let data = clockeye_webhooks::catalog::sample("project.created").unwrap();
    let body = json!({"type": "project.created", "id": "order-42", "data": data});

    let (status, first) = send(&service, &acme, &body);
    assert_eq!(status, 202, "{first}");
    // Another workspace's id is invisible: its own event is created, not a conflict.
    let (status, other) = send(&service, &globex, &body);
    assert_eq!(status, 202, "{other}");
    assert_eq!(other["workspace_id"], "globex");
    assert_ne!(other["deliveries"], first["deliveries"]);
    // A repeat inside one workspace stays idempotent.
    let (status, again) = send(&service, &globex, &body);
    assert_eq!((status, &again), (200, &other));
    let (status, again) = send(&service, &acme, &body);
    assert_eq!((status, &again), (200, &first));
    service.first_delivery(&first, "succeeded", WAIT);
    service.first_delivery(&other, "succeeded", WAIT);
    let mut paths: Vec<String> = receiver.received().iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/acme", "/globex"]);

    // Each workspace token sees its own event and its own deliveries only.
    for (token, workspace, accepted) in [(&acme, "acme", &first), (&globex, "globex", &other)] {
        let (status, event) = service.request("GET", "/v1/events/order-42", Some(token), None);
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["workspace_id"], workspace, "{event}");
        let deliveries = event["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 1, "{event}");
        assert_eq!(deliveries[0]["id"], accepted["deliveries"][0]["id"]);
        // Naming the other workspace is refused, as for every filter.
        let path = format!(
            "/v1/events/order-42?workspace_id={}",
            if workspace == "acme" {
                "globex"
            } else {
                "acme"
            }
        );
        let (status, refused) = service.request("GET", &path, Some(token), None);
        assert_eq!(status, 403, "{refused}");
    }

    // The admin must say which one, and is told so.
    let (status, ambiguous) = service.get("/v1/events/order-42");
    assert_eq!(status, 409, "{ambiguous}");
    assert_eq!(ambiguous["error"]["code"], "ambiguous_event_id");
    assert_eq!(ambiguous["error"]["field"], "workspace_id");
    assert!(
        ambiguous["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workspace_id"),
        "{ambiguous}"
    );
    let (status, event) = service.get("/v1/events/order-42?workspace_id=globex");
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["workspace_id"], "globex");
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1);
    let (status, _) = service.get("/v1/events/order-42?workspace_id=initech");
    assert_eq!(status, 404);
    // An id only one workspace uses needs no workspace.
    let single = service.send_sample(
        "user.invited",
        json!({"id": "only-once", "workspace_id": "acme"}),
    );
    let (status, event) = service.get("/v1/events/only-once");
    assert_eq!(
        (status, &event["workspace_id"]),
        (200, &json!("acme")),
        "{single}"
    );
    // Both events are listed, each in its workspace.
    let (_, listed) = service.get("/v1/events?limit=10");
    let listed: Vec<(String, String)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().into(),
                e["workspace_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("only-once".to_string(), "acme".to_string()),
            ("order-42".into(), "globex".into()),
            ("order-42".into(), "acme".into()),
        ]
    );
}
both_backends!(the_same_id_in_two_workspaces_is_two_events);

/// One id sent by many clients at once (a client retrying on several connections): one event,
/// one delivery per endpoint, one arrival each; every answer names the same deliveries. On
/// Postgres each API thread commits its own ingest, so the repeats race in the database.
fn an_id_sent_by_many_clients_at_once_is_one_event(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    service.create_endpoint(&format!("{}/a", receiver.url), &["*"], None);
    service.create_endpoint(&format!("{}/b", receiver.url), &["*"], None);
    let data = clockeye_webhooks::catalog::sample("project.created").unwrap();
    const CLIENTS: usize = 12;
    const IDS: usize = 5;
    for round in 0..IDS {
        let body = json!({"type": "project.created", "id": format!("race-{round}"), "data": data});
        let start = std::sync::Barrier::new(CLIENTS);
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        service.post("/v1/events", &body)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let created = answers.iter().filter(|(status, _)| *status == 202).count();
        assert_eq!(created, 1, "exactly one answer creates it: {answers:?}");
        for (status, answer) in &answers {
            assert!(matches!(status, 200 | 202), "{status} {answer}");
            assert_eq!(answer["deliveries"], answers[0].1["deliveries"], "{answer}");
        }
        assert_eq!(answers[0].1["deliveries"].as_array().unwrap().len(), 2);
        service.first_delivery(&answers[0].1, "succeeded", WAIT);
    }
    // Every delivery finished; each id arrived once at each endpoint.
    receiver.wait_for(2 * IDS, WAIT);
    util::eventually("every delivery to finish", WAIT, || {
        let (_, pending) = service.get("/v1/deliveries?status=pending&limit=10");
        let (_, delivering) = service.get("/v1/deliveries?status=delivering&limit=10");
        let left = pending["data"].as_array().unwrap().len()
            + delivering["data"].as_array().unwrap().len();
        (left == 0)
            .then_some(())
            .ok_or(format!("{left} unfinished"))
    });
    let (_, events) = service.get("/v1/events?limit=100");
    assert_eq!(events["data"].as_array().unwrap().len(), IDS, "{events}");
    let mut arrivals: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            let event: Value = serde_json::from_slice(&r.body).unwrap();
            format!("{} {}", r.path, event["id"].as_str().unwrap())
        })
        .collect();
    arrivals.sort();
    let mut expected: Vec<String> = (0..IDS)
        .flat_map(|round| [format!("/a race-{round}"), format!("/b race-{round}")])
        .collect();
    expected.sort();
    assert_eq!(arrivals, expected);
}
both_backends!(an_id_sent_by_many_clients_at_once_is_one_event);
