//! The `clockeye-webhooks` command: parses the command line and runs. `serve` wires the service
//! in one screen: open the store, recover, spawn workers and the scheduler, serve the API, wait
//! for a signal, shut down in order.

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread;
use std::time::Duration;

use clockeye_webhooks::cli::args::{Command, Stop};
use clockeye_webhooks::config::Config;
use clockeye_webhooks::dispatch::{Dispatcher, Takes};
use clockeye_webhooks::error::Error;
use clockeye_webhooks::metrics::Metrics;
use clockeye_webhooks::net::AddressPolicy;
use clockeye_webhooks::scheduler::{self, COMMAND_QUEUE_MAX, Scheduler};
use clockeye_webhooks::signing::{new_token, sha256_hex};
use clockeye_webhooks::time::now_ms;
use clockeye_webhooks::worker::{self, Worker};
use clockeye_webhooks::{api, backup, bench, cli, edge, logging, owner, store};
use crossbeam_channel::{Sender, bounded, select, unbounded};

/// Threads taking API requests; each waits for its events' commit, so this bounds how many
/// ingest requests share one group commit.
const API_THREADS: usize = 24;
/// A client that sends nothing for this long is disconnected (slow or idle clients cannot hold
/// the API); also the longest a response write may block. Set on each accepted socket.
const API_SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a request head (request line and headers) may take to arrive.
const API_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes in a request head, and most header lines; past either the client gets 431.
const API_HEAD_BYTES_MAX: usize = 16 * 1024;
const API_HEADERS_MAX: usize = 100;
/// Request bodies up to this size are read whole by the connection's thread before an API
/// thread sees the request (and only once its head passed the token check, see `edge.rs`), so
/// a slow sender holds no API thread. Covers the default `--max-event-bytes`; larger batches
/// are read by the API thread under `BODY_READ_TIMEOUT`.
const API_BODY_PREBUFFER_BYTES_MAX: usize = 1024 * 1024;
/// Most bytes of request bodies held read-ahead by all connections together; past it a request
/// is answered 503 `server_busy` and its connection closed.
const API_BODY_BUFFERED_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A body read ahead must arrive within this time plus one second per
/// `API_BODY_BYTES_PER_SEC_MIN` bytes (1 MiB: 26 s); else 408 and the connection closes.
const API_BODY_TIMEOUT: Duration = Duration::from_secs(10);
const API_BODY_BYTES_PER_SEC_MIN: usize = 64 * 1024;
/// Most API connections open at once (each has a thread); more are closed at once.
const API_CONNECTIONS_MAX: usize = 1024;
/// Most API connections open at once from one client address; more are closed at once.
const API_CONNECTIONS_PER_ADDRESS_MAX: usize = 128;
const _: () = assert!(API_CONNECTIONS_PER_ADDRESS_MAX < API_CONNECTIONS_MAX);
const _: () = assert!(API_BODY_PREBUFFER_BYTES_MAX <= API_BODY_BUFFERED_BYTES_MAX);
/// glibc malloc arenas (see `limit_malloc_arenas`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS_MAX: libc::c_int = 2;
/// Most jobs claimed and not yet answered, over all endpoints (about 0.5 KiB each).
const JOBS_CLAIMED_MAX: usize = 16_384;
/// One worker in this many takes only first attempts, so retries cannot occupy every worker.
const FIRST_ATTEMPT_WORKERS_DIVISOR: usize = 4;
/// Jobs claimed ahead per place in an endpoint's window: claims happen once per round, so an
/// endpoint needs this many waiting to keep its window busy until the next round.
const ENDPOINT_CLAIMED_PER_SLOT: usize = 16;
/// Extra time shutdown gives in-flight attempts beyond the attempt timeout.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = match cli::args::parse(&args) {
        Ok(parsed) => parsed,
        Err(Stop::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(Stop::Usage(line)) => {
            eprintln!("clockeye-webhooks: {line}");
            return ExitCode::from(2);
        }
    };
    let Some(command) = parsed.command else {
        unreachable!("parse answers Stop::Print when no command is given")
    };
    match command {
        Command::Serve(args) => match serve(Config::from(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("clockeye-webhooks: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Bench(options) => match bench::main(options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(line) => {
                eprintln!("clockeye-webhooks bench: {line}");
                ExitCode::from(2)
            }
        },
        Command::Backup(options) => match backup::run(&options) {
            Ok(summary) => {
                println!(
                    "backup written to {}: {} bytes, {} events, {} deliveries pending",
                    options.dest.display(),
                    summary.bytes,
                    summary.events,
                    summary.deliveries_pending
                );
                ExitCode::SUCCESS
            }
            Err(line) => {
                eprintln!("clockeye-webhooks backup: {line}");
                ExitCode::FAILURE
            }
        },
        command => cli::main(command, parsed.client),
    }
}

fn serve(config: Config) -> Result<(), Error> {
    limit_malloc_arenas();
    logging::init(config.log_format, log::LevelFilter::Info);
    // Before anything reads or recovers the database: one process owns it.
    let _owner = owner::acquire(&config.db)?;
    let conn = store::open(&config.db)?;
    store::set_cache_kib(&conn, store::WRITER_CACHE_KIB)?;
    let recovered = store::recover_delivering(&conn, now_ms())?;
    let (admin_token_sha256, new_admin_token) = admin_token(&conn, &config)?;

    let listener = TcpListener::bind(config.listen).map_err(|source| Error::Listen {
        addr: config.listen.to_string(),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: config.listen.to_string(),
        source,
    })?;
    let limits = tiny_http::Limits {
        io_timeout: Some(API_SOCKET_TIMEOUT),
        head_timeout: API_HEAD_TIMEOUT,
        head_bytes_max: API_HEAD_BYTES_MAX,
        headers_max: API_HEADERS_MAX,
        body_prebuffer_bytes_max: API_BODY_PREBUFFER_BYTES_MAX,
        body_buffered_bytes_max: API_BODY_BUFFERED_BYTES_MAX,
        body_timeout: API_BODY_TIMEOUT,
        body_bytes_per_sec_min: API_BODY_BYTES_PER_SEC_MIN,
        connections_max: API_CONNECTIONS_MAX,
        connections_per_address_max: API_CONNECTIONS_PER_ADDRESS_MAX,
    };
    let head_check = edge::head_check(admin_token_sha256.clone(), store::open(&config.db)?);
    let server = Arc::new(
        tiny_http::Server::from_listener_with_head_check(listener, None, limits, Some(head_check))
            .map_err(|e| Error::Listen {
                addr: addr.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?,
    );
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|source| Error::Io {
        context: "installing signal handlers".into(),
        source,
    })?;

    // Claimed jobs are bounded per endpoint (ENDPOINT_CLAIMED_PER_SLOT); this bound on all of
    // them together only caps memory, and is high enough that endpoints which hang, each
    // holding its share, cannot use it up and starve the others.
    let jobs_in_flight_max = JOBS_CLAIMED_MAX;
    // The largest window is `--endpoint-concurrency`, and never more than half the workers, so
    // an endpoint that turns from healthy to hanging holds at most half of them meanwhile.
    let window_max = config.endpoint_concurrency.min((config.workers / 2).max(1));
    let dispatcher = Arc::new(Dispatcher::new(window_max));
    let (results_tx, results_rx) = bounded(jobs_in_flight_max);
    // Jobs of panicked workers; at most one per worker that ever ran, so unbounded is bounded.
    let (releases_tx, releases_rx) = unbounded();
    // Every long-lived thread reports here when it ends (see `Watch`).
    let (ended_tx, ended_rx) = unbounded::<Ended>();
    let (commands_tx, commands_rx) = bounded(COMMAND_QUEUE_MAX);
    let (shutdown_tx, shutdown_rx) = bounded(1);
    let heartbeat_ms = Arc::new(AtomicI64::new(now_ms()));

    let policy = Arc::new(AddressPolicy {
        allow_private_networks: config.allow_private_networks,
        allow_networks: config.allow_networks.clone(),
    });
    let agent = worker::agent(
        config.attempt_timeout,
        config.workers,
        policy.clone(),
        worker::tls_config(&config.extra_roots_der),
    );
    let retry_schedule = Arc::new(config.retry_schedule.clone());
    let metrics = Arc::new(Metrics::default());
    let mut workers = Vec::new();
    let mut worker_configs = Vec::new();
    for index in 0..config.workers {
        // A share of the workers takes only first attempts (see dispatch.rs).
        let takes = if index < config.workers / FIRST_ATTEMPT_WORKERS_DIVISOR {
            Takes::FirstAttemptsOnly
        } else {
            Takes::Any
        };
        let worker = Worker {
            agent: agent.clone(),
            dispatcher: dispatcher.clone(),
            takes,
            results: results_tx.clone(),
            releases: releases_tx.clone(),
            retry_schedule: retry_schedule.clone(),
            metrics: metrics.clone(),
        };
        worker_configs.push(worker.clone());
        workers.push(spawn_watched(
            format!("worker-{index}"),
            &ended_tx,
            move || worker::main(worker),
        ));
    }
    drop((results_tx, releases_tx));

    let scheduler = Scheduler {
        conn,
        commands: commands_rx,
        results: results_rx,
        releases: releases_rx,
        attempt_timeout: config.attempt_timeout,
        dispatcher: dispatcher.clone(),
        claimed_per_slot: ENDPOINT_CLAIMED_PER_SLOT,
        shutdown: shutdown_rx,
        jobs_in_flight_max,
        retention: config.retention,
        disable_after: config.disable_after,
        drain_timeout: config.attempt_timeout + DRAIN_MARGIN,
        heartbeat_ms: heartbeat_ms.clone(),
    };
    // A scheduler panic makes `/healthz` answer 503 at once, before anything unwinds (an
    // ingest caller answered 503 by the unwinding must not then find the service healthy).
    let default_hook = std::panic::take_hook();
    let heartbeat = heartbeat_ms.clone();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name() == Some("scheduler") {
            heartbeat.store(0, Ordering::Relaxed);
        }
        default_hook(info);
    }));
    let scheduler_thread = spawn_watched("scheduler".into(), &ended_tx, move || {
        scheduler::main(scheduler)
    });

    let shared = Arc::new(api::Shared {
        admin_token_sha256,
        commands: commands_tx,
        allow_http: config.allow_http,
        policy,
        max_event_bytes: config.max_event_bytes,
        heartbeat_ms: heartbeat_ms.clone(),
        metrics,
        dispatcher: dispatcher.clone(),
        public_url: config.public_url.clone(),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let mut api_threads = Vec::new();
    let spawn_api = |name: String| -> Result<thread::JoinHandle<()>, Error> {
        let conn = store::open(&config.db)?;
        store::set_cache_kib(&conn, store::READER_CACHE_KIB)?;
        let (server, shared, stopping) = (server.clone(), shared.clone(), stopping.clone());
        Ok(spawn_watched(name, &ended_tx, move || {
            api::main(server, conn, shared, stopping)
        }))
    };
    for index in 0..API_THREADS {
        api_threads.push(spawn_api(format!("api-{index}"))?);
    }

    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{addr}");
    match &new_admin_token {
        Some(token) => {
            let _ = writeln!(stdout, "admin token: {token}");
            let _ = writeln!(
                stdout,
                "(shown once; only its hash is kept in the database. Use it as: Authorization: Bearer <token>)"
            );
        }
        None if config.admin_token.is_none() => {
            let _ = writeln!(
                stdout,
                "admin token: the one shown at first start (or set one with --admin-token)"
            );
        }
        None => {}
    }
    let _ = stdout.flush();
    drop(stdout);
    log::info!(
        "started: {} recovered_deliveries={recovered}",
        config.describe(if new_admin_token.is_some() {
            "[generated now, shown once on stdout]"
        } else {
            "[from database]"
        })
    );

    let (signal_tx, signal_rx) = bounded(1);
    let _signals_thread = spawn_watched("signals".into(), &ended_tx, move || {
        let _ = signal_tx.send(signals.forever().next());
    });

    // Supervision: a worker or API thread that dies is replaced (a worker's job went back to
    // pending as it unwound); the scheduler or the signal thread dying cannot be recovered
    // here: `/healthz` answers 503 and the process exits non-zero, for its supervisor to
    // restart it (start-up recovery returns what was in flight).
    let mut failure = None;
    loop {
        select! {
            recv(signal_rx) -> signal => {
                let name = match signal.ok().flatten() {
                    Some(signal_hook::consts::SIGTERM) => "SIGTERM".to_string(),
                    Some(signal_hook::consts::SIGINT) => "SIGINT".to_string(),
                    Some(other) => format!("signal {other}"),
                    None => "the signal thread ending".to_string(),
                };
                log::info!(
                    "shutting down on {name}: no new requests; letting attempts in flight finish"
                );
                break;
            }
            recv(ended_rx) -> ended => {
                let Ok(ended) = ended else { break };
                let why = if ended.panicked { "panicked" } else { "returned" };
                if let Some(index) = ended.name.strip_prefix("worker-").and_then(|i| i.parse::<usize>().ok()) {
                    log::error!("{} died ({why}); starting another in its place", ended.name);
                    let worker = worker_configs[index].clone();
                    workers.push(spawn_watched(ended.name, &ended_tx, move || worker::main(worker)));
                } else if ended.name.starts_with("api-") {
                    log::error!("{} died ({why}); starting another in its place", ended.name);
                    match spawn_api(ended.name.clone()) {
                        Ok(thread) => api_threads.push(thread),
                        Err(error) => {
                            failure = Some(Error::ThreadDied { thread: ended.name, why: error.to_string() });
                            break;
                        }
                    }
                } else if ended.name == "signals" && !ended.panicked {
                    // It delivered a signal and ended: `signal_rx` has it.
                } else {
                    failure = Some(Error::ThreadDied { thread: ended.name, why: why.to_string() });
                    break;
                }
            }
        }
    }
    if let Some(error) = &failure {
        // `/healthz` answers 503 from now on (the heartbeat is decades old), and ingest 503
        // (nothing takes commands). Attempts already running end first (their results cannot
        // be written: start-up recovery sends them again); then the API stops.
        heartbeat_ms.store(0, Ordering::Relaxed);
        log::error!("{error}");
        dispatcher.close();
        for thread in std::mem::take(&mut workers) {
            let _ = thread.join();
        }
    }
    drop(shared);
    stopping.store(true, Ordering::SeqCst);
    for _ in 0..API_THREADS {
        server.unblock();
    }
    for thread in api_threads {
        let _ = thread.join();
    }
    drop(server);
    let _ = shutdown_tx.send(());
    let _ = scheduler_thread.join();
    dispatcher.close();
    for thread in workers {
        let _ = thread.join();
    }
    if let Some(error) = failure {
        return Err(error);
    }
    log::info!("stopped");
    Ok(())
}

/// How a watched thread ended.
struct Ended {
    name: String,
    panicked: bool,
}

/// Reports its thread's end (return or panic) to the supervisor when dropped.
struct Watch {
    name: String,
    ended: Sender<Ended>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.ended.send(Ended {
            name: std::mem::take(&mut self.name),
            panicked: thread::panicking(),
        });
    }
}

/// Starts a long-lived thread whose end the supervisor in `serve` hears of.
fn spawn_watched(
    name: String,
    ended: &Sender<Ended>,
    body: impl FnOnce() + Send + 'static,
) -> thread::JoinHandle<()> {
    let watch = Watch {
        name: name.clone(),
        ended: ended.clone(),
    };
    spawn(name, move || {
        let _watch = watch;
        body();
    })
}

/// The admin token's hash, and the token itself when it was generated just now (to show once).
fn admin_token(
    conn: &rusqlite::Connection,
    config: &Config,
) -> Result<(String, Option<String>), Error> {
    if let Some(token) = &config.admin_token {
        return Ok((sha256_hex(token), None));
    }
    if let Some(hash) = store::meta(conn, "admin_token_sha256")? {
        return Ok((hash, None));
    }
    let token = new_token("cew_admin");
    let hash = sha256_hex(&token);
    store::set_meta(conn, "admin_token_sha256", &hash)?;
    Ok((hash, Some(token)))
}

/// glibc gives each thread that allocates an arena of its own (up to 8 per core); with some
/// sixty threads, memory freed in one arena is not reused by another, and the bench measured
/// 84 MiB peak RSS against 42 MiB with two arenas, at the same throughput.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX);
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(name)
        .spawn(body)
        .expect("the OS can start a thread")
}
