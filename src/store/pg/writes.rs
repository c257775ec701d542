//! Postgres twins of `store::writes`.
#![allow(unused_variables)] // stubs until each twin is written

#[allow(unused_imports)]
use super::{Conn, not_built};
#[allow(unused_imports)]
use crate::error::{Error, Result};
#[allow(unused_imports)]
use crate::model::{AttemptResult, Decision, Job, NewEvent, Secrets, SignWith, StoredEvent};
#[allow(unused_imports)]
use crate::store::{DatabaseGauges, DeliveryFilter, EventFilter, Release, read::*};

pub(crate) fn meta(pg: &mut Conn, key: &str) -> Result<Option<String>> {
    not_built("meta")
}

pub(crate) fn set_meta(pg: &mut Conn, key: &str, value: &str) -> Result<()> {
    not_built("set_meta")
}

pub(crate) fn insert_endpoint(
    pg: &mut Conn,
    endpoint: &mut EndpointRow,
    secret: &str,
) -> Result<()> {
    not_built("insert_endpoint")
}

pub(crate) fn update_endpoint(
    pg: &mut Conn,
    endpoint: &EndpointRow,
    fields: &[&str],
) -> Result<bool> {
    not_built("update_endpoint")
}

pub(crate) fn set_delivery_subjects(pg: &mut Conn, endpoint_seq: i64, ordered: bool) -> Result<()> {
    not_built("set_delivery_subjects")
}

pub(crate) fn rotate_secret(
    pg: &mut Conn,
    seq: i64,
    secret: &str,
    overlap_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    not_built("rotate_secret")
}

pub(crate) fn recover_failed(
    pg: &mut Conn,
    endpoint_seq: i64,
    window: (i64, i64),
    after_seq: i64,
    now_ms: i64,
    limit: usize,
) -> Result<(usize, Option<i64>)> {
    not_built("recover_failed")
}

pub(crate) fn delete_endpoint(pg: &mut Conn, seq: i64, now_ms: i64) -> Result<bool> {
    not_built("delete_endpoint")
}

pub(crate) fn retry_delivery(pg: &mut Conn, seq: i64, now_ms: i64) -> Result<bool> {
    not_built("retry_delivery")
}

pub(crate) fn insert_token(pg: &mut Conn, token: &mut TokenRow, token_sha256: &str) -> Result<()> {
    not_built("insert_token")
}

pub(crate) fn insert_portal_code(
    pg: &mut Conn,
    code_sha256: &str,
    workspace_id: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<()> {
    not_built("insert_portal_code")
}

pub(crate) fn take_portal_code(
    pg: &mut Conn,
    code_sha256: &str,
    now_ms: i64,
) -> Result<Option<String>> {
    not_built("take_portal_code")
}

pub(crate) fn touch_token(pg: &mut Conn, token: &TokenRow, now_ms: i64) -> Result<()> {
    not_built("touch_token")
}

pub(crate) fn delete_token(pg: &mut Conn, workspace_id: &str, id: &str) -> Result<bool> {
    not_built("delete_token")
}
