//! Name lookups against a DNS server that never answers: one workspace's hanging names must not
//! delay another workspace's deliveries, and endpoint creation answers 422 within the lookup
//! deadline instead of holding an API thread.
//!
//! Everything runs in a network namespace the test makes (`unshare -n`, only loopback), with a
//! private `/etc/resolv.conf` (`nameserver 127.0.0.1`) and `/etc/hosts` bind-mounted in a mount
//! namespace of the service's own (`unshare -m`): the DNS server is a UDP socket of this test on
//! 127.0.0.1:53, and nothing leaves the machine. The test thread joins the network namespace
//! with setns(2), which needs root; elsewhere the test says SKIPPED, and under CI=true it fails.

mod util;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use util::{BIN, Receiver, Service, eventually};

const WAIT: Duration = Duration::from_secs(30);
/// The service's lookup deadline (`net::DNS_LOOKUP_TIMEOUT`).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(why: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{why}; this test needs root (setns and mount)");
    }
    eprintln!("SKIPPED: {why}");
}

/// A process holding a network namespace with loopback up; killed on drop.
struct Namespace {
    holder: Child,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Makes a network namespace and moves the calling thread (only) into it. Threads and
/// processes it starts afterwards are in it too.
fn enter_private_network() -> Result<Namespace, String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let mut holder = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && echo ready && exec sleep 600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let namespace = Namespace { holder };
    if line.trim() != "ready" {
        return Err("unshare -n could not make a network namespace with loopback up".into());
    }
    let file = std::fs::File::open(format!("/proc/{}/ns/net", namespace.holder.id()))
        .map_err(|e| e.to_string())?;
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns: {}", std::io::Error::last_os_error()));
    }
    Ok(namespace)
}

/// A DNS server on 127.0.0.1:53 that answers NXDOMAIN while `answering`, and afterwards reads
/// every query and never answers.
struct Dns {
    answering: Arc<AtomicBool>,
    unanswered: Arc<AtomicUsize>,
}

impl Dns {
    fn start() -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:53").expect("127.0.0.1:53 in the namespace");
        let answering = Arc::new(AtomicBool::new(true));
        let unanswered = Arc::new(AtomicUsize::new(0));
        let (answering_, unanswered_) = (answering.clone(), unanswered.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while let Ok((len, from)) = socket.recv_from(&mut buffer) {
                if len < 12 {
                    continue;
                }
                if answering_.load(Ordering::SeqCst) {
                    let mut answer = buffer[..len].to_vec();
                    answer[2] = 0x80 | (buffer[2] & 0x01); // a response; recursion desired as asked
                    answer[3] = 0x80 | 0x03; // recursion available; NXDOMAIN
                    let _ = socket.send_to(&answer, from);
                } else {
                    unanswered_.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Dns {
            answering,
            unanswered,
        }
    }
}

/// The service in its own mount namespace, seeing our resolv.conf and hosts files.
fn start_service(dir: &std::path::Path, extra: &[&str]) -> Service {
    let resolv = dir.join("resolv.conf");
    // glibc's longest timeout: a lookup hangs 30 s, longer than anything here waits.
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n",
    )
    .unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost receiver.test\n").unwrap();
    let mut command = Command::new("unshare");
    command.args([
        "-m",
        "sh",
        "-c",
        &format!(
            "mount --bind '{}' /etc/resolv.conf && mount --bind '{}' /etc/hosts && exec \"$@\"",
            resolv.display(),
            hosts.display()
        ),
        "sh",
        BIN,
    ]);
    Service::start_through(command, dir, "webhooks.db", extra)
}

/// Runs `test` on a thread of its own inside a private network namespace.
fn in_private_network(test: impl FnOnce() + Send + 'static) {
    let outcome = std::thread::spawn(move || match enter_private_network() {
        Ok(_namespace) => {
            test();
            true
        }
        Err(why) => {
            unavailable(&format!("cannot make a private network namespace: {why}"));
            false
        }
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn one_workspaces_hanging_names_do_not_delay_another_workspaces_deliveries() {
    in_private_network(|| {
        let dir = tempfile::tempdir().unwrap();
        let dns = Dns::start();
        let receiver = Receiver::ok();
        let port = receiver.url.rsplit(':').next().unwrap().to_string();
        let service = start_service(
            dir.path(),
            &[
                "--allow-http",
                "--allow-network",
                "127.0.0.0/8",
                "--retry-schedule",
                "1s",
                "--attempt-timeout",
                "2s",
                "--workers",
                "8",
            ],
        );
        // Accepted while the names do not exist (a name that does not resolve yet is allowed).
        for index in 0..8 {
            service.create_endpoint(
                &format!("http://hang-{index}.example/hook"),
                &["*"],
                Some("noisy"),
            );
        }
        dns.answering.store(false, Ordering::SeqCst);

        // One noisy event a second, until the noisy names' lookups hang (the "does not exist"
        // answers are cached for a few seconds first).
        let noisy_event = || {
            service.send_sample("project.created", json!({"workspace_id": "noisy"}));
        };
        let mut last_noisy = Instant::now();
        noisy_event();
        eventually("lookups of the noisy names to hang", WAIT, || {
            if last_noisy.elapsed() >= Duration::from_secs(1) {
                noisy_event();
                last_noisy = Instant::now();
            }
            let unanswered = dns.unanswered.load(Ordering::SeqCst);
            (unanswered >= 8)
                .then_some(())
                .ok_or_else(|| format!("{unanswered} unanswered queries"))
        });

        // The quiet workspace's endpoint, made now: its name (in /etc/hosts) is looked up
        // while the noisy names hang.
        service.create_endpoint(
            &format!("http://receiver.test:{port}/hook"),
            &["*"],
            Some("quiet"),
        );
        // Five quiet events while the noisy ones go on at one a second.
        let started = Instant::now();
        let mut quiet_sent = 0;
        let mut last_quiet = Instant::now() - Duration::from_secs(1);
        let received = eventually("the quiet workspace's 5 events", WAIT, || {
            if last_noisy.elapsed() >= Duration::from_secs(1) {
                noisy_event();
                last_noisy = Instant::now();
            }
            if quiet_sent < 5 && last_quiet.elapsed() >= Duration::from_millis(500) {
                service.send_sample("project.created", json!({"workspace_id": "quiet"}));
                quiet_sent += 1;
                last_quiet = Instant::now();
            }
            let received = receiver.received().len();
            (received >= 5)
                .then_some(received)
                .ok_or_else(|| format!("{received} of 5 received"))
        });
        let took = started.elapsed();
        eprintln!(
            "quiet workspace: {received} of 5 events received in {took:?} beside 8 hanging names"
        );
        // Sent over 2 s; each delivered at its first attempt, none waiting out a lookup.
        assert!(took < Duration::from_secs(8), "took {took:?}");
        let (_, deliveries) = service.get("/v1/deliveries?workspace_id=quiet&limit=10");
        assert_eq!(
            deliveries["data"].as_array().unwrap().len(),
            5,
            "{deliveries}"
        );
        for delivery in deliveries["data"].as_array().unwrap() {
            let id = delivery["id"].as_str().unwrap();
            let delivery = service.wait_for_delivery_status(id, "succeeded", WAIT);
            assert_eq!(delivery["attempts_made"], 1, "{delivery}");
        }

        // The noisy deliveries fail as `dns`, saying why, without naming any address.
        let (_, noisy) = service.get("/v1/deliveries?workspace_id=noisy&limit=50");
        let attempted: Vec<_> = noisy["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["attempts_made"].as_i64() > Some(0))
            .collect();
        assert!(!attempted.is_empty(), "{noisy}");
        let id = attempted[0]["id"].as_str().unwrap();
        let (_, delivery) = service.get(&format!("/v1/deliveries/{id}"));
        let attempt = &delivery["attempts"][0];
        assert_eq!(attempt["error_class"], "dns", "{delivery}");
        assert!(
            attempt["error"].as_str().unwrap().starts_with("dns: "),
            "{delivery}"
        );
    });
}

#[test]
fn creating_an_endpoint_at_a_hanging_name_answers_422_within_the_deadline() {
    in_private_network(|| {
        let dir = tempfile::tempdir().unwrap();
        let dns = Dns::start();
        dns.answering.store(false, Ordering::SeqCst);
        let service = start_service(dir.path(), &["--allow-http"]);

        // PATCH too: an endpoint at a literal address moved to a hanging name.
        let (id, _) = service.create_endpoint("http://93.184.216.34/hook", &["*"], Some("p"));
        let started = Instant::now();
        let (status, answer) = service.patch(
            &format!("/v1/endpoints/{id}"),
            &json!({"url": "http://hang-patch.example/hook"}),
        );
        let took = started.elapsed();
        assert_eq!(status, 422, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("could not resolve hang-patch.example within 5000ms"),
            "{message}"
        );
        assert!(took < LOOKUP_TIMEOUT + Duration::from_secs(2), "{took:?}");
        let (_, endpoint) = service.get(&format!("/v1/endpoints/{id}"));
        assert_eq!(endpoint["url"], "http://93.184.216.34/hook", "unchanged");

        // 30 creations at once at hanging names, while /healthz is asked every 100 ms.
        let stop = AtomicBool::new(false);
        let (answers, health_worst) = std::thread::scope(|scope| {
            let health = scope.spawn(|| {
                let mut worst = Duration::ZERO;
                while !stop.load(Ordering::SeqCst) {
                    let asked = Instant::now();
                    assert_eq!(service.get("/healthz").0, 200);
                    worst = worst.max(asked.elapsed());
                    std::thread::sleep(Duration::from_millis(100));
                }
                worst
            });
            let creations: Vec<_> = (0..30)
                .map(|index| {
                    let service = &service;
                    scope.spawn(move || {
                        let started = Instant::now();
                        let answer = service.post(
                            "/v1/endpoints",
                            &json!({"url": format!("http://hang-{index}.example/hook"), "events": ["*"], "workspace_id": "w"}),
                        );
                        (answer, started.elapsed())
                    })
                })
                .collect();
            let answers: Vec<_> = creations.into_iter().map(|c| c.join().unwrap()).collect();
            stop.store(true, Ordering::SeqCst);
            (answers, health.join().unwrap())
        });
        let mut timed_out = 0;
        for ((status, answer), took) in &answers {
            assert_eq!(*status, 422, "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            if message.contains("could not resolve") {
                timed_out += 1;
            } else {
                assert!(message.contains("too many name lookups"), "{message}");
            }
            assert!(
                *took < LOOKUP_TIMEOUT + Duration::from_secs(3),
                "{took:?}: {answer}"
            );
        }
        eprintln!(
            "30 creations at hanging names: {timed_out} waited out the lookup deadline, {} refused at once; slowest /healthz {health_worst:?}",
            answers.len() - timed_out
        );
        assert!(
            (1..=4).contains(&timed_out),
            "{timed_out} lookups ran at once"
        );
        assert!(health_worst < Duration::from_secs(2), "{health_worst:?}");
        let (_, endpoints) = service.get("/v1/endpoints?workspace_id=w");
        assert_eq!(endpoints["data"], json!([]));
    });
}
