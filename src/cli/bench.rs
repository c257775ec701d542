//! `clockeye-webhooks bench`: starts the real service (this same executable, `serve`) on a fresh
//! database in a temp dir with a fast receiver on loopback, drives it, and prints figures as a
//! table and as JSON. A measuring tool, not a test: it asserts nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token-0123456789";
/// Concurrent clients of the single-event ingest figure.
const INGEST_CLIENTS: usize = 16;
/// Events per batch request, and clients sending batches.
const BATCH_EVENTS: usize = 500;
const BATCH_CLIENTS: usize = 4;
/// Receiver threads (tiny_http) and how long the bench waits for all deliveries.
const RECEIVER_THREADS: usize = 8;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The scenarios, as `--only` names them.
pub const SCENARIOS: &[&str] = &[
    "ingest",
    "ingest-fanout10",
    "fanout1",
    "fanout10",
    "latency",
    "slow-receiver",
    "two-write-receiver",
    "delete",
];
/// Per-request delay of the slow receiver (a real network's round trip plus a little work),
/// and how many deliveries it is sent.
const SLOW_RECEIVER_DELAY: Duration = Duration::from_millis(50);
const SLOW_RECEIVER_DELIVERIES: usize = 4_000;
/// Rate of the two-write receiver's latency run.
const TWO_WRITE_RATE: u64 = 200;

/// What `bench` measures; each count has a flag (defaults from `Options::default`).
#[derive(Debug, Clone, clap::Args)]
#[command(
    override_usage = "clockeye-webhooks bench [--runs N] [--deliveries N] [--ingest-events N] [--latency-seconds S] [--serve-flag FLAG]... [--only SCENARIO]...\n       clockeye-webhooks bench --soak-minutes M [--soak-rate EVENTS_PER_S] [--serve-flag FLAG]...",
    after_help = AFTER_HELP
)]
pub struct Options {
    /// Events for the single-event ingest figure.
    #[arg(long, value_name = "N", default_value_t = Options::default().ingest_events, value_parser = positive, help = "events for the single-event ingest figure")]
    pub ingest_events: usize,
    /// Deliveries for each end-to-end figure (fan-out 1 and 10).
    #[arg(long, value_name = "N", default_value_t = Options::default().deliveries, value_parser = positive, help = "deliveries for each end-to-end figure (fan-out 1 and 10)")]
    pub deliveries: usize,
    /// Seconds of each steady-rate latency run.
    #[arg(long, value_name = "S", default_value_t = Options::default().latency_seconds, value_parser = positive_u64, help = "seconds of each steady-rate latency run")]
    pub latency_seconds: u64,
    /// Whole repetitions; the table shows medians.
    #[arg(long, value_name = "N", default_value_t = Options::default().runs, value_parser = positive, help = "whole repetitions; the table shows medians")]
    pub runs: usize,
    /// Extra flags for `serve` (e.g. `--workers 16`), one per `--serve-flag`.
    #[arg(
        long = "serve-flag",
        value_name = "FLAG",
        allow_hyphen_values = true,
        help = "an extra flag for serve (e.g. --serve-flag --workers --serve-flag 16); repeatable"
    )]
    pub serve_flags: Vec<String>,
    /// When set: instead of the figures, a soak of this many minutes at `soak_rate`.
    #[arg(long, value_name = "M", value_parser = positive_u64, help = "instead of the figures, a soak of this many minutes at --soak-rate")]
    pub soak_minutes: Option<u64>,
    /// Events per second of the soak.
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = Options::default().soak_rate, value_parser = positive_u64, help = "events per second of the soak")]
    pub soak_rate: u64,
    /// When not empty: run only the scenarios named here (`--only NAME`, repeatable; the names
    /// are `SCENARIOS`).
    #[arg(long, value_name = "SCENARIO", value_parser = scenario, help = "run only this scenario (repeatable): ingest, ingest-fanout10, fanout1, fanout10, latency, slow-receiver, two-write-receiver, delete")]
    pub only: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ingest_events: 20_000,
            deliveries: 50_000,
            latency_seconds: 5,
            runs: 1,
            serve_flags: Vec::new(),
            soak_minutes: None,
            soak_rate: 200,
            only: Vec::new(),
        }
    }
}

fn positive(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("\"{value}\" is not a positive whole number"))
}

fn scenario(value: &str) -> Result<String, String> {
    if SCENARIOS.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "\"{value}\" is not a scenario; scenarios: {}",
            SCENARIOS.join(", ")
        ))
    }
}

fn positive_u64(value: &str) -> Result<u64, String> {
    positive(value).map(|n| n as u64)
}

const AFTER_HELP: &str = "Starts `clockeye-webhooks serve` on a fresh database per scenario, with a receiver on 127.0.0.1,
and prints: single-event and batch ingest rates (also single events to 10 endpoints each),
end-to-end deliveries/s at fan-out 1 and 10, ingest-ack-to-arrival latency at 200 and 500
events/s, deliveries/s to one receiver taking 50 ms per request, latency at 200 events/s to a
keep-alive receiver answering in two writes, the worst ingest answer while an endpoint with
100,000 deliveries is deleted, peak RSS, database size per 100,000 delivered events, binary
size. With --runs N it prints the median of N runs, and each run's JSON.
--only SCENARIO (repeatable) runs only those: ingest, ingest-fanout10, fanout1, fanout10,
latency, slow-receiver, two-write-receiver, delete.

With --soak-minutes it instead sends a steady stream (default 200 events/s) for M minutes and
prints, each minute, events sent and delivered, the service's RSS and the database size.

examples: cargo run --release -- bench --runs 3
          cargo run --release -- bench --soak-minutes 10";

/// A receiver that answers 200 at once and notes when each event id arrived.
struct Receiver {
    url: String,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    count: Arc<AtomicUsize>,
    /// None for a `raw` receiver (its threads end with the bench).
    server: Option<Arc<tiny_http::Server>>,
}

impl Receiver {
    fn start() -> Receiver {
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind a loopback receiver"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..RECEIVER_THREADS {
            let (server, arrivals, count) = (server.clone(), arrivals.clone(), count.clone());
            thread::spawn(move || {
                while let Ok(mut request) = server.recv() {
                    let now = Instant::now();
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let id = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("X-ClockEye-Event-Id"))
                        .map(|h| h.value.to_string());
                    let path = request.url().to_string();
                    let _ = request.respond(tiny_http::Response::empty(200));
                    if let Some(id) = id {
                        arrivals
                            .lock()
                            .expect("arrivals")
                            .entry(format!("{path} {id}"))
                            .or_insert(now);
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Receiver {
            url: format!("http://127.0.0.1:{port}"),
            arrivals,
            count,
            server: Some(server),
        }
    }

    /// A keep-alive receiver with a thread per connection that waits `delay` before each
    /// answer, and writes the answer's head and body in two writes when `two_writes` (as
    /// Python's `http.server` and many small frameworks do; Nagle stays on, as there).
    fn raw(delay: Duration, two_writes: bool) -> Receiver {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback receiver");
        let port = listener.local_addr().expect("an address").port();
        let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let (accepted_arrivals, accepted_count) = (arrivals.clone(), count.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (arrivals, count) = (accepted_arrivals.clone(), accepted_count.clone());
                thread::spawn(move || {
                    let _ = serve_raw(stream, delay, two_writes, &arrivals, &count);
                });
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}"),
            arrivals,
            count,
            server: None,
        }
    }

    fn reset(&self) {
        self.arrivals.lock().expect("arrivals").clear();
        self.count.store(0, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            for _ in 0..RECEIVER_THREADS {
                server.unblock();
            }
        }
    }
}

/// One keep-alive connection of a `raw` receiver: requests until the peer closes.
fn serve_raw(
    stream: TcpStream,
    delay: Duration,
    two_writes: bool,
    arrivals: &Mutex<HashMap<String, Instant>>,
    count: &AtomicUsize,
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        let (mut length, mut id) = (0usize, None);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("x-clockeye-event-id") {
                    id = Some(value.trim().to_string());
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Some(id) = id {
            arrivals
                .lock()
                .expect("arrivals")
                .entry(format!("{path} {id}"))
                .or_insert(now);
        }
        count.fetch_add(1, Ordering::Relaxed);
        if !delay.is_zero() {
            thread::sleep(delay); // the receiver's simulated work and distance
        }
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n";
        if two_writes {
            writer.write_all(head)?;
            writer.write_all(b"ok")?;
        } else {
            writer.write_all(&[&head[..], b"ok"].concat())?;
        }
    }
}

/// One `serve` process on a fresh database.
struct Service {
    child: Child,
    base: String,
    dir: PathBuf,
    agent: ureq::Agent,
}

impl Service {
    fn start(exe: &Path, dir: PathBuf, extra: &[String]) -> Service {
        std::fs::create_dir_all(&dir).expect("create the bench directory");
        let mut child = Command::new(exe)
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                TOKEN,
                "--allow-http",
                "--allow-network",
                "127.0.0.0/8",
            ])
            .arg("--db")
            .arg(dir.join("bench.db"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("serve.log")).expect("create serve.log"))
            .spawn()
            .expect("start clockeye-webhooks serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve printed {first:?}"))
            .to_string();
        thread::spawn(move || for _ in lines {});
        Service {
            child,
            base,
            dir,
            agent: client(),
        }
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        post(&self.agent, &self.base, path, body)
    }

    fn peak_rss_kib(&self) -> u64 {
        self.memory_kib("VmHWM:")
    }

    /// A `/proc/PID/status` memory line of the service, in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn database_bytes(&self) -> u64 {
        ["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|name| std::fs::metadata(self.dir.join(name)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn endpoint(&self, url: &str) {
        let (status, answer) = self.post(
            "/v1/endpoints",
            &json!({"url": url, "events": ["*"]}).to_string(),
        );
        assert_eq!(status, 201, "creating an endpoint: {answer}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let peak_rss_kib = self.peak_rss_kib();
        // SIGTERM, so the service logs its scheduler counters; they go to the bench's stderr.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|line| line.contains("scheduler stopped")) {
            let name = self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let counters = line.split("scheduler stopped: ").nth(1).unwrap_or(line);
            eprintln!(
                "bench: {name}: peak_rss_mib={:.1} {counters}",
                peak_rss_kib as f64 / 1024.0
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .build()
        .into()
}

/// A lean HTTP/1.1 keep-alive client for generating load. The bench runs on the cores it
/// measures, so its own per-request cost must stay small: one write per request, no pool.
struct RawClient {
    address: String,
    stream: Option<BufReader<TcpStream>>,
}

impl RawClient {
    fn new(base: &str) -> RawClient {
        RawClient {
            address: base.trim_start_matches("http://").to_string(),
            stream: None,
        }
    }

    fn post(&mut self, path: &str, body: &str) -> (u16, Value) {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        if self.stream.is_none() {
            // Like an ordinary client: Nagle and delayed ACKs stay on. (With TCP_NODELAY here the
            // bench once hid a 40 ms stall of the service's two-write answers.)
            let stream = TcpStream::connect(&self.address).expect("connect to the service");
            self.stream = Some(BufReader::new(stream));
        }
        // No retry: a POST that may have been taken must not be sent twice.
        match self.exchange(&request) {
            Ok(answer) => answer,
            Err(error) => panic!("POST {path}: {error}"),
        }
    }

    fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, Value)> {
        let stream = self.stream.as_mut().expect("connected");
        stream.get_mut().write_all(request)?;
        let mut line = String::new();
        stream.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status line"))?;
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            stream.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                stream.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk"))?;
                let start = body.len();
                body.resize(start + size, 0);
                stream.read_exact(&mut body[start..])?;
                line.clear();
                stream.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            body.resize(length, 0);
            stream.read_exact(&mut body)?;
        }
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

fn post(agent: &ureq::Agent, base: &str, path: &str, body: &str) -> (u16, Value) {
    let mut response = agent
        .post(&format!("{base}{path}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .expect("the service answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn event_json() -> Value {
    json!({"type": "time_entry.created", "data": {"id": "te_def456", "user_id": "usr_xyz789", "project_id": "prj_abc123",
        "start_time": "2024-01-15T09:00:00Z", "duration": 3600, "description": "Working on feature X"}})
}

/// Events/s through single-event POSTs from `INGEST_CLIENTS` clients.
fn ingest_single(service: &Service, events: usize) -> f64 {
    let body = event_json().to_string();
    let started = Instant::now();
    let threads: Vec<_> = (0..INGEST_CLIENTS)
        .map(|index| {
            let (base, body) = (service.base.clone(), body.clone());
            let share = events / INGEST_CLIENTS + usize::from(index < events % INGEST_CLIENTS);
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                for _ in 0..share {
                    let (status, answer) = client.post("/v1/events", &body);
                    assert_eq!(status, 202, "{answer}");
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|t| t.join().expect("client thread"));
    events as f64 / started.elapsed().as_secs_f64()
}

/// Sends `events` events in batches from `BATCH_CLIENTS` clients; returns events/s.
fn ingest_batches(service: &Service, events: usize) -> f64 {
    let batch = json!({"events": vec![event_json(); BATCH_EVENTS]}).to_string();
    let batches = events.div_ceil(BATCH_EVENTS);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..BATCH_CLIENTS)
        .map(|_| {
            let (base, batch, next) = (service.base.clone(), batch.clone(), next.clone());
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                while next.fetch_add(1, Ordering::SeqCst) < batches {
                    let (status, answer) = client.post("/v1/events/batch", &batch);
                    assert_eq!(status, 202, "{answer}");
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|t| t.join().expect("client thread"));
    (batches * BATCH_EVENTS) as f64 / started.elapsed().as_secs_f64()
}

/// Deliveries/s from the first ingest to the receiver holding all of them.
fn end_to_end(
    service: &Service,
    receiver: &Receiver,
    fan_out: usize,
    deliveries: usize,
) -> (f64, u64) {
    receiver.reset();
    for index in 0..fan_out {
        service.endpoint(&format!("{}/ep{index}", receiver.url));
    }
    let events = deliveries.div_ceil(fan_out).div_ceil(BATCH_EVENTS) * BATCH_EVENTS;
    let expected = events * fan_out;
    let started = Instant::now();
    ingest_batches(service, events);
    let deadline = started + DRAIN_TIMEOUT;
    while receiver.count.load(Ordering::SeqCst) < expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let received = receiver.count.load(Ordering::SeqCst);
    let bytes_per_100k = service.database_bytes() * 100_000 / received.max(1) as u64;
    (received as f64 / elapsed, bytes_per_100k)
}

/// Ingest-acknowledgement-to-arrival latencies (ms) at a steady rate: p50, p99, max.
fn latency(service: &Service, receiver: &Receiver, rate: u64, seconds: u64) -> (f64, f64, f64) {
    receiver.reset();
    let total = (rate * seconds) as usize;
    let body = event_json().to_string();
    let acks: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let started = Instant::now() + Duration::from_millis(50);
    let senders = 4;
    let threads: Vec<_> = (0..senders)
        .map(|sender| {
            let (base, body, acks) = (service.base.clone(), body.clone(), acks.clone());
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                for index in (sender..total).step_by(senders) {
                    let due = started + Duration::from_micros(index as u64 * 1_000_000 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let (status, answer) = client.post("/v1/events", &body);
                    let acked = Instant::now();
                    assert_eq!(status, 202, "{answer}");
                    acks.lock()
                        .expect("acks")
                        .push((answer["id"].as_str().unwrap_or_default().to_string(), acked));
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|t| t.join().expect("sender thread"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.count.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let arrivals = receiver.arrivals.lock().expect("arrivals");
    let mut latencies: Vec<f64> = acks
        .lock()
        .expect("acks")
        .iter()
        .filter_map(|(id, acked)| {
            let arrived = arrivals.get(&format!("/ep0 {id}"))?;
            // The receiver may see the event before the client sees the 202: that is 0 ms.
            Some(arrived.saturating_duration_since(*acked).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    )
}

/// Finished deliveries of the endpoint deleted in `delete_during_ingest`.
const DELETE_HISTORY: usize = 100_000;

/// `DELETE /v1/endpoints/{id}` of an endpoint with `DELETE_HISTORY` finished deliveries while
/// one client sends single events for another endpoint, until the history is purged. Returns
/// the slowest ingest answer (ms), the DELETE's answer (ms) and the purge's length (s).
fn delete_during_ingest(service: &Service, receiver: &Receiver) -> (f64, f64, f64) {
    receiver.reset();
    let (status, deleted) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/deleted", receiver.url), "events": ["*"]}).to_string(),
    );
    assert_eq!(status, 201, "creating an endpoint: {deleted}");
    let deleted_id = deleted["id"].as_str().unwrap_or_default().to_string();
    ingest_batches(service, DELETE_HISTORY);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while receiver.count.load(Ordering::SeqCst) < DELETE_HISTORY && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let (status, kept) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/kept", receiver.url), "events": ["*"], "workspace_id": "kept"})
            .to_string(),
    );
    assert_eq!(status, 201, "creating an endpoint: {kept}");
    let db = rusqlite::Connection::open(service.dir.join("bench.db")).expect("open bench.db");
    let purged = || {
        db.query_row(
            "SELECT COUNT(*) = 0 FROM endpoints WHERE id = ?1",
            [&deleted_id],
            |row| row.get::<_, bool>(0),
        )
        .unwrap_or(false)
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (base, stop) = (service.base.clone(), stop.clone());
        let mut body = event_json();
        body["workspace_id"] = "kept".into();
        let body = body.to_string();
        thread::spawn(move || {
            let mut client = RawClient::new(&base);
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let (status, answer) = client.post("/v1/events", &body);
                slowest = slowest.max(started.elapsed());
                assert_eq!(status, 202, "{answer}");
            }
            slowest
        })
    };
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let answer = service
        .agent
        .delete(&format!("{}/v1/endpoints/{deleted_id}", service.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .expect("the service answers");
    let delete_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        answer.status().as_u16(),
        204,
        "DELETE /v1/endpoints/{deleted_id}"
    );
    while !purged() && started.elapsed() < DRAIN_TIMEOUT {
        thread::sleep(Duration::from_millis(5));
    }
    let purge_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let slowest = sender.join().expect("sender thread");
    (slowest.as_secs_f64() * 1000.0, delete_ms, purge_s)
}

/// One whole run: every scenario (or those of `--only`) on its own fresh service.
fn run_once(exe: &Path, options: &Options, run: usize) -> Value {
    let wanted = |name: &str| options.only.is_empty() || options.only.iter().any(|o| o == name);
    let receiver = Receiver::start();
    let root = std::env::temp_dir().join(format!("clockeye-bench-{}-{run}", std::process::id()));
    let fresh = |name: &str| Service::start(exe, root.join(name), &options.serve_flags);
    let mut peak_rss_kib = 0;
    let mut figures = serde_json::Map::new();

    if wanted("ingest") {
        let service = fresh("ingest");
        figures.insert(
            "ingest_single_events_per_s".into(),
            json!(ingest_single(&service, options.ingest_events)),
        );
        figures.insert(
            "ingest_batch_events_per_s".into(),
            json!(ingest_batches(&service, options.deliveries)),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    if wanted("ingest-fanout10") {
        // Single events while each goes to 10 endpoints: the answer lists 10 deliveries
        // (about 1 KiB), and delivery runs beside ingest, as in production.
        let service = fresh("ingest-fanout10");
        for index in 0..10 {
            service.endpoint(&format!("{}/ep{index}", receiver.url));
        }
        figures.insert(
            "ingest_single_fan_out_10_events_per_s".into(),
            json!(ingest_single(&service, options.ingest_events)),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    if wanted("fanout1") {
        let service = fresh("fanout1");
        let (fan_out_1, db_bytes_per_100k) = end_to_end(&service, &receiver, 1, options.deliveries);
        figures.insert(
            "end_to_end_fan_out_1_deliveries_per_s".into(),
            json!(fan_out_1),
        );
        figures.insert(
            "database_bytes_per_100k_delivered".into(),
            json!(db_bytes_per_100k),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    if wanted("fanout10") {
        let service = fresh("fanout10");
        let (fan_out_10, _) = end_to_end(&service, &receiver, 10, options.deliveries);
        figures.insert(
            "end_to_end_fan_out_10_deliveries_per_s".into(),
            json!(fan_out_10),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    if wanted("latency") {
        let mut latencies = Vec::new();
        for rate in [200, 500] {
            let service = fresh(&format!("latency{rate}"));
            service.endpoint(&format!("{}/ep0", receiver.url));
            let (p50, p99, max) = latency(&service, &receiver, rate, options.latency_seconds);
            peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
            latencies
                .push(json!({"rate_per_s": rate, "p50_ms": p50, "p99_ms": p99, "max_ms": max}));
        }
        figures.insert("latency".into(), json!(latencies));
    }

    if wanted("slow-receiver") {
        let slow = Receiver::raw(SLOW_RECEIVER_DELAY, false);
        let service = fresh("slow-receiver");
        let (rate, _) = end_to_end(&service, &slow, 1, SLOW_RECEIVER_DELIVERIES);
        figures.insert("slow_receiver_deliveries_per_s".into(), json!(rate));
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    if wanted("two-write-receiver") {
        let two_writes = Receiver::raw(Duration::ZERO, true);
        let service = fresh("two-write-receiver");
        service.endpoint(&format!("{}/ep0", two_writes.url));
        let (p50, p99, max) = latency(
            &service,
            &two_writes,
            TWO_WRITE_RATE,
            options.latency_seconds,
        );
        figures.insert(
            "two_write_receiver_latency".into(),
            json!({"rate_per_s": TWO_WRITE_RATE, "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    if wanted("delete") {
        let service = fresh("delete");
        let (delete_ingest_max_ms, delete_ms, delete_purge_s) =
            delete_during_ingest(&service, &receiver);
        figures.insert("delete_ingest_max_ms".into(), json!(delete_ingest_max_ms));
        figures.insert("delete_answer_ms".into(), json!(delete_ms));
        figures.insert("delete_purge_s".into(), json!(delete_purge_s));
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
    }

    let _ = std::fs::remove_dir_all(&root);
    figures.insert("peak_rss_mib".into(), json!(peak_rss_kib as f64 / 1024.0));
    figures.insert(
        "binary_bytes".into(),
        json!(std::fs::metadata(exe).map(|m| m.len()).unwrap_or(0)),
    );
    Value::Object(figures)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs the bench and prints the table (medians) and the JSON of every run.
/// A long run at a steady rate, printing each minute the service's memory and database size,
/// which should stay flat (the database only once `--retention` prunes; see README).
fn soak(exe: &Path, options: &Options, minutes: u64) {
    let receiver = Receiver::start();
    let root = std::env::temp_dir().join(format!("clockeye-soak-{}", std::process::id()));
    let service = Service::start(exe, root.join("soak"), &options.serve_flags);
    service.endpoint(&format!("{}/ep0", receiver.url));
    let rate = options.soak_rate;
    let body = event_json().to_string();
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let senders = 4u64;
    let threads: Vec<_> = (0..senders)
        .map(|sender| {
            let (base, body, sent) = (service.base.clone(), body.clone(), sent.clone());
            thread::spawn(move || {
                let mut client = RawClient::new(&base);
                let mut index = sender;
                loop {
                    let due = started + Duration::from_micros(index * 1_000_000 / rate);
                    if due >= end {
                        return;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let (status, answer) = client.post("/v1/events", &body);
                    assert_eq!(status, 202, "{answer}");
                    sent.fetch_add(1, Ordering::Relaxed);
                    index += senders;
                }
            })
        })
        .collect();
    println!("| minute | events sent | delivered | service RSS | database |");
    println!("|---|---|---|---|---|");
    for minute in 1..=minutes {
        let at = started + Duration::from_secs(minute * 60);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        println!(
            "| {minute} | {} | {} | {:.1} MiB | {:.1} MiB |",
            sent.load(Ordering::Relaxed),
            receiver.count.load(Ordering::Relaxed),
            service.memory_kib("VmRSS:") as f64 / 1024.0,
            service.database_bytes() as f64 / 1_048_576.0
        );
    }
    threads
        .into_iter()
        .for_each(|t| t.join().expect("sender thread"));
    println!(
        "peak RSS over the soak: {:.1} MiB",
        service.peak_rss_kib() as f64 / 1024.0
    );
    drop(service);
    let _ = std::fs::remove_dir_all(&root);
}

pub fn main(options: Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    if let Some(minutes) = options.soak_minutes {
        soak(&exe, &options, minutes);
        return Ok(());
    }
    let mut runs = Vec::new();
    for run in 0..options.runs {
        eprintln!("bench: run {} of {}…", run + 1, options.runs);
        runs.push(run_once(&exe, &options, run));
    }
    let pick = |f: &dyn Fn(&Value) -> f64| median(runs.iter().map(f).collect());
    let number = |key: &'static str| move |run: &Value| run[key].as_f64().unwrap_or(f64::NAN);
    let latency = |index: usize, key: &'static str| {
        move |run: &Value| run["latency"][index][key].as_f64().unwrap_or(f64::NAN)
    };
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "clockeye-webhooks bench: {} run(s), median shown; {cores} cores; synchronous=FULL; receiver on loopback",
        options.runs
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| ingest, single events, {INGEST_CLIENTS} clients | {:.0} events/s |",
        pick(&number("ingest_single_events_per_s"))
    );
    println!(
        "| ingest, batches of {BATCH_EVENTS}, {BATCH_CLIENTS} clients | {:.0} events/s |",
        pick(&number("ingest_batch_events_per_s"))
    );
    println!(
        "| ingest, single events at fan-out 10, {INGEST_CLIENTS} keep-alive clients | {:.0} events/s |",
        pick(&number("ingest_single_fan_out_10_events_per_s"))
    );
    println!(
        "| end to end, fan-out 1, {} deliveries (target ≥ 10,000) | {:.0} deliveries/s |",
        options.deliveries,
        pick(&number("end_to_end_fan_out_1_deliveries_per_s"))
    );
    println!(
        "| end to end, fan-out 10, {} deliveries (target ≥ 15,000) | {:.0} deliveries/s |",
        options.deliveries,
        pick(&number("end_to_end_fan_out_10_deliveries_per_s"))
    );
    println!(
        "| one endpoint at {} ms per request, {SLOW_RECEIVER_DELIVERIES} deliveries (target ≥ 400) | {:.0} deliveries/s |",
        SLOW_RECEIVER_DELAY.as_millis(),
        pick(&number("slow_receiver_deliveries_per_s"))
    );
    let two_write = |key: &'static str| {
        move |run: &Value| {
            run["two_write_receiver_latency"][key]
                .as_f64()
                .unwrap_or(f64::NAN)
        }
    };
    println!(
        "| two-write keep-alive receiver at {TWO_WRITE_RATE}/s, p50 / p99 / max (target p99 < 10) | {:.2} / {:.2} / {:.2} ms |",
        pick(&two_write("p50_ms")),
        pick(&two_write("p99_ms")),
        pick(&two_write("max_ms"))
    );
    for (index, rate) in [200, 500].into_iter().enumerate() {
        println!(
            "| latency ack→arrival at {rate}/s, p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
            pick(&latency(index, "p50_ms")),
            pick(&latency(index, "p99_ms")),
            pick(&latency(index, "max_ms"))
        );
    }
    println!(
        "| ingest answer during a DELETE of an endpoint with {DELETE_HISTORY} deliveries, worst (DELETE answer; purge) | {:.1} ms ({:.1} ms; {:.1} s) |",
        pick(&number("delete_ingest_max_ms")),
        pick(&number("delete_answer_ms")),
        pick(&number("delete_purge_s"))
    );
    println!(
        "| peak RSS of the service | {:.1} MiB |",
        pick(&number("peak_rss_mib"))
    );
    println!(
        "| database per 100,000 delivered events | {:.1} MiB |",
        pick(&number("database_bytes_per_100k_delivered")) / 1_048_576.0
    );
    println!(
        "| binary size | {:.1} MiB |",
        pick(&number("binary_bytes")) / 1_048_576.0
    );
    println!("{}", json!({ "runs": runs }));
    Ok(())
}
