//! The HTTP API on tiny_http: several `api-N` threads take requests from one shared server, each
//! with its own SQLite connection for reads and small writes. Events go to the scheduler (the one
//! group-committing writer) and the answer waits for their commit. Every route is one row of
//! `routes::ROUTES`; `handle` resolves it (`route.rs`), checks the token (`auth.rs`) and calls
//! the resource's file (`events`, `endpoints`, `endpoint_actions`, `deliveries`, `workspaces`,
//! `system`), which answers JSON through `views.rs` or a `Problem` (`problem.rs`).

pub(crate) mod attempt_request;
pub(crate) mod auth;
pub(crate) mod dashboard;
pub(crate) mod deliveries;
pub(crate) mod edge;
pub(crate) mod endpoint_actions;
pub(crate) mod endpoints;
pub(crate) mod events;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod pages;
pub(crate) mod problem;
pub(crate) mod request;
pub(crate) mod route;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod system;
pub(crate) mod views;
pub(crate) mod workspaces;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::store::Db;
use crossbeam_channel::Sender;
use serde_json::{Value, json};
use tiny_http::{Header, Request, Response, Server};

use crate::engine::dispatch::Dispatcher;
use crate::engine::net::AddressPolicy;
use crate::engine::scheduler::Command;
use crate::http::metrics::Metrics;
use problem::{BytesAnswer, Problem};
use route::{Call, Handler, Resolved, resolve};
use routes::ROUTES;

/// What every file of the API uses.
mod prelude {
    pub(super) use std::io::{Cursor, Read};
    pub(super) use std::sync::atomic::Ordering;

    pub(super) use crossbeam_channel::bounded;
    pub(super) use serde_json::{Value, json};
    pub(super) use tiny_http::{Header, Request, Response};

    pub(super) use super::Api;
    pub(super) use super::auth::*;
    pub(super) use super::problem::*;
    pub(super) use super::request::*;
    pub(super) use super::route::*;
    pub(super) use super::views::*;
    pub(super) use crate::engine::ingest::{self, DEFAULT_WORKSPACE};
    pub(super) use crate::engine::net::check_endpoint_url;
    pub(super) use crate::engine::scheduler::Command;
    pub(super) use crate::error::Error;
    pub(super) use crate::ids::{new_id, new_secret, new_token, sha256_hex};
    pub(super) use crate::model::{NewEvent, StoredEvent};
    pub(super) use crate::store::{self, DeliveryFilter, DeliveryRow, EndpointRow, EventFilter};
    pub(super) use crate::time::{
        format_rfc3339_millis, format_rfc3339_seconds, now_ms, parse_rfc3339,
    };
    pub(super) use crate::{catalog, time};
}

/// What every API thread shares.
pub(crate) struct Shared {
    pub(crate) admin_token_sha256: String,
    pub(crate) commands: Sender<Command>,
    pub(crate) allow_http: bool,
    pub(crate) policy: Arc<AddressPolicy>,
    pub(crate) max_event_bytes: usize,
    pub(crate) heartbeat_ms: Arc<AtomicI64>,
    pub(crate) metrics: Arc<Metrics>,
    /// Where the endpoints' windows live (shown in endpoints and `/metrics`).
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// `--public-url`: the start of the absolute URLs the API answers (portal links).
    pub(crate) public_url: Option<String>,
}

/// One API thread: answers requests until `stopping` is set and `server.unblock()` wakes it.
pub(crate) fn main(server: Arc<Server>, conn: Db, shared: Arc<Shared>, stopping: Arc<AtomicBool>) {
    let api = Api { conn, shared };
    loop {
        match server.recv() {
            Ok(mut request) => {
                let response = api.handle(&mut request);
                let _ = request.respond(response);
            }
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(error) => log::warn!("api: accepting a connection failed: {error}"),
        }
    }
}

pub(crate) struct Api {
    pub(crate) conn: Db,
    pub(crate) shared: Arc<Shared>,
}

impl Api {
    /// Answers one request, in this order: the raw routes (`/metrics`, `/openapi.json`), the
    /// dashboard's files (with their own 404/405), 404 for a path no route has, the public
    /// routes, then the token (401 before 405), 405 with `Allow`, the admin check, the handler.
    fn handle(&self, request: &mut Request) -> Response<std::io::Cursor<Vec<u8>>> {
        let resolved = resolve(ROUTES, request.method().as_str(), request.url());
        if let Resolved::Found(route, _) = &resolved
            && let Handler::Raw(raw) = route.handler
        {
            return raw(self);
        }
        if let Some(response) = dashboard::serve(request) {
            return response;
        }
        let started = std::time::Instant::now();
        let answer = self.answer(request, resolved);
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(problem) => {
                let mut error = json!({"code": problem.code, "message": problem.message});
                if let Some(field) = problem.field {
                    error["field"] = Value::from(field);
                }
                (
                    problem.status,
                    json!({ "error": error }).to_string().into_bytes(),
                )
            }
        };
        log::debug!(
            "method={} path={} status={status} elapsed_ms={}",
            request.method(),
            request.url().split('?').next().unwrap_or(""),
            started.elapsed().as_millis()
        );
        let mut response = Response::from_data(body).with_status_code(status);
        if status != 204 {
            response.add_header(
                Header::from_bytes("Content-Type", "application/json").expect("valid header"),
            );
        }
        if status == 405 {
            let allow = route::allowed_methods(ROUTES, request.url());
            response
                .add_header(Header::from_bytes("Allow", allow.join(", ")).expect("valid header"));
        }
        response
    }

    /// The answer of a request the router resolved: status and body bytes, or a problem.
    fn answer(&self, request: &mut Request, resolved: Resolved) -> BytesAnswer {
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let json = |answer: problem::Answer| {
            answer.map(|(status, value)| {
                let body = if status == 204 {
                    Vec::new()
                } else {
                    value.to_string().into_bytes()
                };
                (status, body)
            })
        };
        let (route, params) = match resolved {
            Resolved::NoRoute => {
                return Err(Problem::new(
                    404,
                    "not_found",
                    format!(
                        "no route {} {path}; the API's routes start with /v1",
                        request.method()
                    ),
                ));
            }
            Resolved::Found(route, params) => (Some(route), params),
            Resolved::WrongMethod(_) => (None, Vec::new()),
        };
        let query = request::Query::parse(query);
        request::refuse_nul(&params, &query)?;
        if let Some(route) = route
            && let Handler::Public(handler) = route.handler
        {
            let mut call = Call {
                request,
                params,
                query,
            };
            return json(handler(self, &mut call));
        }
        let access = self.authorize(request)?;
        let Some(route) = route else {
            return Err(Problem::new(
                405,
                "method_not_allowed",
                format!("{} is not allowed on {path}", request.method()),
            ));
        };
        let mut call = Call {
            request,
            params,
            query,
        };
        match route.handler {
            Handler::Token(handler) => json(handler(self, &access, &mut call)),
            Handler::TokenBytes(handler) => handler(self, &access, &mut call),
            Handler::Admin(handler) => {
                access.check_admin()?;
                json(handler(self, &mut call))
            }
            // Answered before the router: `handle` and `dashboard::serve`.
            Handler::Raw(_) | Handler::Dashboard | Handler::Public(_) => Err(Problem::new(
                405,
                "method_not_allowed",
                format!("{} is not allowed on {path}", call.request.method()),
            )),
        }
    }
}
