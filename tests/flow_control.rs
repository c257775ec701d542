//! Flow control (SPEC "Flow control"): the adaptive window per endpoint, `rate_limit` and
//! `ordering: "subject"`, against the real binary and receivers on loopback.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use util::{Backend, Receiver, Reply, Service, eventually, loopback_flags};

fn window(service: &Service, endpoint_id: &str) -> u64 {
    let (status, endpoint) = service.get(&format!("/v1/endpoints/{endpoint_id}"));
    assert_eq!(status, 200, "{endpoint}");
    endpoint["window"]
        .as_u64()
        .unwrap_or_else(|| panic!("no window in {endpoint}"))
}

fn send_batch(service: &Service, events: Vec<Value>) -> Value {
    let (status, answer) = service.post("/v1/events/batch", &json!({ "events": events }));
    assert_eq!(status, 202, "{answer}");
    answer
}

fn project(index: usize) -> Value {
    json!({"type": "project.created", "data": {"id": format!("p{index}"), "name": "n", "created_by": "u"}})
}

fn the_window_grows_for_a_healthy_endpoint_and_shrinks_for_a_failing_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Receiver::start(|_| Reply {
        delay: Duration::from_millis(10),
        ..Reply::status(200)
    });
    let failing = Receiver::start(|_| Reply::status(503));
    let mut flags = loopback_flags("1m");
    flags.extend(["--workers", "32", "--attempt-timeout", "2s"]);
    let service = Service::start_backend(backend, dir.path(), &flags);
    let (healthy_id, _) =
        service.create_endpoint(&format!("{}/h", healthy.url), &["project.created"], None);
    let (failing_id, _) =
        service.create_endpoint(&format!("{}/f", failing.url), &["user.activated"], None);
    // Before any attempt: the initial window.
    assert_eq!(window(&service, &healthy_id), 4);
    assert_eq!(window(&service, &failing_id), 4);

    send_batch(&service, (0..400).map(project).collect());
    let grown = eventually(
        "the healthy endpoint's window to grow",
        Duration::from_secs(30),
        || match window(&service, &healthy_id) {
            w if w >= 8 => Ok(w),
            w => Err(format!("window {w}")),
        },
    );
    assert!(grown <= 16, "never above half the 32 workers: {grown}");

    let activated = |index: usize| json!({"type": "user.activated", "data": {"id": format!("u{index}"), "email": "a@example.com", "activated_at": "2024-01-15T10:30:00Z"}});
    send_batch(&service, (0..20).map(activated).collect());
    eventually(
        "the failing endpoint's window to shrink to 1",
        Duration::from_secs(30),
        || match window(&service, &failing_id) {
            1 => Ok(()),
            w => Err(format!("window {w}")),
        },
    );

    // /metrics shows each endpoint's window.
    let text = util::client()
        .get(&format!("{}/metrics", service.base))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        text.contains(&format!(
            "clockeye_endpoint_window{{endpoint=\"{failing_id}\"}} 1"
        )),
        "{text}"
    );
}

both_backends!(the_window_grows_for_a_healthy_endpoint_and_shrinks_for_a_failing_one);

fn endpoint_flow_fields_are_validated_and_shown(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("1m"));
    let (status, endpoint) = service.post(
        "/v1/endpoints",
        &json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "rate_limit": 20, "ordering": "subject"}),
    );
    assert_eq!(status, 201, "{endpoint}");
    assert_eq!(endpoint["rate_limit"], 20);
    assert_eq!(endpoint["ordering"], "subject");
    let id = endpoint["id"].as_str().unwrap();
    let (status, created_default) = service.post(
        "/v1/endpoints",
        &json!({"url": "http://127.0.0.1:9/y", "events": ["*"]}),
    );
    assert_eq!(status, 201);
    assert_eq!(created_default["rate_limit"], Value::Null);
    assert_eq!(created_default["ordering"], "none");

    for (body, field) in [
        (json!({"rate_limit": 0}), "rate_limit"),
        (json!({"rate_limit": 10001}), "rate_limit"),
        (json!({"rate_limit": "fast"}), "rate_limit"),
        (json!({"rate_limit": 1.5}), "rate_limit"),
        (json!({"ordering": "random"}), "ordering"),
    ] {
        let (status, problem) = service.patch(&format!("/v1/endpoints/{id}"), &body);
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["error"]["field"], field, "{problem}");
    }
    let (status, patched) = service.patch(
        &format!("/v1/endpoints/{id}"),
        &json!({"rate_limit": null, "ordering": "none"}),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["rate_limit"], Value::Null);
    assert_eq!(patched["ordering"], "none");

    // An event's subject: as given, else `<type before the dot>:<data.id>`; too long: 422.
    let given = service.send_sample("time_entry.updated", json!({"subject": "sheet:7"}));
    let (_, event) = service.get(&format!("/v1/events/{}", given["id"].as_str().unwrap()));
    assert_eq!(event["subject"], "sheet:7");
    let derived = service.send_sample("time_entry.updated", json!({}));
    let (_, event) = service.get(&format!("/v1/events/{}", derived["id"].as_str().unwrap()));
    let data_id = event["data"]["id"].as_str().unwrap();
    assert_eq!(event["subject"], format!("time_entry:{data_id}"));
    let (status, problem) = service.post(
        "/v1/events",
        &json!({"type": "project.created", "subject": "x".repeat(201), "data": {"id": "p", "name": "n", "created_by": "u"}}),
    );
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["error"]["field"], "subject");
}

both_backends!(endpoint_flow_fields_are_validated_and_shown);

fn a_rate_limited_endpoint_never_exceeds_its_rate_in_any_second(backend: Backend) {
    const RATE: usize = 5;
    const EVENTS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("1m"));
    let (status, endpoint) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/limited", receiver.url), "events": ["*"], "rate_limit": RATE}),
    );
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    send_batch(&service, (0..EVENTS).map(project).collect());
    let received = receiver.wait_for(EVENTS, Duration::from_secs(30));

    // At the receiver: no RATE + 1 arrivals within one second (less 50 ms of loopback jitter).
    let mut arrivals: Vec<_> = received.iter().map(|r| r.at).collect();
    arrivals.sort();
    for span in arrivals.windows(RATE + 1) {
        let apart = span[RATE] - span[0];
        assert!(
            apart >= Duration::from_millis(950),
            "{} arrivals within {apart:?}",
            RATE + 1
        );
    }
    // The recorded attempt starts say the same, to the millisecond (less 10 ms for the moment
    // between a worker taking its job and reading the clock).
    let (_, deliveries) = service.get(&format!(
        "/v1/deliveries?endpoint_id={endpoint_id}&limit=100"
    ));
    let mut starts: Vec<i64> = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|delivery| {
            let (_, full) = service.get(&format!(
                "/v1/deliveries/{}",
                delivery["id"].as_str().unwrap()
            ));
            let attempt = &full["attempts"][0];
            clockeye_webhooks::test_support::parse_rfc3339(attempt["started_at"].as_str().unwrap())
                .unwrap_or_else(|| panic!("bad started_at in {attempt}"))
        })
        .collect();
    assert_eq!(starts.len(), EVENTS);
    starts.sort();
    for span in starts.windows(RATE + 1) {
        assert!(span[RATE] - span[0] >= 990, "{starts:?}");
    }
    // And the limit did hold them back: 16 at 5 per second need more than 3 s.
    assert!(starts[EVENTS - 1] - starts[0] >= 2_990, "{starts:?}");
}

both_backends!(a_rate_limited_endpoint_never_exceeds_its_rate_in_any_second);

/// Per subject, the order events were accepted in; each event's arrivals at the receiver
/// (time order), with whether the receiver answered 200.
fn ordering_by_subject_holds_through_failures_retries_and_a_kill(backend: Backend) {
    const SUBJECTS: usize = 3;
    const PER_SUBJECT: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    // Every other event fails its first attempt, so later ones of its subject must wait.
    let receiver = Receiver::start(|request| {
        if succeeded_attempt(request) {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    });
    let flags = loopback_flags("300ms,300ms,300ms");
    let mut service = Service::start_backend(backend, dir.path(), &flags);
    let (status, endpoint) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/ordered", receiver.url), "events": ["*"], "ordering": "subject"}),
    );
    assert_eq!(status, 201, "{endpoint}");
    let event = |n: usize| {
        json!({"type": "time_entry.updated", "data": {"id": format!("te_{}", n % SUBJECTS),
               "changes": {"n": n}, "updated_at": "2024-01-15T10:30:00Z"}})
    };
    let total = SUBJECTS * PER_SUBJECT;
    let first_half = send_batch(&service, (0..total / 2).map(event).collect());
    let mut ids: Vec<String> = first_half["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    receiver.wait_for(2, Duration::from_secs(10));
    // kill -9 with work in flight and waiting, then go on with the same database.
    service.kill();
    service = Service::start_db(dir.path(), &service.db_arg, &flags);
    let second_half = send_batch(&service, (total / 2..total).map(event).collect());
    ids.extend(
        second_half["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string()),
    );
    eventually("every event delivered", Duration::from_secs(60), || {
        let succeeded: std::collections::HashSet<String> = receiver
            .received()
            .iter()
            .filter(|r| succeeded_attempt(r))
            .filter_map(|r| r.header("x-clockeye-event-id").map(str::to_string))
            .collect();
        if ids.iter().all(|id| succeeded.contains(id)) {
            Ok(())
        } else {
            Err(format!("{} of {total} succeeded", succeeded.len()))
        }
    });

    // Event n is the (n / SUBJECTS)-th of subject n % SUBJECTS. No arrival of an event may
    // come before a successful arrival of the previous event of its subject.
    let received = receiver.received();
    let mut first_success: HashMap<usize, usize> = HashMap::new();
    let mut first_arrival: HashMap<usize, usize> = HashMap::new();
    for (position, request) in received.iter().enumerate() {
        if !request.path.starts_with("/ordered") {
            continue;
        }
        let n = request.json()["data"]["changes"]["n"].as_u64().unwrap() as usize;
        first_arrival.entry(n).or_insert(position);
        if succeeded_attempt(request) {
            first_success.entry(n).or_insert(position);
        }
    }
    for n in SUBJECTS..total {
        let previous = n - SUBJECTS;
        assert!(
            first_arrival[&n] > first_success[&previous],
            "event {n} arrived (at {}) before event {previous} of its subject succeeded (at {})",
            first_arrival[&n],
            first_success[&previous]
        );
    }
    // Failures did happen, so the order was tested across retries.
    assert!(received.iter().any(|r| !succeeded_attempt(r)));
}

both_backends!(ordering_by_subject_holds_through_failures_retries_and_a_kill);

/// The receiver's rule: events with an even `changes.n` fail their first attempt.
fn succeeded_attempt(request: &util::Received) -> bool {
    let n = request.json()["data"]["changes"]["n"].as_u64().unwrap_or(0);
    !(n.is_multiple_of(2) && request.header("x-clockeye-attempt") == Some("1"))
}

fn the_cli_sets_rate_limit_and_ordering(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("1m"));
    let created = util::cli::client(
        &service,
        &[
            "endpoints",
            "add",
            "http://127.0.0.1:9/cli",
            "--rate-limit",
            "7",
            "--ordering",
            "subject",
            "--json",
        ],
    )
    .json();
    assert_eq!(created["rate_limit"], 7, "{created}");
    assert_eq!(created["ordering"], "subject");
    let id = created["id"].as_str().unwrap();
    let updated = util::cli::client(
        &service,
        &["endpoints", "update", id, "--rate-limit", "none", "--json"],
    )
    .json();
    assert_eq!(updated["rate_limit"], Value::Null, "{updated}");
    assert_eq!(updated["ordering"], "subject");
    let refused = util::cli::client(&service, &["endpoints", "update", id, "--rate-limit", "0"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("rate_limit"), "{}", refused.stderr);
}

both_backends!(the_cli_sets_rate_limit_and_ordering);
