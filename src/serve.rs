//! `serve`: the service wired on one screen. Open the store (one owner) and recover, start the
//! workers (`engine::worker`), the scheduler (`engine::scheduler`, the one writer) and the API
//! threads (`http`), wait for a signal while supervising the threads, then stop in order: API,
//! scheduler (drains in-flight attempts), workers.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};

use crate::config::Config;
use crate::engine::dispatch::{Dispatcher, Takes};
use crate::engine::net::AddressPolicy;
use crate::engine::scheduler::{self, COMMAND_QUEUE_MAX, Scheduler};
use crate::engine::wakeups;
use crate::engine::worker::{self, Worker};
use crate::error::Error;
use crate::http::metrics::Metrics;
use crate::http::server::API_THREADS;
use crate::http::{self, edge};
use crate::ids::{new_id, new_token, sha256_hex};
use crate::logging;
use crate::store::pg::Role;
use crate::store::{self, DbTarget, owner};
use crate::time::now_ms;

/// glibc malloc arenas (see `limit_malloc_arenas`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS_MAX: libc::c_int = 2;
/// Most jobs claimed and not yet answered, over all endpoints (about 0.5 KiB each).
const JOBS_CLAIMED_MAX: usize = 16_384;
/// Jobs claimed ahead per place in an endpoint's window: claims happen once per round, so an
/// endpoint needs this many waiting to keep its window busy until the next round.
const ENDPOINT_CLAIMED_PER_SLOT: usize = 16;
/// Extra time shutdown gives in-flight attempts beyond the attempt timeout.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

pub(crate) fn serve(config: Config) -> Result<(), Error> {
    limit_malloc_arenas();
    logging::init(config.log_format, log::LevelFilter::Info);
    // Before anything reads or recovers the database: one process owns it.
    // On Postgres other instances share the database: no owner, and their claims are live.
    let _owner = match &config.db {
        DbTarget::Sqlite(path) => Some(owner::acquire(path)?),
        DbTarget::Postgres(_) => None,
    };
    let conn = store::connect(&config.db, Role::Scheduler, true)?;
    store::set_cache_kib(&conn, store::WRITER_CACHE_KIB)?;
    let recovered = store::recover_delivering(&conn, now_ms())?;
    let (admin_token_sha256, new_admin_token) = admin_token(&conn, &config)?;

    let head_check = edge::head_check(
        admin_token_sha256.clone(),
        store::connect(&config.db, Role::Api, false)?,
    );
    let (server, addr) = http::server::listen(config.listen, head_check)?;
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
    // Among the instances sharing a Postgres database (SQLite: the only one).
    let instance_id = new_id("ins");

    let policy = Arc::new(AddressPolicy {
        allow_private_networks: config.allow_private_networks,
        allow_networks: config.allow_networks.clone(),
    });
    let tls = worker::tls_config(&config.extra_roots_der);
    let pool_count = config.workers.div_ceil(worker::WORKERS_PER_POOL);
    let pools: Vec<_> = (0..pool_count)
        .map(|_| {
            worker::agent(
                config.attempt_timeout,
                worker::WORKERS_PER_POOL.min(config.workers),
                pool_count,
                policy.clone(),
                tls.clone(),
            )
        })
        .collect();
    let metrics = Arc::new(Metrics::default());
    let worker_configs = worker::crew(
        config.workers,
        &Worker {
            agent: pools[0].clone(),
            dispatcher: dispatcher.clone(),
            takes: Takes::Any,
            results: results_tx.clone(),
            releases: releases_tx.clone(),
            retry_schedule: Arc::new(config.retry_schedule.clone()),
            metrics: metrics.clone(),
        },
        &pools,
    );
    let mut workers: Vec<_> = worker_configs
        .iter()
        .enumerate()
        .map(|(index, worker)| {
            let worker = worker.clone();
            spawn_watched(format!("worker-{index}"), &ended_tx, move || {
                worker::main(worker)
            })
        })
        .collect();
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
        instance_id: instance_id.clone(),
    };
    unhealthy_on_scheduler_panic(heartbeat_ms.clone());
    let scheduler_thread = spawn_watched("scheduler".into(), &ended_tx, move || {
        scheduler::main(scheduler)
    });

    let shared = Arc::new(http::Shared {
        admin_token_sha256,
        commands: commands_tx,
        allow_http: config.allow_http,
        policy,
        max_event_bytes: config.max_event_bytes,
        heartbeat_ms: heartbeat_ms.clone(),
        metrics,
        dispatcher: dispatcher.clone(),
        public_url: config.public_url.clone(),
        instance_id: instance_id.clone(),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let listen_thread = start_listening(&config.db, &instance_id, &shared, &stopping, &ended_tx);
    let mut api_threads = Vec::new();
    let spawn_api = |name: String| -> Result<thread::JoinHandle<()>, Error> {
        let conn = store::connect(&config.db, Role::Api, false)?;
        store::set_cache_kib(&conn, store::READER_CACHE_KIB)?;
        let (server, shared, stopping) = (server.clone(), shared.clone(), stopping.clone());
        Ok(spawn_watched(name, &ended_tx, move || {
            http::main(server, conn, shared, stopping)
        }))
    };
    for index in 0..API_THREADS {
        api_threads.push(spawn_api(format!("api-{index}"))?);
    }

    print_banner(
        addr,
        new_admin_token.as_deref(),
        config.admin_token.is_some(),
    );
    log::info!(
        "started: {} recovered_deliveries={recovered} instance={instance_id}",
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

    let failure = supervise(
        &signal_rx,
        &ended_rx,
        &ended_tx,
        &worker_configs,
        &mut workers,
        &spawn_api,
        &mut api_threads,
    );
    if let Some(error) = &failure {
        // `/healthz` answers 503 from now on (the heartbeat is decades old), and ingest 503
        // on SQLite (nothing takes commands; on Postgres API threads commit events themselves,
        // and another instance or the next start sends them). Attempts already running end
        // first (their results cannot be written: start-up recovery sends them again); then
        // the API stops.
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
    // It notices `stopping` within `wakeups::LISTEN_POLL`, while the scheduler drains.
    if let Some(thread) = listen_thread {
        let _ = thread.join();
    }
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

/// Postgres only: the `listen` thread, which passes other instances' wake-ups to this one's
/// scheduler (`engine::wakeups`). It ends once `stopping` is set.
fn start_listening(
    db: &DbTarget,
    instance_id: &str,
    shared: &http::Shared,
    stopping: &Arc<AtomicBool>,
    ended_tx: &Sender<Ended>,
) -> Option<thread::JoinHandle<()>> {
    let DbTarget::Postgres(url) = db else {
        return None;
    };
    let (url, instance_id) = (url.clone(), instance_id.to_string());
    let (commands, stopping) = (shared.commands.clone(), stopping.clone());
    Some(spawn_watched("listen".into(), ended_tx, move || {
        wakeups::main(url, instance_id, commands, stopping)
    }))
}

/// Supervision until a signal: a worker or API thread that dies is replaced (a worker's job
/// went back to pending as it unwound); the scheduler or the signal thread dying cannot be
/// recovered here: `/healthz` answers 503 and the process exits non-zero, for its supervisor to
/// restart it (start-up recovery returns what was in flight). Answers that failure, if any.
fn supervise(
    signal_rx: &Receiver<Option<i32>>,
    ended_rx: &Receiver<Ended>,
    ended_tx: &Sender<Ended>,
    worker_configs: &[Worker],
    workers: &mut Vec<thread::JoinHandle<()>>,
    spawn_api: &dyn Fn(String) -> Result<thread::JoinHandle<()>, Error>,
    api_threads: &mut Vec<thread::JoinHandle<()>>,
) -> Option<Error> {
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
                    workers.push(spawn_watched(ended.name, ended_tx, move || worker::main(worker)));
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
    failure
}

/// A scheduler panic makes `/healthz` answer 503 at once, before anything unwinds (an ingest
/// caller answered 503 by the unwinding must not then find the service healthy).
fn unhealthy_on_scheduler_panic(heartbeat_ms: Arc<AtomicI64>) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name() == Some("scheduler") {
            heartbeat_ms.store(0, Ordering::Relaxed);
        }
        default_hook(info);
    }));
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
fn admin_token(conn: &store::Db, config: &Config) -> Result<(String, Option<String>), Error> {
    if let Some(token) = &config.admin_token {
        return Ok((sha256_hex(token), None));
    }
    if let Some(hash) = store::meta(conn, "admin_token_sha256")? {
        return Ok((hash, None));
    }
    let token = new_token("cew_admin");
    let hash = sha256_hex(&token);
    // Instances starting together on an empty database race here: one hash is kept, and only
    // the instance whose hash it is shows its token.
    match store::set_meta_if_absent(conn, "admin_token_sha256", &hash)? {
        Some(kept) if kept != hash => Ok((kept, None)),
        _ => Ok((hash, Some(token))),
    }
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

/// What `serve` prints on stdout at start: where it listens, and the admin token when it was
/// made just now (shown this once).
fn print_banner(
    addr: std::net::SocketAddr,
    new_admin_token: Option<&str>,
    admin_token_given: bool,
) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{addr}");
    match new_admin_token {
        Some(token) => {
            let _ = writeln!(stdout, "admin token: {token}");
            let _ = writeln!(
                stdout,
                "(shown once; only its hash is kept in the database. Use it as: Authorization: Bearer <token>)"
            );
        }
        None if !admin_token_given => {
            let _ = writeln!(
                stdout,
                "admin token: the one shown at first start (or set one with --admin-token)"
            );
        }
        None => {}
    }
    let _ = stdout.flush();
    drop(stdout);
}
