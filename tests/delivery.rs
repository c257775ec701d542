//! The delivery engine end to end: the real binary, a real receiver, a real database file.

mod util;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use util::{Backend, Receiver, Reply, Service, eventually, local_flags, loopback_flags};

const WAIT: Duration = Duration::from_secs(15);

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn delivers_a_signed_event_with_every_documented_header(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    let (endpoint_id, secret) = service.create_endpoint(
        &format!("{}/hook", receiver.url),
        &["time_entry.created"],
        None,
    );

    let accepted = service.send_sample("time_entry.created", json!({}));
    let event_id = accepted["id"].as_str().unwrap();
    assert!(event_id.starts_with("evt_"), "{accepted}");
    assert_eq!(
        accepted["deliveries"][0]["endpoint_id"],
        endpoint_id.as_str()
    );
    let delivery_id = accepted["deliveries"][0]["id"].as_str().unwrap();

    let request = receiver.wait_for(1, WAIT).remove(0);
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("ClockEye-Webhooks/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        request.header("x-clockeye-event"),
        Some("time_entry.created")
    );
    assert_eq!(request.header("x-clockeye-event-id"), Some(event_id));
    assert_eq!(request.header("x-clockeye-delivery"), Some(delivery_id));
    assert_eq!(request.header("x-clockeye-attempt"), Some("1"));
    assert_eq!(request.header("webhook-id"), Some(event_id));

    // The seed's signature: hex HMAC-SHA256 keyed by the secret string, over the raw body.
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &request.body))
    );
    assert_eq!(
        request.header("x-clockeye-signature"),
        Some(expected.as_str())
    );

    // Standard Webhooks: key is the base64 after whsec_, message is id.timestamp.body.
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - timestamp).abs() < 60,
        "timestamp {timestamp} vs now {now}"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    assert_eq!(key.len(), 32);
    let mut message = format!("{event_id}.{timestamp}.").into_bytes();
    message.extend_from_slice(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &message))
    );
    assert_eq!(request.header("webhook-signature"), Some(expected.as_str()));

    // Body: exactly id, type, created_at, data, in that order; data as sent.
    let body = String::from_utf8(request.body.clone()).unwrap();
    let data = clockeye_webhooks::catalog::sample("time_entry.created").unwrap();
    let expected_body = format!(
        r#"{{"id":"{event_id}","type":"time_entry.created","created_at":"{}","data":{data}}}"#,
        accepted["created_at"].as_str().unwrap()
    );
    assert_eq!(body, expected_body);
    let created_at = accepted["created_at"].as_str().unwrap();
    assert!(
        created_at.len() == 20 && created_at.ends_with('Z'),
        "{created_at}"
    );

    let delivery = service.wait_for_delivery_status(delivery_id, "succeeded", WAIT);
    assert_eq!(delivery["attempts_made"], 1);
    assert_eq!(delivery["attempts"][0]["status_code"], 200);
    assert_eq!(delivery["attempts"][0]["error_class"], Value::Null);
}

both_backends!(delivers_a_signed_event_with_every_documented_header);

fn an_event_goes_only_to_its_workspace_and_subscribed_endpoints(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    let (acme_all, _) =
        service.create_endpoint(&format!("{}/acme-all", receiver.url), &["*"], Some("acme"));
    let (_globex_all, _) = service.create_endpoint(
        &format!("{}/globex-all", receiver.url),
        &["*"],
        Some("globex"),
    );
    let (_acme_users, _) = service.create_endpoint(
        &format!("{}/acme-users", receiver.url),
        &["user.invited"],
        Some("acme"),
    );

    let accepted = service.send_sample("project.created", json!({"workspace_id": "acme"}));
    assert_eq!(accepted["workspace_id"], "acme");
    let deliveries = accepted["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{accepted}");
    assert_eq!(deliveries[0]["endpoint_id"], acme_all.as_str());
    service.wait_for_delivery_status(deliveries[0]["id"].as_str().unwrap(), "succeeded", WAIT);

    // A second event, to the other workspace, as a marker: once it has arrived, the first
    // could not have gone anywhere else unseen.
    let marker = service.send_sample("user.invited", json!({"workspace_id": "globex"}));
    service.first_delivery(&marker, "succeeded", WAIT);
    let paths: Vec<String> = receiver.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, vec!["/acme-all", "/globex-all"]);
    let (_, listed) = service.get("/v1/deliveries?limit=10");
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
}

both_backends!(an_event_goes_only_to_its_workspace_and_subscribed_endpoints);

fn a_known_event_id_returns_the_original_and_queues_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);

    let first = service.send_sample("project.created", json!({"id": "evt_order_42"}));
    assert_eq!(first["id"], "evt_order_42");
    let data = json!({"id": "other", "name": "Changed", "created_by": "u2"});
    let (status, again) = service.post(
        "/v1/events",
        &json!({"type": "project.created", "id": "evt_order_42", "data": data}),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first);

    service.first_delivery(&first, "succeeded", WAIT);
    let (_, event) = service.get("/v1/events/evt_order_42");
    assert_eq!(
        event["data"]["name"], "Website redesign",
        "the original data is kept: {event}"
    );
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1);
    let (_, events) = service.get("/v1/events");
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    assert_eq!(receiver.received().len(), 1);

    // Ids are per workspace: another workspace's use of the id is invisible (tests/event_ids.rs).
    let (status, other) = service.post("/v1/events", &json!({"type": "project.created", "id": "evt_order_42", "workspace_id": "other", "data": data}));
    assert_eq!(status, 202, "{other}");
    assert_eq!(other["workspace_id"], "other");
}

both_backends!(a_known_event_id_returns_the_original_and_queues_nothing);

fn a_batch_is_stored_whole_or_not_at_all(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let sample =
        |t: &str| json!({"type": t, "data": clockeye_webhooks::catalog::sample(t).unwrap()});

    let mut bad = sample("time_entry.created");
    bad["data"].as_object_mut().unwrap().remove("user_id");
    let (status, refused) = service.post(
        "/v1/events/batch",
        &json!({"events": [sample("user.invited"), bad, sample("project.created")]}),
    );
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "events[1].data.user_id");
    let (_, events) = service.get("/v1/events");
    assert_eq!(
        events["data"],
        json!([]),
        "nothing of a refused batch is stored"
    );

    let (status, accepted) = service.post("/v1/events/batch", &json!({"events": [sample("user.invited"), sample("time_entry.created"), sample("project.created")]}));
    assert_eq!(status, 202, "{accepted}");
    let accepted = accepted["events"].as_array().unwrap();
    assert_eq!(accepted.len(), 3);
    let received = receiver.wait_for(3, WAIT);
    let mut types: Vec<String> = received
        .iter()
        .map(|r| r.header("x-clockeye-event").unwrap().to_string())
        .collect();
    types.sort();
    assert_eq!(
        types,
        vec!["project.created", "time_entry.created", "user.invited"]
    );
}

both_backends!(a_batch_is_stored_whole_or_not_at_all);

fn retries_follow_the_schedule_then_fail_and_a_manual_retry_sends_again(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(|_| Reply {
        body: "database down".into(),
        ..Reply::status(500)
    });
    let service = Service::start_backend(backend, dir.path(), &local_flags("300ms,600ms,900ms"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let accepted = service.send_sample("time_entry.deleted", json!({}));
    let delivery_id = accepted["deliveries"][0]["id"].as_str().unwrap();

    let delivery = service.wait_for_delivery_status(delivery_id, "failed", WAIT);
    let received = receiver.received();
    assert_eq!(
        received.len(),
        4,
        "schedule of 3 delays = 4 attempts: {delivery}"
    );
    let numbers: Vec<&str> = received
        .iter()
        .map(|r| r.header("x-clockeye-attempt").unwrap())
        .collect();
    assert_eq!(numbers, vec!["1", "2", "3", "4"]);
    for (index, delay_ms) in [300u128, 600, 900].into_iter().enumerate() {
        let gap = received[index + 1]
            .at
            .duration_since(received[index].at)
            .as_millis();
        assert!(
            gap >= delay_ms,
            "gap before attempt {} was {gap} ms, less than {delay_ms} ms",
            index + 2
        );
        assert!(
            gap < delay_ms + 750,
            "gap before attempt {} was {gap} ms, far past {delay_ms} ms",
            index + 2
        );
    }
    assert!(
        received.iter().all(|r| r.body == received[0].body),
        "every attempt sends the same bytes"
    );
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    for attempt in attempts {
        assert_eq!(attempt["status_code"], 500);
        assert_eq!(attempt["error_class"], "http_status");
        assert_eq!(attempt["response_excerpt"], "database down");
    }
    assert_eq!(delivery["next_attempt_at"], Value::Null);

    let (status, retried) =
        service.post(&format!("/v1/deliveries/{delivery_id}/retry"), &json!({}));
    assert_eq!(status, 202, "{retried}");
    let fifth = receiver.wait_for(5, WAIT).remove(4);
    assert_eq!(fifth.header("x-clockeye-attempt"), Some("5"));
    assert_eq!(fifth.body, received[0].body);
    let delivery = service.wait_for_delivery_status(delivery_id, "failed", WAIT);
    assert_eq!(delivery["attempts_made"], 5);
}

both_backends!(retries_follow_the_schedule_then_fail_and_a_manual_retry_sends_again);

fn a_success_after_failures_ends_the_delivery(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let receiver = Receiver::start(move |_| {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reply::status(if n < 2 { 503 } else { 204 })
    });
    let service = Service::start_backend(backend, dir.path(), &local_flags("100ms,100ms,100ms"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let accepted = service.send_sample("user.activated", json!({}));
    let delivery = service.first_delivery(&accepted, "succeeded", WAIT);
    assert_eq!(delivery["attempts_made"], 3);
    let statuses: Vec<&Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(statuses, vec![&json!(503), &json!(503), &json!(204)]);
}

both_backends!(a_success_after_failures_ends_the_delivery);

fn redirects_are_never_followed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(|request| {
        if request.path == "/hook" {
            Reply {
                headers: vec![("Location".into(), "/elsewhere".into())],
                ..Reply::status(302)
            }
        } else {
            Reply::status(200)
        }
    });
    let service = Service::start_backend(backend, dir.path(), &local_flags("100ms"));
    service.create_endpoint(&format!("{}/hook", receiver.url), &["*"], None);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", WAIT);
    assert_eq!(delivery["attempts_made"], 2);
    for attempt in delivery["attempts"].as_array().unwrap() {
        assert_eq!(attempt["status_code"], 302);
        assert_eq!(attempt["error_class"], "redirect");
    }
    assert!(
        receiver.received().iter().all(|r| r.path == "/hook"),
        "the Location was never requested"
    );
}

both_backends!(redirects_are_never_followed);

fn timeouts_and_refused_connections_are_recorded_as_such(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let slow = Receiver::start(|_| Reply {
        delay: Duration::from_millis(1500),
        ..Reply::status(200)
    });
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let service = Service::start_backend(
        backend,
        dir.path(),
        &[&loopback_flags("")[..], &["--attempt-timeout", "300ms"]].concat(),
    );
    service.create_endpoint(&format!("{}/slow", slow.url), &["*"], Some("slow"));
    service.create_endpoint(
        &format!("http://127.0.0.1:{closed_port}/closed"),
        &["*"],
        Some("closed"),
    );
    let to_slow = service.send_sample("project.created", json!({"workspace_id": "slow"}));
    let to_closed = service.send_sample("project.created", json!({"workspace_id": "closed"}));

    let delivery = service.first_delivery(&to_slow, "failed", WAIT);
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error_class"], "timeout", "{delivery}");
    assert!(
        attempt["duration_ms"].as_i64().unwrap() < 1400,
        "the attempt was cut at the timeout: {attempt}"
    );
    let delivery = service.first_delivery(&to_closed, "failed", WAIT);
    assert_eq!(
        delivery["attempts"][0]["error_class"], "connect",
        "{delivery}"
    );
    assert_eq!(delivery["attempts"][0]["status_code"], Value::Null);
}

both_backends!(timeouts_and_refused_connections_are_recorded_as_such);

fn a_disabled_endpoint_gets_nothing_until_enabled_again(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &local_flags("1s"));
    let (paused, _) = service.create_endpoint(&format!("{}/paused", receiver.url), &["*"], None);
    let (_live, _) = service.create_endpoint(&format!("{}/live", receiver.url), &["*"], None);
    let (status, patched) = service.patch(
        &format!("/v1/endpoints/{paused}"),
        &json!({"enabled": false}),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert!(patched["disabled_reason"].is_string());

    let accepted = service.send_sample("project.created", json!({}));
    let deliveries = accepted["deliveries"].as_array().unwrap();
    let paused_delivery = deliveries
        .iter()
        .find(|d| d["endpoint_id"] == paused.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap();
    let live_delivery = deliveries
        .iter()
        .find(|d| d["endpoint_id"] != paused.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap();
    // The same event reached the live endpoint; the paused one still waits.
    service.wait_for_delivery_status(live_delivery, "succeeded", WAIT);
    let (_, waiting) = service.get(&format!("/v1/deliveries/{paused_delivery}"));
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert_eq!(waiting["attempts_made"], 0);
    assert!(receiver.received().iter().all(|r| r.path == "/live"));

    let (status, _) = service.patch(
        &format!("/v1/endpoints/{paused}"),
        &json!({"enabled": true}),
    );
    assert_eq!(status, 200);
    service.wait_for_delivery_status(paused_delivery, "succeeded", WAIT);
    eventually("the paused endpoint to receive", WAIT, || {
        if receiver.received().iter().any(|r| r.path == "/paused") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
}

both_backends!(a_disabled_endpoint_gets_nothing_until_enabled_again);

#[test]
fn an_untrusted_certificate_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    // An HTTPS receiver on loopback whose certificate no public root signed.
    let (mut python, port) =
        https_receiver(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let service = Service::start(
        dir.path(),
        &["--allow-network", "127.0.0.0/8", "--retry-schedule", ""],
    );
    service.create_endpoint(&format!("https://127.0.0.1:{}/hook", port), &["*"], None);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", WAIT);
    assert_eq!(delivery["attempts"][0]["error_class"], "tls", "{delivery}");
    let _ = python.kill();
    let _ = python.wait();
}

/// An HTTPS receiver on 127.0.0.1 (python's ssl) with the given certificate chain; returns its
/// process and port.
fn https_receiver(
    cert_pem: &std::path::Path,
    key_pem: &std::path::Path,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut python = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(cert_pem)
        .arg(key_pem)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    (python, port.trim().to_string())
}

#[test]
fn a_receiver_signed_by_a_ca_from_ca_file_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    // A throwaway CA, and a certificate for 127.0.0.1 that it signs.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("leaf.key"), leaf_key.serialize_pem()).unwrap();
    let (mut python, port) =
        https_receiver(&dir.path().join("leaf.pem"), &dir.path().join("leaf.key"));

    let ca_file = dir.path().join("ca.pem");
    let flags = [
        "--allow-network",
        "127.0.0.0/8",
        "--retry-schedule",
        "",
        "--ca-file",
        ca_file.to_str().unwrap(),
    ];
    let service = Service::start(dir.path(), &flags);
    service.create_endpoint(&format!("https://127.0.0.1:{port}/hook"), &["*"], None);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "succeeded", WAIT);
    assert_eq!(delivery["attempts"][0]["status_code"], 200, "{delivery}");

    // The same receiver without --ca-file: the attempt fails as `tls`.
    let other = tempfile::tempdir().unwrap();
    let service = Service::start(
        other.path(),
        &["--allow-network", "127.0.0.0/8", "--retry-schedule", ""],
    );
    service.create_endpoint(&format!("https://127.0.0.1:{port}/hook"), &["*"], None);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", WAIT);
    assert_eq!(delivery["attempts"][0]["error_class"], "tls", "{delivery}");
    let _ = python.kill();
    let _ = python.wait();
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let output = std::process::Command::new(util::BIN)
        .args(["serve", "--ca-file"])
        .arg(dir.path().join("junk.pem"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--ca-file") && stderr.contains("holds no certificate"),
        "{stderr}"
    );
}
