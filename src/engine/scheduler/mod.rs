//! The scheduler thread: the one writer of the outbox (on Postgres API threads commit new
//! events themselves and wake it). Each round it takes whatever waits (events to ingest,
//! attempt results from workers), writes it all and claims due deliveries in ONE transaction
//! (group commit: one fsync for many rows), then answers the ingest callers and hands the claimed
//! jobs to the workers. A new event is claimed in the same round it is stored, so its first
//! attempt starts right after the commit, not at the next poll. This file is the I/O loop
//! (channels, `Now::read`: its one clock read); `decide.rs` holds its decisions as pure
//! functions, `round.rs` what a round writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::store::Db;
use crossbeam_channel::{Receiver, Sender, select};

pub(crate) mod decide;
mod membership;
mod round;

use decide::{Now, State, Work};
use membership::Membership;
use round::{Claims, RoundOutput};

use crate::engine::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::model::{AttemptResult, NewEvent, StoredEvent};
use crate::store::Release;
use crate::time::now_ms;

/// Most commands waiting for the scheduler; API threads block past it (backpressure; on
/// Postgres ingest sends only wake-ups, dropped when full).
pub(crate) const COMMAND_QUEUE_MAX: usize = 4096;
/// Most ingest commands written in one transaction.
pub(crate) const COMMANDS_PER_ROUND_MAX: usize = 1024;
/// Most attempt results written in one transaction.
pub(crate) const RESULTS_PER_ROUND_MAX: usize = 4096;
/// Most deliveries claimed in one transaction.
pub(crate) const CLAIM_BATCH_MAX: usize = 512;
/// Longest wait between rounds when nothing is due: picks up changes made by API threads
/// (an endpoint enabled, a delivery retried) even if their wake-up was missed.
pub(crate) const POLL_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// How long a round holding only attempt results waits for more, and how many it waits for.
pub(crate) const RESULTS_LINGER: Duration = Duration::from_millis(2);
pub(crate) const RESULTS_LINGER_COUNT: usize = 256;
/// Most events pruned per retention transaction, and the longest pause between prunes; a full
/// batch is followed by the next one at once.
pub(crate) const PRUNE_BATCH_MAX: usize = 500;
pub(crate) const PRUNE_INTERVAL_MAX: Duration = Duration::from_secs(10);
/// Pause after a failed commit (disk full, read-only file) before trying again.
pub(crate) const FAILED_COMMIT_BACKOFF: Duration = Duration::from_millis(200);
/// A claim's lease is the attempt timeout plus this: time for a queued job to reach a worker
/// and for its result to come back. The scheduler renews the leases of the jobs it holds; a
/// lease that runs out means its owner died or lost the job, and it goes back to `pending`.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often the leases of held jobs are renewed (each when less than half of it is left).
pub(crate) const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// Most expired leases returned to `pending` per round.
pub(crate) const LEASE_RELEASE_BATCH_MAX: usize = 512;
/// A job whose worker panicked is due again after this (not at once: a panic that repeats for
/// one delivery must not spin).
pub(crate) const PANICKED_JOB_DELAY: Duration = Duration::from_secs(1);

const _: () = assert!(COMMANDS_PER_ROUND_MAX <= COMMAND_QUEUE_MAX);
const _: () = assert!(RESULTS_LINGER_COUNT <= RESULTS_PER_ROUND_MAX);

/// Where the scheduler answers an ingest command, once its transaction has committed.
pub(crate) type IngestReply = Sender<Result<Vec<StoredEvent>>>;

/// What API threads ask of the scheduler.
pub(crate) enum Command {
    /// Store these events, all or nothing, and answer once committed.
    Ingest {
        events: Vec<NewEvent>,
        reply: IngestReply,
    },
    /// Something due may have changed (a retry, an endpoint enabled): look again now.
    Wake,
    /// An endpoint was changed or deleted: jobs claimed for it with the old settings (URL,
    /// secret, enabled) and not yet started go back to `pending`, to be claimed afresh or not.
    EndpointChanged { endpoint_seq: i64 },
}

/// The scheduler's ends of its channels and its limits.
pub(crate) struct Scheduler {
    pub(crate) conn: Db,
    pub(crate) commands: Receiver<Command>,
    pub(crate) results: Receiver<AttemptResult>,
    /// Jobs whose worker panicked: given up unstarted, no attempt to record.
    pub(crate) releases: Receiver<Release>,
    /// `--attempt-timeout`; a claim's lease is this plus `LEASE_MARGIN`.
    pub(crate) attempt_timeout: Duration,
    /// Where claimed jobs wait for a worker, per endpoint.
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// Jobs claimed for one endpoint and not finished (queued or running), per place in its
    /// window: enough to keep the window busy between rounds, few enough that a hanging
    /// endpoint (whose window shrinks) does not hold many deliveries in `delivering`.
    pub(crate) claimed_per_slot: usize,
    pub(crate) shutdown: Receiver<()>,
    /// Most jobs claimed and not yet answered, over all endpoints.
    pub(crate) jobs_in_flight_max: usize,
    /// `--retention`: finished work older than this is pruned.
    pub(crate) retention: Duration,
    /// `--disable-after`: an endpoint whose every attempt failed this long is disabled.
    pub(crate) disable_after: Duration,
    /// How long shutdown waits for attempts in flight.
    pub(crate) drain_timeout: Duration,
    /// Unix ms of the last round, read by `/healthz`.
    pub(crate) heartbeat_ms: Arc<AtomicI64>,
    /// This process among the instances on one Postgres database (`ins_…`, new per process).
    pub(crate) instance_id: String,
}

struct Round {
    ingests: Vec<(Vec<NewEvent>, IngestReply)>,
    results: Vec<AttemptResult>,
    woken: bool,
    changed_endpoints: Vec<i64>,
}

/// Counters logged when the scheduler stops: how well rounds batch.
#[derive(Debug, Default)]
struct Stats {
    rounds: u64,
    pruned_events: u64,
    ingest_commands: u64,
    results: u64,
    claimed: u64,
}

impl Now {
    /// The scheduler's one clock read: both clocks at once.
    pub(crate) fn read() -> Now {
        Now {
            ms: now_ms(),
            at: Instant::now(),
        }
    }
}

pub(crate) fn main(mut scheduler: Scheduler) {
    let mut stats = Stats::default();
    let start = Now::read();
    let mut state = State {
        jobs_in_flight: 0,
        jobs_in_flight_max: scheduler.jobs_in_flight_max,
        released: 0,
        failed_commits: 0,
        next_due_ms: Some(0),
        drain_deadline: None,
        next_prune: start.at,
        next_purge: start.at,
    };
    // Results whose commit failed are kept and written again in a later round (however long
    // the database refuses writes: they are bounded by the jobs in flight).
    let mut unwritten: Vec<AttemptResult> = Vec::new();
    // Jobs taken back from the queue (at shutdown, endpoint changed) or given up by a panicked
    // worker, to put back to `pending`.
    let mut released: Vec<Release> = Vec::new();
    // The claims this scheduler holds (delivery seq -> claim, lease end), to renew their leases.
    let mut held: HashMap<i64, (i64, i64)> = HashMap::new();
    // Per endpoint, when this scheduler last wrote a success of its health (see
    // `decide::health_write_needed`).
    let health_written = std::cell::RefCell::new(HashMap::new());
    let lease_ms = decide::lease_ms(scheduler.attempt_timeout, LEASE_MARGIN);
    let mut next_renew = start.at;
    let never_results = crossbeam_channel::never();
    let never_releases = crossbeam_channel::never();
    let mut results_open = true;
    let mut releases_open = true;
    let never_commands = crossbeam_channel::never();
    let never_shutdown = crossbeam_channel::never();
    let mut commands_open = true;
    let prune_interval = decide::prune_interval(scheduler.retention);
    let mut shutdown_open = true;
    let mut membership = Membership::new(scheduler.instance_id.clone(), start.ms, start.at);
    loop {
        // Postgres: heartbeat and the rate limit split, once a second.
        let beat = Now::read();
        for job in membership.beat(&scheduler.conn, &scheduler.dispatcher, beat.at) {
            state.jobs_in_flight -= 1;
            released.push(round::release_now(&job, beat.ms));
        }
        state.released = released.len();
        let now = Now::read();
        scheduler.heartbeat_ms.store(now.ms, Ordering::Relaxed);
        if decide::stopped(&state, now) {
            unwritten.extend(scheduler.results.try_iter());
            if !unwritten.is_empty() {
                round::write_results_at_exit(&mut scheduler.conn, &unwritten, now.ms);
            }
            let still_in_flight = state.jobs_in_flight.saturating_sub(unwritten.len());
            if still_in_flight > 0 {
                log::warn!(
                    "shutdown: {still_in_flight} attempts still in flight; they are sent again after restart"
                );
            }
            log::info!(
                "scheduler stopped: rounds={} pruned_events={} ingest_commands={} results={} claimed={}",
                stats.rounds,
                stats.pruned_events,
                stats.ingest_commands,
                stats.results,
                stats.claimed
            );
            membership.leave(&scheduler.conn);
            return;
        }
        if decide::prune_due(&state, now) {
            let pruned = round::prune(&mut scheduler.conn, scheduler.retention, now.ms);
            stats.pruned_events += pruned as u64;
            state.next_prune = decide::next_prune(pruned, prune_interval, Now::read());
        }
        // A deleted endpoint's history, one batch between rounds (see engine/purge.rs).
        let now = Now::read();
        if decide::purge_due(&state, now) {
            state.next_purge = now.at + crate::engine::purge::pass(&mut scheduler.conn);
        }
        let wait = decide::wait(&state, Now::read());
        let mut round = Round {
            ingests: Vec::new(),
            results: std::mem::take(&mut unwritten),
            woken: false,
            changed_endpoints: Vec::new(),
        };
        let commands = if commands_open {
            &scheduler.commands
        } else {
            &never_commands
        };
        let shutdown = if shutdown_open {
            &scheduler.shutdown
        } else {
            &never_shutdown
        };
        let results = if results_open {
            &scheduler.results
        } else {
            &never_results
        };
        let releases = if releases_open {
            &scheduler.releases
        } else {
            &never_releases
        };
        let mut start_drain = false;
        select! {
            recv(commands) -> command => match command {
                Ok(command) => take_command(&mut round, command),
                // Every API thread is gone: nothing more will be ingested.
                Err(_) => { commands_open = false; start_drain = true; }
            },
            recv(results) -> result => match result {
                Ok(result) => {
                    state.jobs_in_flight -= 1;
                    round.results.push(result);
                }
                // No worker is left to send (never while the supervisor keeps a sender).
                Err(_) => results_open = false,
            },
            recv(releases) -> release => match release {
                Ok(release) => {
                    state.jobs_in_flight -= 1;
                    released.push(release);
                }
                Err(_) => releases_open = false,
            },
            recv(shutdown) -> _ => { shutdown_open = false; start_drain = true; },
            // Nothing arrived: look at the database anyway (a missed wake-up, a due retry).
            default(wait) => round.woken = true,
        }
        if start_drain && state.drain_deadline.is_none() {
            let now = Now::read();
            state.drain_deadline = Some(now.at + scheduler.drain_timeout);
            // Jobs no worker has started yet go back to `pending` rather than out.
            for job in scheduler.dispatcher.take_back_queued() {
                state.jobs_in_flight -= 1;
                released.push(round::release_now(&job, now.ms));
            }
        }
        // Attempt results are not urgent, and every transaction rewrites the b-tree pages it
        // touches: a round of a few results costs nearly what a round of a hundred does. So a
        // round holding only results waits briefly for more (`decide::linger`).
        let linger_until = Now::read().at + RESULTS_LINGER;
        while decide::linger(&round.work(), scheduler.dispatcher.queued()) {
            let left = linger_until.saturating_duration_since(Now::read().at);
            if left.is_zero() {
                break;
            }
            select! {
                recv(scheduler.results) -> result => match result {
                    Ok(result) => {
                        state.jobs_in_flight -= 1;
                        round.results.push(result);
                    }
                    Err(_) => break,
                },
                recv(commands) -> command => {
                    match command {
                        Ok(command) => take_command(&mut round, command),
                        Err(_) => commands_open = false,
                    }
                    break;
                },
                default(left) => break,
            }
        }
        while commands_open && round.ingests.len() < COMMANDS_PER_ROUND_MAX {
            let Ok(command) = scheduler.commands.try_recv() else {
                break;
            };
            take_command(&mut round, command);
        }
        while round.results.len() < RESULTS_PER_ROUND_MAX {
            let Ok(result) = scheduler.results.try_recv() else {
                break;
            };
            state.jobs_in_flight -= 1;
            round.results.push(result);
        }
        for release in scheduler.releases.try_iter() {
            state.jobs_in_flight -= 1;
            released.push(release);
        }
        // Tests only: a round storing an event whose id is `panic-scheduler`.
        crate::engine::faults::panic_if_armed("scheduler_round", || {
            round
                .ingests
                .iter()
                .flat_map(|(events, _)| events)
                .any(|e| e.id == "panic-scheduler")
        });

        // Claimed for an endpoint that changed: back to `pending`, claimed afresh below if due.
        for endpoint_seq in std::mem::take(&mut round.changed_endpoints) {
            let now = Now::read();
            state.next_purge = now.at; // it may have been deleted
            for job in scheduler.dispatcher.take_back_endpoint(endpoint_seq) {
                state.jobs_in_flight -= 1;
                released.push(round::release_now(&job, now.ms));
            }
        }
        let now = Now::read();
        // A job answered (result or release) is no longer held: its row leaves `delivering` in
        // the transaction that writes the answer, however many rounds that takes.
        for result in &round.results {
            held.remove(&result.delivery_seq);
        }
        for release in &released {
            held.remove(&release.delivery_seq);
        }
        // Held claims whose lease is past half: renewed in this round's transaction.
        let mut renew = Vec::new();
        let renew_due = now.at >= next_renew;
        if renew_due {
            renew = decide::renewals(&held, now.ms, lease_ms);
        }
        state.released = released.len();
        if !decide::round_needed(&round.work(), &state, now) {
            continue;
        }
        let claim_limit = decide::claim_limit(&state);
        let Round {
            ingests, results, ..
        } = round;
        let claims = Claims {
            limit: claim_limit,
            dispatcher: &scheduler.dispatcher,
            claimed_per_slot: scheduler.claimed_per_slot,
            disable_after_ms: crate::time::duration_ms(scheduler.disable_after),
            lease_expires_at_ms: now.ms.saturating_add(lease_ms),
            renew: &renew,
            renew_due,
            health_written: &health_written,
            left_due: std::cell::Cell::new(false),
        };
        match round::write_round(
            &mut scheduler.conn,
            &ingests,
            &results,
            &released,
            &claims,
            now.ms,
        ) {
            Ok(RoundOutput {
                answers,
                jobs,
                next_due_ms,
                disabled,
            }) => {
                state.failed_commits = 0;
                released.clear();
                if renew_due {
                    for (seq, _) in &renew {
                        if let Some((_, until)) = held.get_mut(seq) {
                            *until = claims.lease_expires_at_ms;
                        }
                    }
                    next_renew = Now::read().at + LEASE_RENEW_INTERVAL;
                }
                for job in &jobs {
                    held.insert(job.delivery_seq, (job.claim, claims.lease_expires_at_ms));
                }
                // A disabled endpoint's jobs not yet started go back to `pending` and wait.
                for (endpoint_seq, reason) in disabled {
                    log::warn!(
                        "endpoint disabled: endpoint_seq={endpoint_seq} reason=\"{reason}\""
                    );
                    let now = Now::read();
                    for job in scheduler.dispatcher.take_back_endpoint(endpoint_seq) {
                        state.jobs_in_flight -= 1;
                        released.push(round::release_now(&job, now.ms));
                    }
                }
                stats.rounds += 1;
                stats.ingest_commands += ingests.len() as u64;
                stats.results += results.len() as u64;
                stats.claimed += jobs.len() as u64;
                for ((_, reply), answer) in ingests.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
                state.jobs_in_flight += jobs.len();
                // Jobs of endpoints whose rate limit share here is 0 go back at once.
                for job in scheduler.dispatcher.push(jobs) {
                    state.jobs_in_flight -= 1;
                    released.push(round::release_now(&job, now.ms));
                }
                state.next_due_ms = next_due_ms;
                membership.after_round(&scheduler.conn, claims.left_due.get(), Now::read().at);
            }
            Err(error) => {
                state.failed_commits += 1;
                log::error!(
                    "commit failed (try {}): error={error} ingest_commands_refused={} results_kept={}",
                    state.failed_commits,
                    ingests.len(),
                    results.len()
                );
                for (_, reply) in ingests {
                    let _ = reply.send(Err(Error::Unavailable(error.to_string())));
                }
                unwritten = results;
                state.next_due_ms = Some(now.ms);
            }
        }
    }
}

impl Round {
    /// What this round took, as the decisions see it.
    fn work(&self) -> Work {
        Work {
            ingests: self.ingests.len(),
            results: self.results.len(),
            woken: self.woken,
        }
    }
}

fn take_command(round: &mut Round, command: Command) {
    match command {
        Command::Ingest { events, reply } => round.ingests.push((events, reply)),
        Command::Wake => round.woken = true,
        Command::EndpointChanged { endpoint_seq } => {
            round.woken = true;
            round.changed_endpoints.push(endpoint_seq);
        }
    }
}
