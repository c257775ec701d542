//! A slow, idle or abusive client cannot hold the API: idle sockets are dropped, request heads
//! are capped in size, header count and time, and others are served meanwhile.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::{ADMIN_TOKEN, Service, eventually};

fn served_quickly(service: &Service) {
    let started = Instant::now();
    let (status, _) = service.request("GET", "/v1/endpoints", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a normal request waited {:?}",
        started.elapsed()
    );
}

fn address(service: &Service) -> String {
    service.base.trim_start_matches("http://").to_string()
}

#[test]
fn idle_connections_do_not_block_others_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    // More idle connections than API threads (24), yet under the per-address cap (128), which
    // `http_edge.rs` tests.
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(address(&service)).unwrap())
        .collect();
    served_quickly(&service);
    // The server drops a client that sent nothing (after its 5 s socket timeout).
    let socket = &mut idle[0];
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    let read = socket.read(&mut buffer);
    assert!(read.is_ok(), "the server closed or answered: {read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "dropped after {:?}",
        started.elapsed()
    );
    // And the listener still takes new connections after an idle spell.
    served_quickly(&service);
}

#[test]
fn ten_thousand_headers_get_431_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let mut head = String::from("GET /v1/endpoints HTTP/1.1\r\nHost: x\r\n");
    for index in 0..10_000 {
        head.push_str(&format!("X-Filler-{index}: y\r\n"));
    }
    head.push_str("\r\n");
    let answer = send_raw(&service, &head);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(
        answer.is_empty() || answer.contains(r#"{"error":{"code":"request_head_too_large""#),
        "{answer}"
    );
    served_quickly(&service);

    let huge = format!(
        "GET /v1/endpoints HTTP/1.1\r\nX-Long: {}\r\n\r\n",
        "z".repeat(100_000)
    );
    let answer = send_raw(&service, &huge);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    served_quickly(&service);
}

/// Writes raw bytes on a new connection and reads until the server closes it. The server may
/// close before everything is written; that is fine.
fn send_raw(service: &Service, request: &str) -> String {
    let mut socket = TcpStream::connect(address(service)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = socket.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_head_sent_byte_by_byte_does_not_hold_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let mut trickle = TcpStream::connect(address(&service)).unwrap();
    let head = format!(
        "GET /v1/endpoints HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nX-Slow: {}\r\n\r\n",
        "s".repeat(2000)
    );
    let writer = std::thread::spawn(move || {
        // 20 ms per byte: the whole head would take ~40 s; the server's 10 s head deadline cuts it.
        for byte in head.as_bytes() {
            if trickle.write_all(&[*byte]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    for _ in 0..5 {
        served_quickly(&service);
    }
    eventually(
        "the trickling client to be cut off",
        Duration::from_secs(30),
        || {
            if writer.is_finished() {
                Ok(())
            } else {
                Err("still writing".to_string())
            }
        },
    );
    assert!(
        writer.join().unwrap(),
        "the server closed the trickling connection before the head ended"
    );
}

#[test]
fn bodies_trickled_by_many_clients_do_not_hold_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // More slow senders than the API has threads, each promising a body it sends a byte at a time.
    let senders: Vec<_> = (0..40)
        .map(|_| {
            let (address, stop) = (address(&service), stop.clone());
            std::thread::spawn(move || {
                let mut socket = TcpStream::connect(address).unwrap();
                let head = format!(
                    "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 100000\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if socket.write_all(b" ").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500)); // let the slow senders connect: fault setup, not a wait for state
    for _ in 0..5 {
        served_quickly(&service);
        let (status, _) = service.request("GET", "/healthz", None, None);
        assert_eq!(status, 200);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for sender in senders {
        sender.join().unwrap();
    }
}
