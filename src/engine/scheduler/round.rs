//! A round's writes, in one transaction and in this order: attempt results (with the secret
//! switch, `retry::after_refused_signature`), endpoint health, released jobs, lease renewals
//! and expired leases, ingest commands (all in one savepoint, or each in its own if that
//! fails), then claims. Results and events are written as batches: on Postgres each
//! statement is a round trip, so a round's cost there is its statements, not its rows. Also the
//! retention prune and the last write at shutdown. Time comes in as arguments: `Now::read` in
//! `mod.rs` is the scheduler's one clock read.

use std::time::Duration;

use super::decide::{self, Ask};
use super::{IngestReply, LEASE_RELEASE_BATCH_MAX, PRUNE_BATCH_MAX};
use crate::engine::dispatch::Dispatcher;
use crate::engine::retry;
use crate::error::Result;
use crate::model::{AttemptResult, Job, NewEvent, StoredEvent};
use crate::store::{self, Db, Release, Tx};

/// What a committed round answers: each ingest command's answer, the claimed jobs, when the
/// next delivery is due, and the endpoints disabled in this round with why.
pub(crate) struct RoundOutput {
    pub(crate) answers: Vec<Result<Vec<StoredEvent>>>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) next_due_ms: Option<i64>,
    pub(crate) disabled: Vec<(i64, String)>,
}

/// One transaction: attempt results, released jobs, lease renewals and expired leases, then
/// events (a bad command fails alone: see `ingest`), then claims. Returns each
/// command's answer, the claimed jobs, and when the next delivery is due.
/// On Postgres a round that lost a race with another transaction is run again
/// (`store::retry_lost_races`) before the failed-commit path. (SQLite never answers so.)
pub(crate) fn write_round(
    conn: &mut Db,
    ingests: &[(Vec<NewEvent>, IngestReply)],
    results: &[AttemptResult],
    released: &[Release],
    claims: &Claims,
    now: i64,
) -> Result<RoundOutput> {
    store::retry_lost_races("round", || {
        write_round_once(conn, ingests, results, released, claims, now)
    })
}

fn write_round_once(
    conn: &mut Db,
    ingests: &[(Vec<NewEvent>, IngestReply)],
    results: &[AttemptResult],
    released: &[Release],
    claims: &Claims,
    now: i64,
) -> Result<RoundOutput> {
    let tx = conn.begin()?;
    let mut healthy = claims.health_written.borrow().clone();
    let disabled = record_results(&tx, results, &mut healthy, claims.disable_after_ms, now)?;
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
    let expired = if claims.renew_due {
        store::release_expired_leases(&tx, now, LEASE_RELEASE_BATCH_MAX)?
    } else {
        0
    };
    if expired > 0 {
        log::warn!("{expired} deliveries whose lease ran out went back to pending");
    }
    let answers = ingest(&tx, ingests, now)?;
    let (jobs, next_due_ms) = claim(&tx, claims, now)?;
    tx.commit()?;
    // Only what was committed counts as written.
    *claims.health_written.borrow_mut() = healthy;
    Ok(RoundOutput {
        answers,
        jobs,
        next_due_ms,
        disabled,
    })
}

/// How much a round may claim.
pub(crate) struct Claims<'a> {
    /// Most jobs over all endpoints (0: claim nothing, e.g. while shutting down).
    pub(crate) limit: usize,
    pub(crate) dispatcher: &'a Dispatcher,
    /// Jobs claimed ahead per place in an endpoint's window.
    pub(crate) claimed_per_slot: usize,
    /// `--disable-after`, in ms.
    pub(crate) disable_after_ms: i64,
    /// The lease of what this round claims or renews.
    pub(crate) lease_expires_at_ms: i64,
    /// Held claims (delivery seq, claim) whose lease this round renews.
    pub(crate) renew: &'a [(i64, i64)],
    /// Whether this round renews leases and looks for expired ones (once a
    /// `LEASE_RENEW_INTERVAL`): a lease runs for seconds, so looking every round found nothing
    /// and cost a statement (on Postgres 0.66 ms a round, an index walk over dead versions).
    pub(crate) renew_due: bool,
    /// Per endpoint, when a success of its health was last written (see
    /// `decide::health_write_needed`); updated when the round commits.
    pub(crate) health_written: &'a std::cell::RefCell<std::collections::HashMap<i64, i64>>,
    /// Set when the round left due work unclaimed (its budget or an endpoint's room ran out):
    /// other instances are then woken.
    pub(crate) left_due: std::cell::Cell<bool>,
}

/// Claims due deliveries endpoint by endpoint, each up to its room in the dispatcher; returns
/// them with when the next claimable delivery is due (None: nothing pending that may be
/// claimed; an endpoint at its limit is looked at again when one of its attempts ends).
pub(crate) fn claim(conn: &Db, claims: &Claims, now: i64) -> Result<(Vec<Job>, Option<i64>)> {
    let mut jobs = Vec::new();
    let mut next_due_ms: Option<i64> = None;
    if claims.limit == 0 {
        return Ok((jobs, next_due_ms));
    }
    let mut endpoints = store::pending_endpoints(conn)?;
    decide::claim_order(&mut endpoints, |endpoint_seq| {
        claims.dispatcher.outstanding(endpoint_seq)
    });
    for (endpoint_seq, due_ms) in endpoints {
        let asked = match decide::ask(
            due_ms,
            now,
            || {
                claims
                    .dispatcher
                    .claim_room(endpoint_seq, claims.claimed_per_slot)
            },
            claims.limit - jobs.len(),
        ) {
            Ask::NotDue(due_ms) => {
                next_due_ms = decide::earliest(next_due_ms, due_ms);
                continue;
            }
            Ask::Full => {
                claims.left_due.set(true);
                continue;
            }
            Ask::BudgetSpent => {
                claims.left_due.set(true);
                next_due_ms = Some(now);
                break;
            }
            Ask::Take(asked) => asked,
        };
        // Another instance is claiming for this ordered endpoint right now (Postgres).
        if !store::claim_turn(conn, endpoint_seq)? {
            next_due_ms = decide::earliest(next_due_ms, now + CLAIM_TURN_RETRY_MS);
            continue;
        }
        let claimed = store::claim_due(conn, endpoint_seq, now, asked, claims.lease_expires_at_ms)?;
        let filled = claimed.len() == asked;
        jobs.extend(claimed);
        // What this endpoint still has pending is due later (if its room did not run out first).
        if !filled && let Some(later_ms) = store::next_due_for_endpoint(conn, endpoint_seq)? {
            next_due_ms = decide::earliest(next_due_ms, later_ms);
        }
    }
    Ok((jobs, next_due_ms))
}

/// How soon an ordered endpoint whose claim turn another instance held is looked at again.
pub(crate) const CLAIM_TURN_RETRY_MS: i64 = 50;

/// At shutdown, one last try to keep results whose commit failed; they are otherwise
/// redelivered after restart, which is allowed (at least once) but wasteful.
pub(crate) fn write_results_at_exit(conn: &mut Db, results: &[AttemptResult], now_ms: i64) {
    let dispatcher = Dispatcher::new(1);
    let claims = Claims {
        limit: 0,
        dispatcher: &dispatcher,
        claimed_per_slot: 0,
        disable_after_ms: i64::MAX,
        lease_expires_at_ms: 0,
        renew: &[],
        renew_due: false,
        health_written: &Default::default(),
        left_due: std::cell::Cell::new(false),
    };
    if let Err(error) = write_round(conn, &[], results, &[], &claims, now_ms) {
        log::warn!(
            "shutdown: could not record {} attempt results: {error}",
            results.len()
        );
    }
}

/// Writes the round's attempt results, all at once (Postgres: two statements), then the
/// endpoints' health (one write per endpoint for a run of successes); returns the endpoints
/// disabled, with why.
fn record_results(
    tx: &Db,
    results: &[AttemptResult],
    healthy: &mut std::collections::HashMap<i64, i64>,
    disable_after_ms: i64,
    now: i64,
) -> Result<Vec<(i64, String)>> {
    let mut decided = Vec::with_capacity(results.len());
    let mut switches = Vec::new();
    for result in results {
        let (decision, sign_with) = decide_result(tx, result, now)?;
        decided.push((result, decision));
        switches.push(sign_with);
    }
    let written = store::record_attempts(tx, &decided, now)?;
    for ((result, sign_with), written) in results.iter().zip(switches).zip(written) {
        // The endpoint's signing choice changes only if the attempt was written.
        if written && let Some(sign_with) = sign_with {
            store::set_signing_secret(tx, result.endpoint_seq, sign_with)?;
        }
    }
    let mut disabled = Vec::new();
    for result in results {
        if !decide::health_write_needed(
            healthy,
            result.endpoint_seq,
            result.outcome.succeeded(),
            now,
        ) {
            continue;
        }
        if let Some(reason) = store::record_endpoint_health(tx, result, now, disable_after_ms)? {
            disabled.push((result.endpoint_seq, reason));
        }
    }
    Ok(disabled)
}

/// A result's final decision: the retry policy's, or the secret switch when a refused
/// signature meets a live rotation overlap (`retry::after_refused_signature`), with the
/// secret to sign with from then on.
fn decide_result(
    tx: &Db,
    result: &AttemptResult,
    now: i64,
) -> Result<(crate::model::Decision, Option<crate::model::SignWith>)> {
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
    Ok((decision, sign_with))
}

/// The round's ingest commands. First all of them at once in one savepoint (Postgres: three
/// statements for the lot); if that fails, each command again in a savepoint of its own, so
/// a bad one fails alone. Returns each command's answer.
fn ingest(
    tx: &Tx,
    ingests: &[(Vec<NewEvent>, IngestReply)],
    now: i64,
) -> Result<Vec<Result<Vec<StoredEvent>>>> {
    if ingests.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<&NewEvent> = ingests.iter().flat_map(|(events, _)| events).collect();
    let savepoint = tx.savepoint()?;
    match store::insert_events(&savepoint, &all, now) {
        Ok(stored) => {
            savepoint.release()?;
            let mut stored = stored.into_iter();
            return Ok(ingests
                .iter()
                .map(|(events, _)| Ok(stored.by_ref().take(events.len()).collect()))
                .collect());
        }
        Err(error) => {
            drop(savepoint); // rolls back the lot
            if error.is_unavailable() || error.is_retryable() {
                return Err(error);
            }
        }
    }
    let mut answers = Vec::with_capacity(ingests.len());
    for (events, _) in ingests {
        let savepoint = tx.savepoint()?;
        let events: Vec<&NewEvent> = events.iter().collect();
        match store::insert_events(&savepoint, &events, now) {
            Ok(stored) => {
                savepoint.release()?;
                answers.push(Ok(stored));
            }
            Err(error) => {
                drop(savepoint); // rolls back this command only
                if error.is_unavailable() || error.is_retryable() {
                    return Err(error);
                }
                answers.push(Err(error));
            }
        }
    }
    Ok(answers)
}

/// One retention batch in its own transaction, and rotation overlaps that have ended; returns
/// how many events went (0 on error, which is logged: pruning waits for the next turn; an
/// ended overlap's secret is unused already, as claims compare its expiry with the clock).
pub(crate) fn prune(conn: &mut Db, retention: Duration, now_ms: i64) -> usize {
    let cutoff_ms = decide::prune_cutoff_ms(retention, now_ms);
    let pruned = conn.begin().and_then(|tx| {
        // Another instance is doing this turn's batch (Postgres).
        if !store::maintenance_turn(&tx)? {
            return Ok(0);
        }
        let pruned = store::prune_events(&tx, cutoff_ms, PRUNE_BATCH_MAX)?;
        store::retire_previous_secrets(&tx, now_ms)?;
        store::prune_expired_access(&tx, now_ms)?;
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
pub(crate) fn release_now(job: &Job, now_ms: i64) -> Release {
    Release {
        delivery_seq: job.delivery_seq,
        claim: job.claim,
        due_ms: now_ms,
    }
}
