//! Postgres twins of `store::outbox`.
#![allow(unused_variables)] // stubs until each twin is written

#[allow(unused_imports)]
use super::{Conn, not_built};
#[allow(unused_imports)]
use crate::error::{Error, Result};
#[allow(unused_imports)]
use crate::model::{AttemptResult, Decision, Job, NewEvent, Secrets, SignWith, StoredEvent};
#[allow(unused_imports)]
use crate::store::{DatabaseGauges, DeliveryFilter, EventFilter, Release, read::*};

/// Not on Postgres: other instances' claims are live. A restarted instance's own claims go
/// back to `pending` when their lease ends (`release_expired_leases`).
pub(crate) fn recover_delivering(_pg: &mut Conn, _now_ms: i64) -> Result<usize> {
    Ok(0)
}

pub(crate) fn insert_event(pg: &mut Conn, event: &NewEvent, now_ms: i64) -> Result<StoredEvent> {
    not_built("insert_event")
}

pub(crate) fn pending_endpoints(pg: &mut Conn) -> Result<Vec<(i64, i64)>> {
    not_built("pending_endpoints")
}

pub(crate) fn next_due_for_endpoint(pg: &mut Conn, endpoint_seq: i64) -> Result<Option<i64>> {
    not_built("next_due_for_endpoint")
}

pub(crate) fn claim_due(
    pg: &mut Conn,
    endpoint_seq: i64,
    now_ms: i64,
    limit: usize,
    lease_expires_at_ms: i64,
) -> Result<Vec<Job>> {
    not_built("claim_due")
}

pub(crate) fn record_attempt(
    pg: &mut Conn,
    result: &AttemptResult,
    decision: Decision,
    now_ms: i64,
) -> Result<bool> {
    not_built("record_attempt")
}

pub(crate) fn set_signing_secret(
    pg: &mut Conn,
    endpoint_seq: i64,
    sign_with: SignWith,
) -> Result<()> {
    not_built("set_signing_secret")
}

pub(crate) fn record_endpoint_health(
    pg: &mut Conn,
    result: &AttemptResult,
    now_ms: i64,
    disable_after_ms: i64,
) -> Result<Option<String>> {
    not_built("record_endpoint_health")
}

pub(crate) fn prune_events(pg: &mut Conn, cutoff_ms: i64, limit: usize) -> Result<usize> {
    not_built("prune_events")
}

pub(crate) fn retire_previous_secrets(pg: &mut Conn, now_ms: i64) -> Result<usize> {
    not_built("retire_previous_secrets")
}

pub(crate) fn release_delivery(pg: &mut Conn, release: &Release, now_ms: i64) -> Result<()> {
    not_built("release_delivery")
}

pub(crate) fn renew_lease(
    pg: &mut Conn,
    delivery_seq: i64,
    claim: i64,
    lease_expires_at_ms: i64,
) -> Result<bool> {
    not_built("renew_lease")
}

pub(crate) fn release_expired_leases(pg: &mut Conn, now_ms: i64, limit: usize) -> Result<usize> {
    not_built("release_expired_leases")
}

pub(crate) fn purge_deleted_endpoint(pg: &mut Conn, limit: usize) -> Result<usize> {
    not_built("purge_deleted_endpoint")
}

pub(crate) fn prune_expired_access(pg: &mut Conn, now_ms: i64) -> Result<usize> {
    not_built("prune_expired_access")
}
