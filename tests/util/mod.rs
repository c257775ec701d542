//! Test harness: the real binary on `127.0.0.1:0` with a database in a temp dir, a recording
//! receiver on `127.0.0.1:0`, a small HTTP client, and polling with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cli;
pub mod pg;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const BIN: &str = env!("CARGO_BIN_EXE_clockeye-webhooks");

/// The `id` of each item of a list answer (`{"data": [...]}`).
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` every 20 ms until it returns `Ok`, or panics after `timeout` with the last `Err`.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The database a test runs the service on (`both_backends!` runs it on each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A new database's `--db` argument: `dir/webhooks.db`, or a fresh database of this test
    /// binary's Postgres cluster (`pg::database()`).
    pub fn db_arg(self, dir: &Path) -> String {
        match self {
            Backend::Sqlite => dir.join("webhooks.db").to_str().unwrap().to_string(),
            Backend::Postgres => pg::database(),
        }
    }
}

/// `both_backends!(name);` after `fn name(backend: Backend) { … }` makes the tests
/// `name_sqlite` and `name_postgres`, so one `cargo test` runs both and a failure names its
/// backend.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        ::pastey::paste! {
            #[test]
            fn [<$name _sqlite>]() {
                $name($crate::util::Backend::Sqlite)
            }

            #[test]
            fn [<$name _postgres>]() {
                $name($crate::util::Backend::Postgres)
            }
        }
    };
}

/// A running `clockeye-webhooks serve`.
pub struct Service {
    child: Child,
    pub base: String,
    /// The SQLite file; empty when the service runs on Postgres.
    pub db: PathBuf,
    /// What `--db` was given (a path or a Postgres URL): restart on the same database with
    /// `Service::start_db(dir, &service.db_arg, extra)`.
    pub db_arg: String,
    pub stderr_path: PathBuf,
    agent: ureq::Agent,
}

pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .proxy(None)
        .max_idle_connections_per_host(64)
        // The API drops a connection idle for 5 s; reusing one near that moment races the close.
        .max_idle_age(Duration::from_secs(2))
        .build()
        .into()
}

impl Service {
    /// Starts the binary on a free port with `dir/webhooks.db` and the test admin token.
    pub fn start(dir: &Path, extra: &[&str]) -> Service {
        Service::start_on(dir, "webhooks.db", extra)
    }

    /// Starts the binary on `dir/webhooks.db` (SQLite) or on a fresh database of this test
    /// binary's Postgres cluster (`pg::database()`).
    pub fn start_backend(backend: Backend, dir: &Path, extra: &[&str]) -> Service {
        Service::start_db(dir, &backend.db_arg(dir), extra)
    }

    /// Starts the binary with `--db db_arg` as given (a path or a Postgres URL); `dir` keeps
    /// its stderr.
    pub fn start_db(dir: &Path, db_arg: &str, extra: &[&str]) -> Service {
        Service::spawn(Command::new(BIN), dir, db_arg, extra)
    }

    pub fn start_on(dir: &Path, db_name: &str, extra: &[&str]) -> Service {
        Service::start_through(Command::new(BIN), dir, db_name, extra)
    }

    /// As `start_on`, with extra environment variables (e.g. `CLOCKEYE_FAULTS`).
    pub fn start_with_env(
        dir: &Path,
        db_name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Service {
        let mut command = Command::new(BIN);
        command.envs(env.iter().copied());
        Service::start_through(command, dir, db_name, extra)
    }

    /// Starts the binary through `command`, which must exec it with the arguments appended
    /// (e.g. `unshare -m sh -c '…; exec "$@"' sh BIN`), so the child is the service itself.
    pub fn start_through(command: Command, dir: &Path, db_name: &str, extra: &[&str]) -> Service {
        let db = dir.join(db_name);
        Service::spawn(command, dir, db.to_str().unwrap(), extra)
    }

    fn spawn(mut command: Command, dir: &Path, db_arg: &str, extra: &[&str]) -> Service {
        let db = if db_arg.starts_with("postgres://") || db_arg.starts_with("postgresql://") {
            PathBuf::new()
        } else {
            PathBuf::from(db_arg)
        };
        let stderr_path = dir.join(format!("stderr-{:016x}.log", rand_u64()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--db", db_arg])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no listening line; stderr: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {line:?}"))
            .to_string();
        Service {
            child,
            base,
            db,
            db_arg: db_arg.to_string(),
            stderr_path,
            agent: client(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        eventually("the service to exit after SIGTERM", timeout, || {
            self.child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_string())
        })
    }

    /// Waits (bounded) for the process to exit by itself; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        eventually("the service to exit", timeout, || {
            self.child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_string())
        })
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        let result = match body {
            Some(body) => self.agent.run(
                builder
                    .header("Content-Type", "application/json")
                    .body(body.to_vec())
                    .unwrap(),
            ),
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path} answered non-JSON: {text}"))
        };
        (status, value)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, Some(ADMIN_TOKEN), None)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            path,
            Some(ADMIN_TOKEN),
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(
            "PATCH",
            path,
            Some(ADMIN_TOKEN),
            Some(body.to_string().as_bytes()),
        )
    }

    /// Creates an endpoint and returns (id, secret).
    pub fn create_endpoint(
        &self,
        url: &str,
        events: &[&str],
        workspace_id: Option<&str>,
    ) -> (String, String) {
        let mut body = serde_json::json!({"url": url, "events": events});
        if let Some(workspace_id) = workspace_id {
            body["workspace_id"] = workspace_id.into();
        }
        let (status, value) = self.post("/v1/endpoints", &body);
        assert_eq!(status, 201, "creating endpoint: {value}");
        (
            value["id"].as_str().unwrap().to_string(),
            value["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Sends one event of `event_type` with the catalog's sample data; returns the answer.
    pub fn send_sample(&self, event_type: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({"type": event_type, "data": clockeye_webhooks::catalog::sample(event_type).unwrap()});
        if let Value::Object(extra) = extra {
            for (key, value) in extra {
                body[key] = value;
            }
        }
        let (status, value) = self.post("/v1/events", &body);
        assert_eq!(status, 202, "sending {event_type}: {value}");
        value
    }

    /// Waits until the first delivery of an ingest answer has the given status.
    pub fn first_delivery(&self, accepted: &Value, status: &str, timeout: Duration) -> Value {
        let delivery_id = accepted["deliveries"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no delivery in {accepted}"));
        self.wait_for_delivery_status(delivery_id, status, timeout)
    }

    /// Waits until the delivery has the given status; returns it with its attempts.
    pub fn wait_for_delivery_status(
        &self,
        delivery_id: &str,
        status: &str,
        timeout: Duration,
    ) -> Value {
        eventually(
            &format!("delivery {delivery_id} to be {status}"),
            timeout,
            || {
                let (code, value) = self.get(&format!("/v1/deliveries/{delivery_id}"));
                if code == 200 && value["status"] == status {
                    Ok(value)
                } else {
                    Err(value.to_string())
                }
            },
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver answers: status, headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke timeouts).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
}

type Answer = dyn Fn(&Received) -> Reply + Send + Sync;

/// A recording HTTP receiver on 127.0.0.1 (tiny_http).
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    server: Arc<tiny_http::Server>,
    threads: usize,
}

impl Receiver {
    /// Answers 200 to everything.
    pub fn ok() -> Receiver {
        Receiver::start(|_| Reply::status(200))
    }

    pub fn start(answer: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Arc::new(tiny_http::Server::from_listener(listener, None).unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let threads = 16;
        for _ in 0..threads {
            let (server, received, answer) = (server.clone(), received.clone(), answer.clone());
            std::thread::spawn(move || {
                while let Ok(mut request) = server.recv() {
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let seen = Received {
                        path: request.url().to_string(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|h| {
                                (
                                    h.field.as_str().as_str().to_ascii_lowercase(),
                                    h.value.as_str().to_string(),
                                )
                            })
                            .collect(),
                        body,
                        at: Instant::now(),
                    };
                    let reply = answer(&seen);
                    received.lock().unwrap().push(seen);
                    if !reply.delay.is_zero() {
                        std::thread::sleep(reply.delay);
                    }
                    let mut response =
                        tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
                    for (name, value) in reply.headers {
                        response.add_header(
                            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                .unwrap(),
                        );
                    }
                    let _ = request.respond(response);
                }
            });
        }
        Receiver {
            url: format!("http://127.0.0.1:{port}"),
            received,
            server,
            threads,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived; returns all of them.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        eventually(
            &format!("{count} requests at the receiver"),
            timeout,
            || {
                let received = self.received();
                if received.len() >= count {
                    Ok(received)
                } else {
                    Err(format!("{} requests", received.len()))
                }
            },
        )
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for _ in 0..self.threads {
            self.server.unblock();
        }
    }
}

/// Receivers on loopback over http allowed, and a short retry schedule.
pub fn loopback_flags(schedule: &'static str) -> Vec<&'static str> {
    vec![
        "--allow-http",
        "--allow-network",
        "127.0.0.0/8",
        "--retry-schedule",
        schedule,
    ]
}

/// The service flags most delivery tests use: `loopback_flags`, a 2 s timeout, 8 workers.
pub fn local_flags(schedule: &'static str) -> Vec<&'static str> {
    let mut flags = loopback_flags(schedule);
    flags.extend(["--attempt-timeout", "2s", "--workers", "8"]);
    flags
}
