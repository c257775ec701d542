//! Postgres twins of `store::read`.
#![allow(unused_variables)] // stubs until each twin is written

#[allow(unused_imports)]
use super::{Conn, not_built};
#[allow(unused_imports)]
use crate::error::{Error, Result};
#[allow(unused_imports)]
use crate::model::{AttemptResult, Decision, Job, NewEvent, Secrets, SignWith, StoredEvent};
#[allow(unused_imports)]
use crate::store::{DatabaseGauges, DeliveryFilter, EventFilter, Release, read::*};

pub(crate) fn metrics_gauges(pg: &mut Conn, now_ms: i64) -> Result<DatabaseGauges> {
    not_built("metrics_gauges")
}

pub(crate) fn endpoint_id(pg: &mut Conn, seq: i64) -> Result<Option<String>> {
    not_built("endpoint_id")
}

pub(crate) fn endpoint(pg: &mut Conn, id: &str, now_ms: i64) -> Result<Option<EndpointRow>> {
    not_built("endpoint")
}

pub(crate) fn endpoints(
    pg: &mut Conn,
    workspace_id: Option<&str>,
    before_seq: i64,
    limit: usize,
    now_ms: i64,
) -> Result<Vec<EndpointRow>> {
    not_built("endpoints")
}

pub(crate) fn endpoint_secrets(pg: &mut Conn, seq: i64, now_ms: i64) -> Result<Option<Secrets>> {
    not_built("endpoint_secrets")
}

pub(crate) fn recent_deliveries(
    pg: &mut Conn,
    endpoint_seq: i64,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    not_built("recent_deliveries")
}

pub(crate) fn events_by_id(
    pg: &mut Conn,
    id: &str,
    workspace_id: Option<&str>,
    limit: usize,
) -> Result<Vec<EventRow>> {
    not_built("events_by_id")
}

pub(crate) fn events(
    pg: &mut Conn,
    filter: &EventFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<EventRow>> {
    not_built("events")
}

pub(crate) fn delivery(pg: &mut Conn, id: &str) -> Result<Option<DeliveryRow>> {
    not_built("delivery")
}

pub(crate) fn deliveries(
    pg: &mut Conn,
    filter: &DeliveryFilter,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<DeliveryRow>> {
    not_built("deliveries")
}

pub(crate) fn attempts(pg: &mut Conn, delivery_seq: i64, limit: usize) -> Result<Vec<AttemptRow>> {
    not_built("attempts")
}

pub(crate) fn token_by_hash(
    pg: &mut Conn,
    token_sha256: &str,
    now_ms: i64,
) -> Result<Option<TokenRow>> {
    not_built("token_by_hash")
}

pub(crate) fn tokens(
    pg: &mut Conn,
    workspace_id: &str,
    before_seq: i64,
    limit: usize,
) -> Result<Vec<TokenRow>> {
    not_built("tokens")
}

pub(crate) fn ping(pg: &mut Conn) -> bool {
    false
}

pub(crate) fn endpoint_row_gone(pg: &mut Conn, id: &str) -> Result<bool> {
    not_built("endpoint_row_gone")
}
