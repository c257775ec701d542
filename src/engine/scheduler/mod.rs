//! The scheduler thread: the one writer. Each round it takes whatever waits (events to ingest,
//! attempt results from workers), writes it all and claims due deliveries in ONE transaction
//! (group commit: one fsync for many rows), then answers the ingest callers and hands the claimed
//! jobs to the workers. A new event is claimed in the same round it is stored, so its first
//! attempt starts right after the commit, not at the next poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use rusqlite::Connection;

use crate::engine::dispatch::Dispatcher;
use crate::engine::retry;
use crate::error::{Error, Result};
use crate::model::{AttemptResult, Job, NewEvent, StoredEvent};
use crate::store::{self, Release};
use crate::time::now_ms;

/// Most ingest commands waiting for the scheduler; API threads block past it (backpressure).
pub const COMMAND_QUEUE_MAX: usize = 4096;
/// Most ingest commands written in one transaction.
pub const COMMANDS_PER_ROUND_MAX: usize = 1024;
/// Most attempt results written in one transaction.
pub const RESULTS_PER_ROUND_MAX: usize = 4096;
/// Most deliveries claimed in one transaction.
pub const CLAIM_BATCH_MAX: usize = 512;
/// Longest wait between rounds when nothing is due: picks up changes made by API threads
/// (an endpoint enabled, a delivery retried) even if their wake-up was missed.
pub const POLL_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// How long a round holding only attempt results waits for more, and how many it waits for.
pub const RESULTS_LINGER: Duration = Duration::from_millis(2);
pub const RESULTS_LINGER_COUNT: usize = 256;
/// Most events pruned per retention transaction, and the longest pause between prunes; a full
/// batch is followed by the next one at once.
pub const PRUNE_BATCH_MAX: usize = 500;
pub const PRUNE_INTERVAL_MAX: Duration = Duration::from_secs(10);
/// Pause after a failed commit (disk full, read-only file) before trying again.
pub const FAILED_COMMIT_BACKOFF: Duration = Duration::from_millis(200);
/// A claim's lease is the attempt timeout plus this: time for a queued job to reach a worker
/// and for its result to come back. The scheduler renews the leases of the jobs it holds; a
/// lease that runs out means its owner died or lost the job, and it goes back to `pending`.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often the leases of held jobs are renewed (each when less than half of it is left).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// Most expired leases returned to `pending` per round.
pub const LEASE_RELEASE_BATCH_MAX: usize = 512;
/// A job whose worker panicked is due again after this (not at once: a panic that repeats for
/// one delivery must not spin).
pub const PANICKED_JOB_DELAY: Duration = Duration::from_secs(1);

const _: () = assert!(COMMANDS_PER_ROUND_MAX <= COMMAND_QUEUE_MAX);
const _: () = assert!(RESULTS_LINGER_COUNT <= RESULTS_PER_ROUND_MAX);

/// Where the scheduler answers an ingest command, once its transaction has committed.
pub type IngestReply = Sender<Result<Vec<StoredEvent>>>;

/// What API threads ask of the scheduler.
pub enum Command {
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
pub struct Scheduler {
    pub conn: Connection,
    pub commands: Receiver<Command>,
    pub results: Receiver<AttemptResult>,
    /// Jobs whose worker panicked: given up unstarted, no attempt to record.
    pub releases: Receiver<Release>,
    /// `--attempt-timeout`; a claim's lease is this plus `LEASE_MARGIN`.
    pub attempt_timeout: Duration,
    /// Where claimed jobs wait for a worker, per endpoint.
    pub dispatcher: Arc<Dispatcher>,
    /// Jobs claimed for one endpoint and not finished (queued or running), per place in its
    /// window: enough to keep the window busy between rounds, few enough that a hanging
    /// endpoint (whose window shrinks) does not hold many deliveries in `delivering`.
    pub claimed_per_slot: usize,
    pub shutdown: Receiver<()>,
    /// Most jobs claimed and not yet answered, over all endpoints.
    pub jobs_in_flight_max: usize,
    /// `--retention`: finished work older than this is pruned.
    pub retention: Duration,
    /// `--disable-after`: an endpoint whose every attempt failed this long is disabled.
    pub disable_after: Duration,
    /// How long shutdown waits for attempts in flight.
    pub drain_timeout: Duration,
    /// Unix ms of the last round, read by `/healthz`.
    pub heartbeat_ms: Arc<AtomicI64>,
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

pub fn main(mut scheduler: Scheduler) {
    let mut stats = Stats::default();
    let mut jobs_in_flight = 0usize;
    // Results whose commit failed are kept and written again in a later round (however long
    // the database refuses writes: they are bounded by the jobs in flight).
    let mut unwritten: Vec<AttemptResult> = Vec::new();
    // Jobs taken back from the queue (at shutdown, endpoint changed) or given up by a panicked
    // worker, to put back to `pending`.
    let mut released: Vec<Release> = Vec::new();
    // The claims this scheduler holds (delivery seq -> claim, lease end), to renew their leases.
    let mut held: HashMap<i64, (i64, i64)> = HashMap::new();
    let lease_ms = i64::try_from((scheduler.attempt_timeout + LEASE_MARGIN).as_millis())
        .unwrap_or(i64::MAX / 4);
    let mut next_renew = Instant::now();
    let never_results = crossbeam_channel::never();
    let never_releases = crossbeam_channel::never();
    let mut results_open = true;
    let mut releases_open = true;
    let mut failed_commits = 0u32;
    let mut next_due_ms: Option<i64> = Some(0);
    let mut drain_deadline: Option<Instant> = None;
    let never_commands = crossbeam_channel::never();
    let never_shutdown = crossbeam_channel::never();
    let mut commands_open = true;
    let prune_interval = (scheduler.retention / 4).min(PRUNE_INTERVAL_MAX);
    let mut next_prune = Instant::now();
    let mut next_purge = Instant::now();
    let mut shutdown_open = true;
    loop {
        scheduler.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
        if let Some(deadline) = drain_deadline
            && released.is_empty()
            && (jobs_in_flight == 0 || Instant::now() >= deadline)
        {
            unwritten.extend(scheduler.results.try_iter());
            if !unwritten.is_empty() {
                write_results_at_exit(&mut scheduler.conn, &unwritten);
            }
            let still_in_flight = jobs_in_flight.saturating_sub(unwritten.len());
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
            return;
        }
        if drain_deadline.is_none() && Instant::now() >= next_prune {
            let pruned = prune(&mut scheduler.conn, scheduler.retention);
            stats.pruned_events += pruned as u64;
            next_prune = Instant::now()
                + if pruned == PRUNE_BATCH_MAX {
                    Duration::ZERO
                } else {
                    prune_interval
                };
        }
        // A deleted endpoint's history, one batch between rounds (see purge.rs).
        if drain_deadline.is_none() && Instant::now() >= next_purge {
            next_purge = Instant::now() + crate::engine::purge::pass(&mut scheduler.conn);
        }
        let can_claim = drain_deadline.is_none() && jobs_in_flight < scheduler.jobs_in_flight_max;
        let wait = if failed_commits > 0 {
            FAILED_COMMIT_BACKOFF
        } else if !released.is_empty() {
            Duration::ZERO
        } else if !can_claim {
            POLL_INTERVAL_MAX
        } else {
            match next_due_ms {
                Some(due_ms) => Duration::from_millis(
                    (due_ms - now_ms()).clamp(0, POLL_INTERVAL_MAX.as_millis() as i64) as u64,
                ),
                None => POLL_INTERVAL_MAX,
            }
        };
        // A purge with history left goes on after this round, without waiting.
        let wait = wait.min(next_purge.saturating_duration_since(Instant::now()));
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
                    jobs_in_flight -= 1;
                    round.results.push(result);
                }
                // No worker is left to send (never while the supervisor keeps a sender).
                Err(_) => results_open = false,
            },
            recv(releases) -> release => match release {
                Ok(release) => {
                    jobs_in_flight -= 1;
                    released.push(release);
                }
                Err(_) => releases_open = false,
            },
            recv(shutdown) -> _ => { shutdown_open = false; start_drain = true; },
            // Nothing arrived: look at the database anyway (a missed wake-up, a due retry).
            default(wait) => round.woken = true,
        }
        if start_drain && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + scheduler.drain_timeout);
            // Jobs no worker has started yet go back to `pending` rather than out.
            for job in scheduler.dispatcher.take_back_queued() {
                jobs_in_flight -= 1;
                released.push(release_now(&job));
            }
        }
        // Attempt results are not urgent, and every transaction rewrites the b-tree pages it
        // touches: a round of a few results costs nearly what a round of a hundred does. So a
        // round holding only results waits briefly for more. Events never wait.
        if round.ingests.is_empty()
            && !round.results.is_empty()
            && round.results.len() < RESULTS_LINGER_COUNT
        {
            let linger_until = Instant::now() + RESULTS_LINGER;
            // Only while workers have queued jobs to run: idle workers must not wait for it.
            while round.results.len() < RESULTS_LINGER_COUNT && scheduler.dispatcher.queued() > 0 {
                let left = linger_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                select! {
                    recv(scheduler.results) -> result => match result {
                        Ok(result) => {
                            jobs_in_flight -= 1;
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
            jobs_in_flight -= 1;
            round.results.push(result);
        }
        for release in scheduler.releases.try_iter() {
            jobs_in_flight -= 1;
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
            next_purge = Instant::now(); // it may have been deleted
            for job in scheduler.dispatcher.take_back_endpoint(endpoint_seq) {
                jobs_in_flight -= 1;
                released.push(release_now(&job));
            }
        }
        let now = now_ms();
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
        let renew_due = Instant::now() >= next_renew;
        if renew_due {
            renew = held
                .iter()
                .filter(|(_, (_, until))| until - now < lease_ms / 2)
                .map(|(seq, (claim, _))| (*seq, *claim))
                .collect();
        }
        let due_now = next_due_ms.is_some_and(|due_ms| due_ms <= now);
        let can_claim = drain_deadline.is_none() && jobs_in_flight < scheduler.jobs_in_flight_max;
        if round.ingests.is_empty()
            && round.results.is_empty()
            && released.is_empty()
            && !round.woken
            && !(due_now && can_claim)
        {
            continue;
        }
        let claim_limit = if can_claim {
            (scheduler.jobs_in_flight_max - jobs_in_flight).min(CLAIM_BATCH_MAX)
        } else {
            0
        };
        let Round {
            ingests, results, ..
        } = round;
        let claims = Claims {
            limit: claim_limit,
            dispatcher: &scheduler.dispatcher,
            claimed_per_slot: scheduler.claimed_per_slot,
            disable_after_ms: crate::time::duration_ms(scheduler.disable_after),
            lease_expires_at_ms: now.saturating_add(lease_ms),
            renew: &renew,
        };
        match write_round(
            &mut scheduler.conn,
            &ingests,
            &results,
            &released,
            &claims,
            now,
        ) {
            Ok((answers, jobs, next, disabled)) => {
                failed_commits = 0;
                released.clear();
                if renew_due {
                    for (seq, _) in &renew {
                        if let Some((_, until)) = held.get_mut(seq) {
                            *until = claims.lease_expires_at_ms;
                        }
                    }
                    next_renew = Instant::now() + LEASE_RENEW_INTERVAL;
                }
                for job in &jobs {
                    held.insert(job.delivery_seq, (job.claim, claims.lease_expires_at_ms));
                }
                // A disabled endpoint's jobs not yet started go back to `pending` and wait.
                for (endpoint_seq, reason) in disabled {
                    log::warn!(
                        "endpoint disabled: endpoint_seq={endpoint_seq} reason=\"{reason}\""
                    );
                    for job in scheduler.dispatcher.take_back_endpoint(endpoint_seq) {
                        jobs_in_flight -= 1;
                        released.push(release_now(&job));
                    }
                }
                stats.rounds += 1;
                stats.ingest_commands += ingests.len() as u64;
                stats.results += results.len() as u64;
                stats.claimed += jobs.len() as u64;
                for ((_, reply), answer) in ingests.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
                jobs_in_flight += jobs.len();
                scheduler.dispatcher.push(jobs);
                next_due_ms = next;
            }
            Err(error) => {
                failed_commits += 1;
                log::error!(
                    "commit failed (try {failed_commits}): error={error} ingest_commands_refused={} results_kept={}",
                    ingests.len(),
                    results.len()
                );
                for (_, reply) in ingests {
                    let _ = reply.send(Err(Error::Unavailable(error.to_string())));
                }
                unwritten = results;
                next_due_ms = Some(now);
            }
        }
    }
}

/// One retention batch in its own transaction, and rotation overlaps that have ended; returns
/// how many events went (0 on error, which is logged: pruning waits for the next turn; an
/// ended overlap's secret is unused already, as claims compare its expiry with the clock).
fn prune(conn: &mut Connection, retention: Duration) -> usize {
    let cutoff_ms = crate::time::before_ms(now_ms(), retention);
    let pruned = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(Error::from)
        .and_then(|tx| {
            let pruned = store::prune_events(&tx, cutoff_ms, PRUNE_BATCH_MAX)?;
            store::retire_previous_secrets(&tx, now_ms())?;
            store::prune_expired_access(&tx, now_ms())?;
            tx.commit()?;
            Ok(pruned)
        });
    match pruned {
        Ok(pruned) => pruned,
        Err(error) => {
            log::warn!("retention: pruning failed, will try again: {error}");
            0
        }
    }
}

/// A job taken back before any worker started it: `pending` again, due now.
fn release_now(job: &Job) -> Release {
    Release {
        delivery_seq: job.delivery_seq,
        claim: job.claim,
        due_ms: now_ms(),
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

/// Each command's answer, the claimed jobs, when the next delivery is due, and the endpoints
/// disabled in this round with why.
type RoundOutput = (
    Vec<Result<Vec<StoredEvent>>>,
    Vec<Job>,
    Option<i64>,
    Vec<(i64, String)>,
);

/// One transaction: attempt results, released jobs, lease renewals and expired leases, then
/// events (each command in a savepoint, so a bad one fails alone), then claims. Returns each
/// command's answer, the claimed jobs, and when the next delivery is due.
fn write_round(
    conn: &mut Connection,
    ingests: &[(Vec<NewEvent>, IngestReply)],
    results: &[AttemptResult],
    released: &[Release],
    claims: &Claims,
    now: i64,
) -> Result<RoundOutput> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut disabled = Vec::new();
    // Endpoints whose health row this round already marked healthy: a run of successes needs
    // one update, not one per attempt.
    let mut healthy: Vec<i64> = Vec::new();
    for result in results {
        record_attempt(&tx, result, now)?;
        let succeeded = result.outcome.succeeded();
        if succeeded && healthy.contains(&result.endpoint_seq) {
            continue;
        }
        healthy.retain(|seq| *seq != result.endpoint_seq);
        if succeeded {
            healthy.push(result.endpoint_seq);
        }
        if let Some(reason) =
            store::record_endpoint_health(&tx, result, now, claims.disable_after_ms)?
        {
            disabled.push((result.endpoint_seq, reason));
        }
    }
    for release in released {
        store::release_delivery(&tx, release, now)?;
    }
    // Renewed before expired leases are released, so a claim held here is never released by
    // a lease that ran out while the database refused writes.
    for (delivery_seq, claim) in claims.renew {
        if !store::renew_lease(&tx, *delivery_seq, *claim, claims.lease_expires_at_ms)? {
            log::debug!("delivery_seq={delivery_seq}: lease lost; its result will not be written");
        }
    }
    let expired = store::release_expired_leases(&tx, now, LEASE_RELEASE_BATCH_MAX)?;
    if expired > 0 {
        log::warn!("{expired} deliveries whose lease ran out went back to pending");
    }
    let mut answers = Vec::with_capacity(ingests.len());
    for (events, _) in ingests {
        let savepoint = tx.savepoint()?;
        let stored: Result<Vec<StoredEvent>> = events
            .iter()
            .map(|event| store::insert_event(&savepoint, event, now))
            .collect();
        match stored {
            Ok(stored) => {
                savepoint.commit()?;
                answers.push(Ok(stored));
            }
            Err(error) => {
                drop(savepoint); // rolls back this command only
                if error.is_unavailable() {
                    return Err(error);
                }
                answers.push(Err(error));
            }
        }
    }
    let (jobs, next_due_ms) = claim(&tx, claims, now)?;
    tx.commit()?;
    Ok((answers, jobs, next_due_ms, disabled))
}

/// How much a round may claim.
struct Claims<'a> {
    /// Most jobs over all endpoints (0: claim nothing, e.g. while shutting down).
    limit: usize,
    dispatcher: &'a Dispatcher,
    /// Jobs claimed ahead per place in an endpoint's window.
    claimed_per_slot: usize,
    /// `--disable-after`, in ms.
    disable_after_ms: i64,
    /// The lease of what this round claims or renews.
    lease_expires_at_ms: i64,
    /// Held claims (delivery seq, claim) whose lease this round renews.
    renew: &'a [(i64, i64)],
}

/// Claims due deliveries endpoint by endpoint, each up to its room in the dispatcher; returns
/// them with when the next claimable delivery is due (None: nothing pending that may be
/// claimed; an endpoint at its limit is looked at again when one of its attempts ends).
fn claim(conn: &Connection, claims: &Claims, now: i64) -> Result<(Vec<Job>, Option<i64>)> {
    let mut jobs = Vec::new();
    let mut next_due_ms: Option<i64> = None;
    if claims.limit == 0 {
        return Ok((jobs, next_due_ms));
    }
    let mut endpoints = store::pending_endpoints(conn)?;
    // Endpoints with the least claimed already go first, so a round's budget reaches an idle
    // endpoint before one whose slots are all held by slow attempts.
    endpoints.sort_by_cached_key(|(endpoint_seq, due_ms)| {
        (claims.dispatcher.outstanding(*endpoint_seq), *due_ms)
    });
    for (endpoint_seq, due_ms) in endpoints {
        if due_ms > now {
            next_due_ms = Some(next_due_ms.map_or(due_ms, |next| next.min(due_ms)));
            continue;
        }
        let room = claims
            .dispatcher
            .claim_room(endpoint_seq, claims.claimed_per_slot);
        if room == 0 {
            continue;
        }
        let budget = claims.limit - jobs.len();
        if budget == 0 {
            next_due_ms = Some(now);
            break;
        }
        let asked = room.min(budget);
        let claimed = store::claim_due(conn, endpoint_seq, now, asked, claims.lease_expires_at_ms)?;
        let filled = claimed.len() == asked;
        jobs.extend(claimed);
        // What this endpoint still has pending is due later (if its room did not run out first).
        if !filled && let Some(later_ms) = store::next_due_for_endpoint(conn, endpoint_seq)? {
            next_due_ms = Some(next_due_ms.map_or(later_ms, |next| next.min(later_ms)));
        }
    }
    Ok((jobs, next_due_ms))
}

/// At shutdown, one last try to keep results whose commit failed; they are otherwise
/// redelivered after restart, which is allowed (at least once) but wasteful.
fn write_results_at_exit(conn: &mut Connection, results: &[AttemptResult]) {
    let dispatcher = Dispatcher::new(1);
    let claims = Claims {
        limit: 0,
        dispatcher: &dispatcher,
        claimed_per_slot: 0,
        disable_after_ms: i64::MAX,
        lease_expires_at_ms: 0,
        renew: &[],
    };
    if let Err(error) = write_round(conn, &[], results, &[], &claims, now_ms()) {
        log::warn!(
            "shutdown: could not record {} attempt results: {error}",
            results.len()
        );
    }
}

/// Writes a result: the retry policy's decision, or the secret switch when a refused signature
/// meets a live rotation overlap (`retry::after_refused_signature`); the endpoint's signing
/// choice changes only if the attempt was written.
fn record_attempt(tx: &Connection, result: &AttemptResult, now: i64) -> Result<()> {
    let mut decision = result.decision;
    let mut sign_with = None;
    if let Some(rejected) = &result.rejected_secret_sha256 {
        // An endpoint deleted meanwhile has no secrets; its delivery is gone too.
        if let Some(secrets) = store::endpoint_secrets(tx, result.endpoint_seq, now)? {
            let finished_at_ms = result.outcome.started_at_ms + result.outcome.duration_ms;
            (decision, sign_with) =
                retry::after_refused_signature(decision, rejected, &secrets, finished_at_ms);
        }
    }
    if store::record_attempt(tx, result, decision, now)?
        && let Some(sign_with) = sign_with
    {
        store::set_signing_secret(tx, result.endpoint_seq, sign_with)?;
    }
    Ok(())
}
