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

use clockeye_webhooks::config::{self, Config};
use clockeye_webhooks::dispatch::{Dispatcher, Takes};
use clockeye_webhooks::error::Error;
use clockeye_webhooks::metrics::Metrics;
use clockeye_webhooks::net::AddressPolicy;
use clockeye_webhooks::scheduler::{self, COMMAND_QUEUE_MAX, Scheduler};
use clockeye_webhooks::signing::{new_token, sha256_hex};
use clockeye_webhooks::time::now_ms;
use clockeye_webhooks::worker::{self, Worker};
use clockeye_webhooks::{api, backup, bench, cli, logging, store};
use crossbeam_channel::bounded;

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
/// thread sees the request, so a slow sender holds no API thread. Covers the default
/// `--max-event-bytes`; larger batches are read by the API thread under `BODY_READ_TIMEOUT`.
const API_BODY_PREBUFFER_BYTES_MAX: usize = 1024 * 1024;
/// Most API connections open at once (each has a thread); more are closed at once.
const API_CONNECTIONS_MAX: usize = 1024;
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

const USAGE: &str =
    "clockeye-webhooks: delivers ClockEye events to webhook endpoints, signed and retried

usage:
  clockeye-webhooks serve [FLAGS]   run the API and the delivery engine (see serve --help)
  clockeye-webhooks bench [FLAGS]   measure throughput and latency on this machine (see bench --help)
  clockeye-webhooks backup PATH     a consistent copy of the live database (see backup --help)
  clockeye-webhooks --version

quick start:
  clockeye-webhooks serve           listens on 127.0.0.1:7740, database ./clockeye-webhooks.db

for receivers and operators (each has --help with examples; those that call the API take
--server, --token and --json, or CLOCKEYE_SERVER and CLOCKEYE_TOKEN):
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            if args[1..].iter().any(|arg| arg == "--help" || arg == "-h") {
                print!("{}", config::serve_help());
                return ExitCode::SUCCESS;
            }
            let config = match config::parse_serve_from_env(&args[1..]) {
                Ok(config) => config,
                Err(line) => {
                    eprintln!("clockeye-webhooks: {line}");
                    return ExitCode::from(2);
                }
            };
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("clockeye-webhooks: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("bench") => {
            if args[1..].iter().any(|arg| arg == "--help" || arg == "-h") {
                print!("{}", bench::HELP);
                return ExitCode::SUCCESS;
            }
            match bench::parse_options(&args[1..]).and_then(bench::main) {
                Ok(()) => ExitCode::SUCCESS,
                Err(line) => {
                    eprintln!("clockeye-webhooks bench: {line}");
                    ExitCode::from(2)
                }
            }
        }
        Some("backup") => {
            if args[1..].iter().any(|arg| arg == "--help" || arg == "-h") {
                print!("{}", backup::HELP);
                return ExitCode::SUCCESS;
            }
            let options = match backup::parse_options(&args[1..], &|name| std::env::var(name).ok())
            {
                Ok(options) => options,
                Err(line) => {
                    eprintln!("clockeye-webhooks backup: {line}");
                    return ExitCode::from(2);
                }
            };
            match backup::run(&options) {
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
            }
        }
        Some("--version" | "-V" | "version") => {
            println!("clockeye-webhooks {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(word) if cli::is_command(word) => cli::main(&args),
        Some("help") if args.get(1).is_some_and(|word| cli::is_command(word)) => cli::main(&args),
        Some("help") if args.len() > 1 => {
            match args[1].as_str() {
                "serve" => print!("{}", config::serve_help()),
                "bench" => print!("{}", bench::HELP),
                "backup" => print!("{}", backup::HELP),
                other => {
                    eprintln!(
                        "clockeye-webhooks: no command \"{other}\" (see clockeye-webhooks --help)"
                    );
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        None | Some("--help" | "-h" | "help") => {
            print!("{USAGE}{}", cli::summary());
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "clockeye-webhooks: unknown command \"{other}\" (see clockeye-webhooks --help)"
            );
            ExitCode::from(2)
        }
    }
}

fn serve(config: Config) -> Result<(), Error> {
    limit_malloc_arenas();
    logging::init(config.log_format, log::LevelFilter::Info);
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
        connections_max: API_CONNECTIONS_MAX,
    };
    let server = Arc::new(
        tiny_http::Server::from_listener_with_limits(listener, None, limits).map_err(|e| {
            Error::Listen {
                addr: addr.to_string(),
                source: std::io::Error::other(e.to_string()),
            }
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
            retry_schedule: retry_schedule.clone(),
            metrics: metrics.clone(),
        };
        workers.push(spawn(format!("worker-{index}"), move || {
            worker::main(worker)
        }));
    }
    drop(results_tx);

    let scheduler = Scheduler {
        conn,
        commands: commands_rx,
        results: results_rx,
        dispatcher: dispatcher.clone(),
        claimed_per_slot: ENDPOINT_CLAIMED_PER_SLOT,
        shutdown: shutdown_rx,
        jobs_in_flight_max,
        retention: config.retention,
        disable_after: config.disable_after,
        drain_timeout: config.attempt_timeout + DRAIN_MARGIN,
        heartbeat_ms: heartbeat_ms.clone(),
    };
    let scheduler_thread = spawn("scheduler".into(), move || scheduler::main(scheduler));

    let shared = Arc::new(api::Shared {
        admin_token_sha256,
        commands: commands_tx,
        allow_http: config.allow_http,
        policy,
        max_event_bytes: config.max_event_bytes,
        heartbeat_ms,
        metrics,
        dispatcher: dispatcher.clone(),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let mut api_threads = Vec::new();
    for index in 0..API_THREADS {
        let conn = store::open(&config.db)?;
        store::set_cache_kib(&conn, store::READER_CACHE_KIB)?;
        let (server, shared, stopping) = (server.clone(), shared.clone(), stopping.clone());
        api_threads.push(spawn(format!("api-{index}"), move || {
            api::main(server, conn, shared, stopping)
        }));
    }
    drop(shared);

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
        config.describe()
    );

    let signal = signals.forever().next();
    log::info!(
        "shutting down on signal {signal:?}: no new requests; letting attempts in flight finish"
    );
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
    log::info!("stopped");
    Ok(())
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
