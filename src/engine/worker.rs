//! Sending threads. Each takes a job, signs it, POSTs it through its group's ureq agent (one
//! keep-alive pool per host for every `WORKERS_PER_POOL` workers), turns whatever happened into an `Outcome`, asks the retry policy
//! what follows, and hands the result back to the scheduler. Nothing here touches the database.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ureq::Agent;
use ureq::unversioned::transport::{Connector, RustlsConnector};

use crate::engine::dispatch::{Dispatcher, Sample, Signal, Takes};
use crate::engine::net::{AddressPolicy, VettingConnector, VettingResolver, blocked_address};
use crate::engine::retry;
use crate::engine::tcp::QuickAckConnector;
use crate::http::metrics::Metrics;
use crate::ids::sha256_hex;
use crate::model::{AttemptResult, ErrorClass, Job, Outcome};
use crate::signing::{clockeye_signature, standard_signature};
use crate::store::Release;
use crate::time::{now_ms, parse_http_date};

/// The start of a response body kept with the attempt.
pub(crate) const RESPONSE_EXCERPT_BYTES: usize = 4096;
/// Most response body read; past it the connection is dropped instead of drained.
pub(crate) const RESPONSE_READ_BYTES_MAX: usize = 64 * 1024;
/// Read and write buffer of each pooled connection.
pub(crate) const CONNECTION_BUFFER_BYTES: usize = 16 * 1024;
/// How long an idle keep-alive connection is kept for reuse: under node's default 5 s
/// `keepAliveTimeout` (and ours), so an attempt does not race a receiver closing it.
pub(crate) const IDLE_CONNECTION_AGE_MAX: Duration = Duration::from_secs(4);
/// Idle keep-alive connections kept in all (shared out among the pools).
pub(crate) const IDLE_CONNECTIONS_MAX: usize = 1024;
/// Workers that share one ureq agent, and so one pool of keep-alive connections. ureq's pool
/// is one mutex, and each connection handed back to it is followed by a pass over every idle
/// connection comparing their hosts: with one pool for 128 workers, a profile at fan-out 10
/// found that pass at ~3.6% of the service's CPU, all of it under the one lock. A group of 8
/// keeps the pass short and still reuses a connection any of its workers left.
pub(crate) const WORKERS_PER_POOL: usize = 8;

/// `User-Agent` of every attempt.
pub(crate) fn user_agent() -> String {
    format!("ClockEye-Webhooks/{}", env!("CARGO_PKG_VERSION"))
}

/// TLS settings of attempts: the public web's roots (webpki-root-certs), plus any extra roots
/// from `--ca-file`.
pub(crate) fn tls_config(extra_roots_der: &[Vec<u8>]) -> ureq::tls::TlsConfig {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    if extra_roots_der.is_empty() {
        return TlsConfig::builder().root_certs(RootCerts::WebPki).build();
    }
    let roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .chain(
            extra_roots_der
                .iter()
                .map(|der| Certificate::from_der(der).to_owned()),
        )
        .collect();
    TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build()
}

/// The HTTP client of `workers` workers (see `WORKERS_PER_POOL`; `pools` of them in all):
/// explicit timeouts, no redirects, statuses as values, no proxy from the environment, our
/// resolver and connector so every dialled address is vetted.
pub(crate) fn agent(
    attempt_timeout: Duration,
    workers: usize,
    pools: usize,
    policy: Arc<AddressPolicy>,
    tls: ureq::tls::TlsConfig,
) -> Agent {
    let config = Agent::config_builder()
        .timeout_global(Some(attempt_timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent(user_agent())
        .max_idle_connections(IDLE_CONNECTIONS_MAX.div_ceil(pools.max(1)))
        .max_idle_connections_per_host(workers)
        .max_idle_age(IDLE_CONNECTION_AGE_MAX)
        // Requests leave at once (ureq's default too, set here on purpose): with Nagle a
        // request written in two parts would wait for the receiver's delayed ACK.
        .no_delay(true)
        // ureq's default 128 KiB each way per connection made the pool the biggest use of memory.
        .input_buffer_size(CONNECTION_BUFFER_BYTES)
        .output_buffer_size(CONNECTION_BUFFER_BYTES)
        .tls_config(tls)
        .build();
    let connector = ()
        .chain(VettingConnector {
            policy: policy.clone(),
        })
        // ureq's TCP connector, plus quick ACKs (see tcp.rs).
        .chain(QuickAckConnector)
        .chain(RustlsConnector::default());
    Agent::with_parts(config, connector, VettingResolver::new(policy))
}

#[derive(Clone)]
pub(crate) struct Worker {
    pub(crate) agent: Agent,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) takes: Takes,
    pub(crate) results: Sender<AttemptResult>,
    /// Where a panicking worker gives its job back (see `Holding`).
    pub(crate) releases: Sender<Release>,
    pub(crate) retry_schedule: Arc<Vec<Duration>>,
    pub(crate) metrics: Arc<Metrics>,
}

/// One worker in this many takes only first attempts, so retries cannot occupy every worker.
const FIRST_ATTEMPT_WORKERS_DIVISOR: usize = 4;

/// The settings of `count` workers made from `one`: a share of them takes only first attempts
/// (see `dispatch.rs`), the rest any job; each `WORKERS_PER_POOL` of them share one of `pools`.
pub(crate) fn crew(count: usize, one: &Worker, pools: &[Agent]) -> Vec<Worker> {
    (0..count)
        .map(|index| Worker {
            takes: if index < count / FIRST_ATTEMPT_WORKERS_DIVISOR {
                Takes::FirstAttemptsOnly
            } else {
                Takes::Any
            },
            agent: pools[(index / WORKERS_PER_POOL) % pools.len()].clone(),
            ..one.clone()
        })
        .collect()
}

/// A job a worker holds. If the worker panics (a bug, never the receiver's doing), dropping it
/// while unwinding frees the endpoint's slot and gives the job back to the scheduler unstarted:
/// no attempt is recorded and the endpoint's health is untouched. The thread then ends and the
/// supervisor (`serve.rs`) starts another worker in its place.
struct Holding<'a> {
    worker: &'a Worker,
    delivery_seq: i64,
    delivery_id: String,
    claim: i64,
    endpoint_seq: i64,
    /// The endpoint's slot is still taken.
    slot: bool,
    /// The job is not answered yet.
    armed: bool,
}

impl Holding<'_> {
    /// Frees the endpoint's slot once; its window learns from `sample`.
    fn free_slot(&mut self, sample: Sample) {
        if std::mem::take(&mut self.slot) {
            self.worker
                .dispatcher
                .done(self.endpoint_seq, sample, self.worker.takes);
        }
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        // A panic says nothing about the endpoint's capacity.
        self.free_slot(Sample {
            started: Instant::now(),
            latency: Duration::ZERO,
            signal: Signal::Neutral,
        });
        if self.armed {
            log::error!(
                "delivery={}: the worker panicked; the job goes back to pending unattempted",
                self.delivery_id
            );
            let delay = crate::engine::scheduler::PANICKED_JOB_DELAY.as_millis() as i64;
            let _ = self.worker.releases.send(Release {
                delivery_seq: self.delivery_seq,
                claim: self.claim,
                due_ms: now_ms() + delay,
            });
        }
    }
}

pub(crate) fn main(worker: Worker) {
    while let Some(job) = worker.dispatcher.take(worker.takes) {
        let mut holding = Holding {
            worker: &worker,
            delivery_seq: job.delivery_seq,
            delivery_id: job.delivery_id.clone(),
            claim: job.claim,
            endpoint_seq: job.endpoint_seq,
            slot: true,
            armed: true,
        };
        let started = Instant::now();
        let outcome = attempt(&worker.agent, &job);
        crate::engine::faults::panic_if_armed("worker_after_attempt", || true);
        holding.free_slot(Sample {
            started,
            latency: started.elapsed(),
            signal: signal(&outcome),
        });
        worker.metrics.attempt(&outcome);
        let finished_at_ms = outcome.started_at_ms + outcome.duration_ms;
        let decision = retry::next(
            &worker.retry_schedule,
            job.schedule_step,
            &outcome,
            finished_at_ms,
        );
        log::debug!(
            "delivery={} attempt={} status={:?} outcome={} elapsed_ms={}",
            job.delivery_id,
            job.attempt_number,
            outcome.status_code,
            outcome.error_class.map_or("succeeded", ErrorClass::as_str),
            outcome.duration_ms
        );
        let rejected_secret_sha256 = (job.may_switch_secret && retry::rejects_signature(&outcome))
            .then(|| sha256_hex(clockeye_secret(&job, outcome.started_at_ms)));
        let result = AttemptResult {
            delivery_seq: job.delivery_seq,
            delivery_id: job.delivery_id,
            endpoint_seq: job.endpoint_seq,
            attempt_number: job.attempt_number,
            claim: job.claim,
            outcome,
            decision,
            rejected_secret_sha256,
        };
        holding.armed = false;
        if worker.results.send(result).is_err() {
            return;
        }
    }
}

/// What an attempt says about its endpoint's capacity (see `dispatch::Window`).
fn signal(outcome: &Outcome) -> Signal {
    match (outcome.error_class, outcome.status_code) {
        (None, _) => Signal::Success,
        (Some(_), Some(429)) => Signal::Overload,
        (Some(_), Some(status)) if status >= 500 => Signal::Overload,
        (
            Some(ErrorClass::Timeout | ErrorClass::Connect | ErrorClass::Tls | ErrorClass::Dns),
            _,
        ) => Signal::Overload,
        (Some(_), _) => Signal::Neutral,
    }
}

/// The secret of `X-ClockEye-Signature` for an attempt starting at `now_ms`: the one the
/// endpoint last accepted while an overlap lasts, else the current one.
fn clockeye_secret(job: &Job, now_ms: i64) -> &str {
    match job.live_previous_secret(now_ms) {
        Some(previous) if job.sign_with_previous => previous,
        _ => &job.secret,
    }
}

/// One POST of a job; never an `Err`: every failure is an `Outcome`.
pub(crate) fn attempt(agent: &Agent, job: &Job) -> Outcome {
    let started_at_ms = now_ms();
    let started = Instant::now();
    let timestamp_s = started_at_ms.div_euclid(1000);
    // Standard Webhooks: one space-separated signature per live secret.
    let mut standard = standard_signature(&job.secret, &job.event_id, timestamp_s, &job.body);
    if let Some(previous) = job.live_previous_secret(started_at_ms) {
        standard.push(' ');
        standard.push_str(&standard_signature(
            previous,
            &job.event_id,
            timestamp_s,
            &job.body,
        ));
    }
    let mut request = agent
        .post(&job.url)
        .header("Content-Type", "application/json")
        .header(
            "X-ClockEye-Signature",
            clockeye_signature(clockeye_secret(job, started_at_ms), &job.body),
        )
        .header("X-ClockEye-Event", &job.event_type)
        .header("X-ClockEye-Event-Id", &job.event_id)
        .header("X-ClockEye-Delivery", &job.delivery_id)
        .header("X-ClockEye-Attempt", job.attempt_number.to_string())
        .header("webhook-id", &job.event_id)
        .header("webhook-timestamp", timestamp_s.to_string())
        .header("webhook-signature", standard);
    for (name, value) in &job.headers {
        request = request.header(name, value);
    }
    let mut outcome = Outcome {
        started_at_ms,
        duration_ms: 0,
        status_code: None,
        error_class: None,
        error_message: None,
        response_excerpt: None,
        retry_after_ms: None,
    };
    // The resolver runs on this thread; its lookups count against the endpoint's workspace.
    match crate::engine::net::in_workspace(&job.workspace_id, || request.send(&job.body[..])) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            outcome.status_code = Some(status);
            outcome.retry_after_ms = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, now_ms()));
            let mut body = Vec::new();
            let read = response
                .body_mut()
                .as_reader()
                .take(RESPONSE_READ_BYTES_MAX as u64)
                .read_to_end(&mut body);
            body.truncate(RESPONSE_EXCERPT_BYTES);
            if !body.is_empty() {
                outcome.response_excerpt = Some(String::from_utf8_lossy(&body).into_owned());
            }
            if !(200..300).contains(&status) {
                outcome.error_class = Some(if (300..400).contains(&status) {
                    ErrorClass::Redirect
                } else {
                    ErrorClass::HttpStatus
                });
                outcome.error_message = Some(format!("receiver answered {status}"));
            } else if let Err(error) = read {
                // A 2xx whose body could not be read in time is not a success.
                let (class, message) = classify(&ureq::Error::from(error));
                outcome.error_class = Some(class);
                outcome.error_message = Some(message);
            }
        }
        Err(error) => {
            let (class, message) = classify(&error);
            outcome.error_class = Some(class);
            outcome.error_message = Some(message);
        }
    }
    outcome.duration_ms = started.elapsed().as_millis() as i64;
    outcome
}

/// `Retry-After` as milliseconds from `now_ms`: delta-seconds or an HTTP date.
fn parse_retry_after(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(i64::from(seconds) * 1000);
    }
    parse_http_date(value).map(|at_ms| (at_ms - now_ms).max(0))
}

/// The error class and a one-line message for a failed request.
fn classify(error: &ureq::Error) -> (ErrorClass, String) {
    if let Some(ip) = blocked_address(error) {
        return (
            ErrorClass::BlockedAddress,
            crate::engine::net::BlockedAddress(ip).to_string(),
        );
    }
    if let Some(lookup) = crate::engine::net::lookup_error(error) {
        return (ErrorClass::Dns, format!("dns: {lookup}"));
    }
    let class = match error {
        ureq::Error::Timeout(_) => ErrorClass::Timeout,
        ureq::Error::HostNotFound => ErrorClass::Dns,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => ErrorClass::Tls,
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => ErrorClass::Redirect,
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            ErrorClass::Timeout
        }
        // rustls reports handshake and certificate failures inside an io::Error.
        ureq::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            ErrorClass::Tls
        }
        _ => ErrorClass::Connect,
    };
    let message = error.to_string().replace('\n', " ");
    (class, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4_000),
            Some(6_000)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 20_000),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
