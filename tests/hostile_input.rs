//! Small holes a hostile client or a hostile name could use: an event whose `data` gives a key
//! twice, errors that would say what an internal name resolves to, IPv4 inside IPv6 ranges, and
//! a flood of refused connections flooding the log.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use util::{ADMIN_TOKEN, Receiver, Service, eventually, local_flags};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn an_event_whose_data_gives_a_key_twice_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let body = br#"{"type":"project.created","data":{"id":"p1","name":"ok","created_by":"u1","name":{"not":"checked"}}}"#;
    let (status, answer) = service.request("POST", "/v1/events", Some(ADMIN_TOKEN), Some(body));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "repeated_key", "{answer}");
    assert_eq!(answer["error"]["field"], "data.name", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data.name"),
        "{answer}"
    );
    let batch = br#"{"events":[{"type":"project.created","data":{"id":"p1","name":"n","created_by":"u1","meta":{"a":1,"a":2}}}]}"#;
    let (status, answer) =
        service.request("POST", "/v1/events/batch", Some(ADMIN_TOKEN), Some(batch));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["field"], "events[0].data.meta.a",
        "{answer}"
    );
    let (_, events) = service.get("/v1/events");
    assert_eq!(events["data"], json!([]), "nothing stored");
}

#[test]
fn errors_never_say_what_a_name_resolved_to() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let port = receiver.url.rsplit(':').next().unwrap().to_string();
    let url = format!("http://localhost:{port}/hook");

    let mut service = Service::start(dir.path(), &["--allow-http"]);
    for url in [
        url.as_str(),
        "http://[::ffff:0:7f00:1]/",
        "http://[::ffff:7f00:1]/",
    ] {
        let (status, answer) = service.post("/v1/endpoints", &json!({"url": url, "events": ["*"]}));
        assert_eq!(status, 422, "{url}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("not public"), "{url}: {message}");
        if url.contains("localhost") {
            assert!(message.contains("localhost resolves to an address that is not public"));
            assert!(
                !message.contains("127.0.0.1") && !message.contains("::1"),
                "{message}"
            );
        }
    }
    service.terminate(WAIT);

    // Created while loopback was allowed; then the operator closed it again.
    let mut service = Service::start(dir.path(), &local_flags(""));
    service.create_endpoint(&url, &["*"], None);
    service.terminate(WAIT);
    let service = Service::start(dir.path(), &["--allow-http", "--retry-schedule", ""]);
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", WAIT);
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error_class"], "blocked_address", "{delivery}");
    let message = attempt["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{delivery}"));
    assert!(message.contains("not public"), "{message}");
    assert!(
        !message.contains("127.0.0.1") && !message.contains("::1"),
        "{message}"
    );
    assert!(receiver.received().is_empty());
}

#[test]
fn refused_connections_are_logged_at_most_once_in_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let address = service.base.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let refused_lines = |log: &str| {
        log.lines()
            .filter(|line| line.contains("WARN") && line.contains("refused"))
            .count()
    };
    // More idle connections than the service serves at once (1024), opened in waves until it
    // refuses some (idle ones are dropped after a few seconds, so on a loaded machine the
    // first wave may not be enough).
    let mut open = Vec::new();
    eventually("a line about refused connections", WAIT, || {
        for _ in 0..200 {
            let stream = TcpStream::connect(&address).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            open.push(stream);
        }
        let log = service.stderr();
        (refused_lines(&log) >= 1)
            .then_some(())
            .ok_or_else(|| format!("{} connections opened", open.len()))
    });
    // A burst more, all refused while the others are still open.
    for _ in 0..300 {
        let stream = TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        open.push(stream);
    }
    // A refused connection is closed at once: reading it ends (or is reset).
    let refused = eventually("refused connections to be closed", WAIT, || {
        let closed = open
            .iter()
            .filter(|stream| {
                let waiting = |e: &std::io::Error| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                };
                !matches!((&mut &**stream).read(&mut [0u8; 1]), Err(ref e) if waiting(e))
            })
            .count();
        (closed >= 100)
            .then_some(closed)
            .ok_or_else(|| format!("{closed} closed"))
    });
    drop(open);
    let log = service.stderr();
    let lines = refused_lines(&log);
    let allowed = 1 + started.elapsed().as_secs() as usize / 10 + 1;
    eprintln!(
        "{refused} connections closed by the service (refused, or dropped when idle), {lines} log lines about refusals"
    );
    assert!(
        lines <= allowed,
        "{lines} lines for {refused} refusals:\n{log}"
    );
    assert_eq!(service.get("/healthz").0, 200);
}
