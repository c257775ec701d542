//! A receiver that misbehaves at random (500s, resets, answers too late, hangs up halfway):
//! every delivery still ends `succeeded` or `failed` exactly per the schedule, none stuck.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use util::{Service, eventually, loopback_flags, rand_u64};

/// Reads one request (head and Content-Length body); false when the client went away.
fn read_request(reader: &mut BufReader<TcpStream>) -> bool {
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).is_ok()
}

fn chaos_receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                while read_request(&mut reader) {
                    match rand_u64() % 5 {
                        0 => {
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                        1 => {
                            let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops");
                        }
                        2 => return, // connection dropped without an answer
                        3 => {
                            // Answers long after the attempt timeout.
                            std::thread::sleep(Duration::from_millis(700));
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                            return;
                        }
                        _ => {
                            // Hangs up halfway through the answer.
                            let _ = stream.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
                            );
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_misbehaving_receiver_leaves_no_delivery_stuck_and_the_schedule_holds() {
    let dir = tempfile::tempdir().unwrap();
    let port = chaos_receiver();
    let schedule_ms = [50i64, 100, 150];
    let service = Service::start(
        dir.path(),
        &[
            &loopback_flags("50ms,100ms,150ms")[..],
            &["--attempt-timeout", "300ms", "--workers", "8"],
        ]
        .concat(),
    );
    service.create_endpoint(&format!("http://127.0.0.1:{port}/hook"), &["*"], None);
    let sample =
        json!({"type": "project.created", "data": {"id": "p", "name": "n", "created_by": "u"}});
    let mut delivery_ids = Vec::new();
    for _ in 0..4 {
        let (status, accepted) = service.post(
            "/v1/events/batch",
            &json!({"events": vec![sample.clone(); 50]}),
        );
        assert_eq!(status, 202, "{accepted}");
        for event in accepted["events"].as_array().unwrap() {
            delivery_ids.push(event["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
    }
    eventually("every delivery to finish", Duration::from_secs(60), || {
        let (_, pending) = service.get("/v1/deliveries?status=pending&limit=1");
        let (_, delivering) = service.get("/v1/deliveries?status=delivering&limit=1");
        let open = pending["data"].as_array().unwrap().len()
            + delivering["data"].as_array().unwrap().len();
        if open == 0 {
            Ok(())
        } else {
            Err(format!("pending: {pending}, delivering: {delivering}"))
        }
    });

    let (mut succeeded, mut failed) = (0, 0);
    let mut classes: std::collections::BTreeMap<String, usize> = Default::default();
    for delivery_id in &delivery_ids {
        let (_, delivery) = service.get(&format!("/v1/deliveries/{delivery_id}"));
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len() as i64,
            delivery["attempts_made"].as_i64().unwrap(),
            "{delivery}"
        );
        for (index, attempt) in attempts.iter().enumerate() {
            assert_eq!(attempt["number"], index + 1, "{delivery}");
            *classes
                .entry(
                    attempt["error_class"]
                        .as_str()
                        .unwrap_or("none")
                        .to_string(),
                )
                .or_default() += 1;
        }
        // Every gap: at least the scheduled delay after the end of the failed attempt.
        for (index, pair) in attempts.windows(2).enumerate() {
            let end = started_ms(&pair[0]) + pair[0]["duration_ms"].as_i64().unwrap();
            let gap = started_ms(&pair[1]) - end;
            assert!(
                gap >= schedule_ms[index] - 1,
                "gap {gap} ms before attempt {} of {delivery}",
                index + 2
            );
        }
        let last = attempts.last().unwrap();
        match delivery["status"].as_str().unwrap() {
            "succeeded" => {
                succeeded += 1;
                assert_eq!(last["error_class"], Value::Null, "{delivery}");
                assert!(
                    attempts[..attempts.len() - 1]
                        .iter()
                        .all(|a| a["error_class"].is_string()),
                    "{delivery}"
                );
            }
            "failed" => {
                failed += 1;
                assert_eq!(
                    attempts.len(),
                    4,
                    "failed only after the last scheduled attempt: {delivery}"
                );
                assert!(
                    attempts.iter().all(|a| a["error_class"].is_string()),
                    "{delivery}"
                );
            }
            other => panic!("delivery ended {other}: {delivery}"),
        }
    }
    eprintln!("{succeeded} succeeded, {failed} failed; attempts by outcome: {classes:?}");
    assert!(
        succeeded > 0 && classes.len() >= 3,
        "the receiver really misbehaved in several ways: {classes:?}"
    );
}

fn started_ms(attempt: &Value) -> i64 {
    let text = attempt["started_at"].as_str().unwrap();
    clockeye_webhooks::test_support::parse_rfc3339(text).unwrap()
}
