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

mod load;
mod service;

use load::*;
use service::*;

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
pub(crate) const SCENARIOS: &[&str] = &[
    "ingest",
    "ingest-fanout1",
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
    override_usage = "clockeye-webhooks bench [--runs N] [--deliveries N] [--ingest-events N] [--latency-seconds S] [--serve-flag FLAG]... [--only SCENARIO]... [--db postgres://… [--instances N]] [--receiver-url URL]\n       clockeye-webhooks bench --soak-minutes M [--soak-rate EVENTS_PER_S] [--serve-flag FLAG]...",
    after_help = AFTER_HELP
)]
pub(crate) struct Options {
    /// Events for the single-event ingest figure.
    #[arg(long, value_name = "N", default_value_t = Options::default().ingest_events, value_parser = positive, help = "events for the single-event ingest figure")]
    pub(crate) ingest_events: usize,
    /// Deliveries for each end-to-end figure (fan-out 1 and 10).
    #[arg(long, value_name = "N", default_value_t = Options::default().deliveries, value_parser = positive, help = "deliveries for each end-to-end figure (fan-out 1 and 10)")]
    pub(crate) deliveries: usize,
    /// Seconds of each steady-rate latency run.
    #[arg(long, value_name = "S", default_value_t = Options::default().latency_seconds, value_parser = positive_u64, help = "seconds of each steady-rate latency run")]
    pub(crate) latency_seconds: u64,
    /// Whole repetitions; the table shows medians.
    #[arg(long, value_name = "N", default_value_t = Options::default().runs, value_parser = positive, help = "whole repetitions; the table shows medians")]
    pub(crate) runs: usize,
    /// Extra flags for `serve` (e.g. `--workers 16`), one per `--serve-flag`.
    #[arg(
        long = "serve-flag",
        value_name = "FLAG",
        allow_hyphen_values = true,
        help = "an extra flag for serve (e.g. --serve-flag --workers --serve-flag 16); repeatable"
    )]
    pub(crate) serve_flags: Vec<String>,
    /// When set: instead of the figures, a soak of this many minutes at `soak_rate`.
    #[arg(long, value_name = "M", value_parser = positive_u64, help = "instead of the figures, a soak of this many minutes at --soak-rate")]
    pub(crate) soak_minutes: Option<u64>,
    /// Events per second of the soak.
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = Options::default().soak_rate, value_parser = positive_u64, help = "events per second of the soak")]
    pub(crate) soak_rate: u64,
    /// When not empty: run only the scenarios named here (`--only NAME`, repeatable; the names
    /// are `SCENARIOS`).
    #[arg(long, value_name = "SCENARIO", value_parser = scenario, help = "run only this scenario (repeatable): ingest, ingest-fanout1, ingest-fanout10, fanout1, fanout10, latency, slow-receiver, two-write-receiver, delete")]
    pub(crate) only: Vec<String>,
    /// A Postgres server to run on instead of SQLite files: each scenario gets a fresh database
    /// there (the user needs CREATEDB), dropped afterwards.
    #[arg(long, value_name = "URL", value_parser = postgres_url, help = "run on Postgres: postgres://user@host:port/db (needs CREATEDB; each scenario makes and drops its own database)")]
    pub(crate) db: Option<String>,
    /// Services sharing the database (Postgres only); the load clients take turns over them.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive, help = "services on the one Postgres database (needs --db); load clients take turns over them")]
    pub(crate) instances: usize,
    /// A receiver of your own on loopback (e.g. nginx answering 200) for the end-to-end
    /// scenarios, instead of the bench's; arrivals are then counted from the service's
    /// `clockeye_attempts_total{outcome="succeeded"}`.
    #[arg(long, value_name = "URL", value_parser = loopback_url, help = "the end-to-end scenarios deliver to this receiver on loopback (e.g. nginx answering 200) instead of the bench's own")]
    pub(crate) receiver_url: Option<String>,
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
            db: None,
            instances: 1,
            receiver_url: None,
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

fn postgres_url(value: &str) -> Result<String, String> {
    match crate::store::DbTarget::parse(value) {
        crate::store::DbTarget::Postgres(url) => url
            .parse::<postgres::Config>()
            .map(|_| url.clone())
            .map_err(|error| format!("is not a Postgres URL ({error})")),
        crate::store::DbTarget::Sqlite(_) => {
            Err("takes a postgres:// URL (SQLite is the default: leave --db out)".into())
        }
    }
}

/// An `http://` URL whose host is a loopback address: the bench sends nowhere else.
fn loopback_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("http://")
        .ok_or_else(|| format!("{value:?} is not an http:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.split(':').next().unwrap_or_default();
    // The bench's services allow 127.0.0.0/8 only (`--allow-network`).
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) if ip.is_loopback() => Ok(value.to_string()),
        _ => Err(format!(
            "{value:?}: the receiver must be on a loopback address (127.0.0.0/8)"
        )),
    }
}

fn positive_u64(value: &str) -> Result<u64, String> {
    positive(value).map(|n| n as u64)
}

const AFTER_HELP: &str = "Starts `clockeye-webhooks serve` on a fresh database per scenario, with a receiver on 127.0.0.1,
and prints: single-event and batch ingest rates, single events to 1 and to 10 endpoints each
from 16 keep-alive clients (events/s ingested, deliveries/s until all arrived),
end-to-end deliveries/s at fan-out 1 and 10, ingest-ack-to-arrival latency at 200 and 500
events/s, deliveries/s to one receiver taking 50 ms per request, latency at 200 events/s to a
keep-alive receiver answering in two writes, the worst ingest answer while an endpoint with
100,000 deliveries is deleted, peak RSS, database size per 100,000 delivered events, binary
size. With --runs N it prints the median of N runs, and each run's JSON.
--only SCENARIO (repeatable) runs only those: ingest, ingest-fanout1, ingest-fanout10, fanout1,
fanout10, latency, slow-receiver, two-write-receiver, delete. --receiver-url sends fanout1 and
fanout10 to a receiver of yours on loopback (e.g. nginx answering 200), counting arrivals from
the service's clockeye_attempts_total.

With --soak-minutes it instead sends a steady stream (default 200 events/s) for M minutes and
prints, each minute, events sent and delivered, the service's RSS and the database size.

examples: cargo run --release -- bench --runs 3
          cargo run --release -- bench --soak-minutes 10";

/// One whole run: every scenario (or those of `--only`) on its own fresh service.
fn run_once(exe: &Path, options: &Options, run: usize) -> Value {
    let wanted = |name: &str| options.only.is_empty() || options.only.iter().any(|o| o == name);
    let receiver = Receiver::start();
    let root = std::env::temp_dir().join(format!("clockeye-bench-{}-{run}", std::process::id()));
    let target = Target {
        postgres: options.db.clone(),
        instances: options.instances,
    };
    let fresh = |name: &str| Service::start(exe, root.join(name), &options.serve_flags, &target);
    let mut peak_rss_kib = 0;
    let mut postgres_pss_kib = 0;
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
        postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
    }

    // Single events while each goes to 1 or 10 endpoints (at 10 the answer lists 10
    // deliveries, about 1 KiB), delivery running beside ingest, as in production.
    for fan_out in [1, 10] {
        if wanted(&format!("ingest-fanout{fan_out}")) {
            let service = fresh(&format!("ingest-fanout{fan_out}"));
            let (events, deliveries) =
                single_end_to_end(&service, &receiver, fan_out, options.ingest_events);
            figures.insert(
                format!("ingest_single_fan_out_{fan_out}_events_per_s"),
                json!(events),
            );
            figures.insert(
                format!("single_fan_out_{fan_out}_deliveries_per_s"),
                json!(deliveries),
            );
            peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
            postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
        }
    }

    let fast_end_to_end = |service: &Service, fan_out: usize| match &options.receiver_url {
        Some(url) => end_to_end_external(service, url, fan_out, options.deliveries),
        None => end_to_end(service, &receiver, fan_out, options.deliveries),
    };
    if wanted("fanout1") {
        let service = fresh("fanout1");
        let (fan_out_1, db_bytes_per_100k) = fast_end_to_end(&service, 1);
        figures.insert(
            "end_to_end_fan_out_1_deliveries_per_s".into(),
            json!(fan_out_1),
        );
        figures.insert(
            "database_bytes_per_100k_delivered".into(),
            json!(db_bytes_per_100k),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
        postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
    }

    if wanted("fanout10") {
        let service = fresh("fanout10");
        let (fan_out_10, _) = fast_end_to_end(&service, 10);
        figures.insert(
            "end_to_end_fan_out_10_deliveries_per_s".into(),
            json!(fan_out_10),
        );
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
        postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
    }

    if wanted("latency") {
        let mut latencies = Vec::new();
        for rate in [200, 500] {
            let service = fresh(&format!("latency{rate}"));
            service.endpoint(&format!("{}/ep0", receiver.url));
            let (p50, p99, max) = latency(&service, &receiver, rate, options.latency_seconds);
            peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
            postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
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
        postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
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
        postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
    }

    if wanted("delete") {
        let service = fresh("delete");
        let (delete_ingest_max_ms, delete_ms, delete_purge_s) =
            delete_during_ingest(&service, &receiver);
        figures.insert("delete_ingest_max_ms".into(), json!(delete_ingest_max_ms));
        figures.insert("delete_answer_ms".into(), json!(delete_ms));
        figures.insert("delete_purge_s".into(), json!(delete_purge_s));
        peak_rss_kib = peak_rss_kib.max(service.peak_rss_kib());
        postgres_pss_kib = postgres_pss_kib.max(service.postgres_pss_kib());
    }

    let _ = std::fs::remove_dir_all(&root);
    figures.insert("peak_rss_mib".into(), json!(peak_rss_kib as f64 / 1024.0));
    if options.db.is_some() {
        figures.insert(
            "postgres_pss_mib".into(),
            json!(postgres_pss_kib as f64 / 1024.0),
        );
    }
    figures.insert(
        "binary_bytes".into(),
        json!(std::fs::metadata(exe).map(|m| m.len()).unwrap_or(0)),
    );
    Value::Object(figures)
}

/// Prints a table row; a cell with a figure `--only` left out says just "not run".
fn row(line: String) {
    let cells: Vec<String> = line
        .split('|')
        .map(|cell| {
            if cell.contains("not run") {
                " not run ".to_string()
            } else {
                cell.to_string()
            }
        })
        .collect();
    println!("{}", cells.join("|"));
}

/// A figure for the table: "not run" for a scenario `--only` left out.
fn shown(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "not run".into()
    } else {
        format!("{value:.decimals$}")
    }
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
    let target = Target {
        postgres: options.db.clone(),
        instances: options.instances,
    };
    let service = Service::start(exe, root.join("soak"), &options.serve_flags, &target);
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

pub(crate) fn main(options: Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    if options.instances > 1 && options.db.is_none() {
        return Err("--instances needs --db postgres://…: one service owns a SQLite file".into());
    }
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
    let storage = match &options.db {
        Some(url) => format!(
            "Postgres {}, {} instance(s)",
            crate::store::pg::redacted(url),
            options.instances
        ),
        None => "SQLite, synchronous=FULL".to_string(),
    };
    println!(
        "clockeye-webhooks bench: {} run(s), median shown; {cores} cores; {storage}; receiver on loopback",
        options.runs
    );
    println!("| figure | value |");
    println!("|---|---|");
    row(format!(
        "| ingest, single events, {INGEST_CLIENTS} clients | {} events/s |",
        shown(pick(&number("ingest_single_events_per_s")), 0)
    ));
    row(format!(
        "| ingest, batches of {BATCH_EVENTS}, {BATCH_CLIENTS} clients | {} events/s |",
        shown(pick(&number("ingest_batch_events_per_s")), 0)
    ));
    for fan_out in [1, 10] {
        let events = format!("ingest_single_fan_out_{fan_out}_events_per_s");
        let deliveries = format!("single_fan_out_{fan_out}_deliveries_per_s");
        let key = |key: String| move |run: &Value| run[&key].as_f64().unwrap_or(f64::NAN);
        row(format!(
            "| single events at fan-out {fan_out}, {INGEST_CLIENTS} keep-alive clients, {} events, delivered meanwhile: ingested; delivered | {} events/s; {} deliveries/s |",
            options.ingest_events,
            shown(pick(&key(events)), 0),
            shown(pick(&key(deliveries)), 0)
        ));
    }
    row(format!(
        "| end to end, fan-out 1, {} deliveries, events in batches of {BATCH_EVENTS} (target ≥ 10,000) | {} deliveries/s |",
        options.deliveries,
        shown(pick(&number("end_to_end_fan_out_1_deliveries_per_s")), 0)
    ));
    row(format!(
        "| end to end, fan-out 10, {} deliveries, events in batches of {BATCH_EVENTS} (target ≥ 15,000) | {} deliveries/s |",
        options.deliveries,
        shown(pick(&number("end_to_end_fan_out_10_deliveries_per_s")), 0)
    ));
    row(format!(
        "| one endpoint at {} ms per request, {SLOW_RECEIVER_DELIVERIES} deliveries (target ≥ 400) | {} deliveries/s |",
        SLOW_RECEIVER_DELAY.as_millis(),
        shown(pick(&number("slow_receiver_deliveries_per_s")), 0)
    ));
    let two_write = |key: &'static str| {
        move |run: &Value| {
            run["two_write_receiver_latency"][key]
                .as_f64()
                .unwrap_or(f64::NAN)
        }
    };
    row(format!(
        "| two-write keep-alive receiver at {TWO_WRITE_RATE}/s, p50 / p99 / max (target p99 < 10) | {} / {} / {} ms |",
        shown(pick(&two_write("p50_ms")), 2),
        shown(pick(&two_write("p99_ms")), 2),
        shown(pick(&two_write("max_ms")), 2)
    ));
    for (index, rate) in [200, 500].into_iter().enumerate() {
        row(format!(
            "| latency ack→arrival at {rate}/s, p50 / p99 / max | {} / {} / {} ms |",
            shown(pick(&latency(index, "p50_ms")), 2),
            shown(pick(&latency(index, "p99_ms")), 2),
            shown(pick(&latency(index, "max_ms")), 2)
        ));
    }
    row(format!(
        "| ingest answer during a DELETE of an endpoint with {DELETE_HISTORY} deliveries, worst (DELETE answer; purge) | {} ms ({} ms; {} s) |",
        shown(pick(&number("delete_ingest_max_ms")), 1),
        shown(pick(&number("delete_answer_ms")), 1),
        shown(pick(&number("delete_purge_s")), 1)
    ));
    row(format!(
        "| peak RSS of the service | {} MiB |",
        shown(pick(&number("peak_rss_mib")), 1)
    ));
    row(format!(
        "| database per 100,000 delivered events | {} MiB |",
        shown(
            pick(&number("database_bytes_per_100k_delivered")) / 1_048_576.0,
            1
        )
    ));
    if options.db.is_some() {
        row(format!(
            "| PSS of the Postgres processes on this machine, peak | {} MiB |",
            shown(pick(&number("postgres_pss_mib")), 1)
        ));
    }
    row(format!(
        "| binary size | {} MiB |",
        shown(pick(&number("binary_bytes")) / 1_048_576.0, 1)
    ));
    println!("{}", json!({ "runs": runs }));
    Ok(())
}
