//! The benchmark's parts: a receiver on 127.0.0.1, the service as a child process, and
//! clients.

use super::*;

/// A receiver that answers 200 at once and notes when each event id arrived.
pub(super) struct Receiver {
    pub(super) url: String,
    pub(super) arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    pub(super) count: Arc<AtomicUsize>,
    /// None for a `raw` receiver (its threads end with the bench).
    pub(super) server: Option<Arc<tiny_http::Server>>,
}

impl Receiver {
    pub(super) fn start() -> Receiver {
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
    pub(super) fn raw(delay: Duration, two_writes: bool) -> Receiver {
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

    pub(super) fn reset(&self) {
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
pub(super) fn serve_raw(
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

/// Where the bench's services keep their data: a fresh SQLite file per scenario (the default),
/// or a fresh database per scenario on the Postgres server of `--db`, shared by `--instances`.
#[derive(Clone, Debug, Default)]
pub(super) struct Target {
    /// `--db`: a Postgres URL whose server the bench creates its databases on (it never writes
    /// into the named database itself).
    pub(super) postgres: Option<String>,
    pub(super) instances: usize,
}

/// `serve` processes (one, or `--instances` on one Postgres database) on a fresh database.
pub(super) struct Service {
    pub(super) children: Vec<Child>,
    /// Each instance's API; `base` is the first's.
    pub(super) bases: Vec<String>,
    pub(super) base: String,
    pub(super) dir: PathBuf,
    pub(super) agent: ureq::Agent,
    /// The scenario's database on Postgres: its URL, and the server URL it was made from.
    pub(super) postgres: Option<(String, String)>,
}

impl Service {
    pub(super) fn start(exe: &Path, dir: PathBuf, extra: &[String], target: &Target) -> Service {
        std::fs::create_dir_all(&dir).expect("create the bench directory");
        let postgres = target.postgres.as_ref().map(|server| {
            let name = format!(
                "clockeye_bench_{}_{}",
                std::process::id(),
                dir.file_name()
                    .map(|n| n
                        .to_string_lossy()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
                    .unwrap_or_default()
            );
            (create_database(server, &name), server.clone())
        });
        let db_arg = match &postgres {
            Some((url, _)) => url.clone(),
            None => dir.join("bench.db").display().to_string(),
        };
        let mut children = Vec::new();
        let mut bases = Vec::new();
        for instance in 0..target.instances.max(1) {
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
                .args(["--db", &db_arg])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(
                    std::fs::File::create(dir.join(format!("serve-{instance}.log")))
                        .expect("create serve.log"),
                )
                .spawn()
                .expect("start clockeye-webhooks serve");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let base = first
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("serve printed {first:?}"))
                .to_string();
            thread::spawn(move || for _ in lines {});
            children.push(child);
            bases.push(base);
        }
        Service {
            children,
            base: bases[0].clone(),
            bases,
            dir,
            agent: client(),
            postgres,
        }
    }

    /// The API a load client uses: the instances in turn.
    pub(super) fn base_for(&self, client: usize) -> String {
        self.bases[client % self.bases.len()].clone()
    }

    /// The Postgres server's memory (0 on SQLite).
    pub(super) fn postgres_pss_kib(&self) -> u64 {
        if self.postgres.is_some() {
            postgres_pss_kib()
        } else {
            0
        }
    }

    /// A connection to the scenario's database, for what the bench reads there itself.
    pub(super) fn db(&self) -> crate::store::Db {
        match &self.postgres {
            Some((url, _)) => crate::store::connect(
                &crate::store::DbTarget::Postgres(url.clone()),
                crate::store::pg::Role::Tool,
                false,
            )
            .expect("connect to the bench database"),
            None => crate::store::Db::Sqlite(
                rusqlite::Connection::open(self.dir.join("bench.db")).expect("open bench.db"),
            ),
        }
    }

    pub(super) fn post(&self, path: &str, body: &str) -> (u16, Value) {
        post(&self.agent, &self.base, path, body)
    }

    /// Peak RSS, summed over the instances.
    pub(super) fn peak_rss_kib(&self) -> u64 {
        self.memory_kib("VmHWM:")
    }

    /// A `/proc/PID/status` memory line of the service, in KiB, summed over the instances.
    pub(super) fn memory_kib(&self, field: &str) -> u64 {
        self.children
            .iter()
            .map(|child| status_kib(child.id(), field))
            .sum()
    }

    pub(super) fn database_bytes(&self) -> u64 {
        if let Some((url, _)) = &self.postgres {
            let mut client =
                postgres::Client::connect(url, postgres::NoTls).expect("connect to Postgres");
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .expect("pg_database_size");
            return row.get::<_, i64>(0) as u64;
        }
        ["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|name| std::fs::metadata(self.dir.join(name)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Attempts that succeeded, from each instance's `/metrics`, summed.
    pub(super) fn succeeded_attempts(&self) -> usize {
        self.bases
            .iter()
            .map(|base| {
                let mut response = self
                    .agent
                    .get(&format!("{base}/metrics"))
                    .header("Authorization", format!("Bearer {TOKEN}"))
                    .call()
                    .expect("the service answers /metrics");
                let text = response.body_mut().read_to_string().unwrap_or_default();
                text.lines()
                    .find_map(|line| {
                        line.strip_prefix("clockeye_attempts_total{outcome=\"succeeded\"} ")
                    })
                    .and_then(|count| count.trim().parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    pub(super) fn endpoint(&self, url: &str) {
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
        for (instance, child) in self.children.iter_mut().enumerate() {
            // SIGTERM, so the service logs its scheduler counters; they go to the bench's stderr.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(self.dir.join(format!("serve-{instance}.log")))
                .unwrap_or_default();
            if let Some(line) = log.lines().find(|line| line.contains("scheduler stopped")) {
                let name = self
                    .dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let counters = line.split("scheduler stopped: ").nth(1).unwrap_or(line);
                eprintln!(
                    "bench: {name}#{instance}: peak_rss_mib(all)={:.1} {counters}",
                    peak_rss_kib as f64 / 1024.0
                );
            }
        }
        if let Some((url, server)) = &self.postgres {
            drop_database(server, url);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The proportional memory (PSS) of every process named `postgres` on this machine, in KiB:
/// the server the bench runs against, when it runs here (shared buffers split between them).
pub(super) fn postgres_pss_kib() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("smaps_rollup")).ok())
        .filter_map(|rollup| {
            rollup.lines().find_map(|line| {
                line.strip_prefix("Pss:").and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
            })
        })
        .sum()
}

/// `server` with its database name replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (scheme, rest) = server.split_once("://").expect("a postgres:// URL");
    let (authority, tail) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// Creates a fresh database for one scenario (the URL's user needs CREATEDB) and returns its URL.
fn create_database(server: &str, name: &str) -> String {
    let mut client = postgres::Client::connect(server, postgres::NoTls).unwrap_or_else(|error| {
        panic!(
            "bench --db {}: cannot connect: {error}",
            crate::store::pg::redacted(server)
        )
    });
    // Two statements: several in one string run as one transaction, which CREATE DATABASE refuses.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&sql).unwrap_or_else(|error| {
            let why = error
                .as_db_error()
                .map(|db| db.message().to_string())
                .unwrap_or_else(|| error.to_string());
            panic!("bench: {sql}: {why} (the user needs CREATEDB)")
        });
    }
    with_database(server, name)
}

fn drop_database(server: &str, url: &str) {
    let name = url.rsplit('/').next().unwrap_or_default();
    let name = name.split('?').next().unwrap_or_default();
    if let Ok(mut client) = postgres::Client::connect(server, postgres::NoTls)
        && let Err(error) =
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    {
        eprintln!("bench: DROP DATABASE {name}: {error}");
    }
}

pub(super) fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .build()
        .into()
}

/// A lean HTTP/1.1 keep-alive client for generating load. The bench runs on the cores it
/// measures, so its own per-request cost must stay small: one write per request, no pool.
pub(super) struct RawClient {
    pub(super) address: String,
    pub(super) stream: Option<BufReader<TcpStream>>,
}

impl RawClient {
    pub(super) fn new(base: &str) -> RawClient {
        RawClient {
            address: base.trim_start_matches("http://").to_string(),
            stream: None,
        }
    }

    pub(super) fn post(&mut self, path: &str, body: &str) -> (u16, Value) {
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

    pub(super) fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, Value)> {
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

pub(super) fn post(agent: &ureq::Agent, base: &str, path: &str, body: &str) -> (u16, Value) {
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

pub(super) fn event_json() -> Value {
    json!({"type": "time_entry.created", "data": {"id": "te_def456", "user_id": "usr_xyz789", "project_id": "prj_abc123",
        "start_time": "2024-01-15T09:00:00Z", "duration": 3600, "description": "Working on feature X"}})
}
