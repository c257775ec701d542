//! The HTTP API on tiny_http: several `api-N` threads take requests from one shared server, each
//! with its own SQLite connection for reads and small writes. Events go to the scheduler (the one
//! group-committing writer) and the answer waits for their commit. The router is one `match`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crossbeam_channel::{Sender, bounded};
use rusqlite::Connection;
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::ingest::{self, DEFAULT_WORKSPACE, Problem};
use crate::metrics::Metrics;
use crate::model::{NewEvent, StoredEvent};
use crate::net::{AddressPolicy, check_endpoint_url};
use crate::scheduler::Command;
use crate::signing::{new_id, new_secret, new_token, sha256_hex};
use crate::store::{self, DeliveryFilter, DeliveryRow, EndpointRow, EventFilter};
use crate::time::{format_rfc3339_millis, format_rfc3339_seconds, now_ms, parse_rfc3339};
use crate::{catalog, time};

/// Largest body of any request but events: endpoint JSON and the like.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// Longest a request body may take to arrive when the API thread reads it.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Largest body of `POST /v1/events/batch`.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most attempts `GET /v1/deliveries/{id}` lists (the last ones): manual retries can add
/// attempts without end, and the answer must not grow with them.
pub const ATTEMPTS_LISTED_MAX: usize = 100;
/// Items per list page when `?limit=` is not given, and the most it may ask for.
pub const PAGE_LIMIT_DEFAULT: usize = 50;
pub const PAGE_LIMIT_MAX: usize = 500;
/// Most extra headers an endpoint may carry, and their longest value.
pub const ENDPOINT_HEADERS_MAX: usize = 20;
pub const HEADER_VALUE_BYTES_MAX: usize = 1024;
/// Longest endpoint description.
pub const DESCRIPTION_CHARS_MAX: usize = 1000;
/// Rotation overlap when none is asked, and the longest allowed.
pub const ROTATION_OVERLAP_DEFAULT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
pub const ROTATION_OVERLAP_MAX: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);
/// Most deliveries one `recover` call puts back to `pending`; call again for more.
pub const RECOVER_DELIVERIES_MAX: usize = 10_000;
/// Longest window of `/stats`, and most deliveries it counts.
pub const STATS_HOURS_MAX: i64 = 168;
pub const STATS_DELIVERIES_MAX: usize = 50_000;
/// Workspace tokens start with this (the admin token with `cew_admin`), portal link codes
/// with `cew_pl`.
pub const WORKSPACE_TOKEN_PREFIX: &str = "cew_ws";
pub const PORTAL_CODE_PREFIX: &str = "cew_pl";
/// How long a portal link's code can be used (once) when not asked, and at most; how long the
/// session it opens lasts.
pub const PORTAL_CODE_LIFETIME_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(15 * 60);
pub const PORTAL_CODE_LIFETIME_MAX: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
pub const PORTAL_SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// The scheduler must have run a round within this long for `/healthz` to answer 200.
pub const HEARTBEAT_STALE_MS: i64 = 10_000;

/// Headers an endpoint may not set: ours, and those that frame the request.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// What every API thread shares.
pub struct Shared {
    pub admin_token_sha256: String,
    pub commands: Sender<Command>,
    pub allow_http: bool,
    pub policy: Arc<AddressPolicy>,
    pub max_event_bytes: usize,
    pub heartbeat_ms: Arc<AtomicI64>,
    pub metrics: Arc<Metrics>,
    /// Where the endpoints' windows live (shown in endpoints and `/metrics`).
    pub dispatcher: Arc<Dispatcher>,
}

/// One API thread: answers requests until `stopping` is set and `server.unblock()` wakes it.
pub fn main(server: Arc<Server>, conn: Connection, shared: Arc<Shared>, stopping: Arc<AtomicBool>) {
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

struct Api {
    conn: Connection,
    shared: Arc<Shared>,
}

type Answer = Result<(u16, Value), Problem>;

fn not_found(what: &str, id: &str) -> Problem {
    Problem::new(404, "not_found", format!("no {what} with id \"{id}\""))
}

fn internal(error: Error) -> Problem {
    if error.is_unavailable() {
        log::error!("api: database unavailable: {error}");
        return Problem::new(503, "unavailable", format!("{error}; try again shortly"));
    }
    log::error!("api: internal error: {error}");
    Problem::new(
        500,
        "internal",
        "internal error; the server log has the details",
    )
}

impl Api {
    fn handle(&self, request: &mut Request) -> Response<std::io::Cursor<Vec<u8>>> {
        if *request.method() == Method::Get {
            match request.url().split('?').next() {
                Some("/metrics") => return self.metrics(),
                Some("/openapi.json") => return openapi_response(),
                _ => {}
            }
        }
        if let Some(response) = crate::dashboard::serve(request) {
            return response;
        }
        let started = std::time::Instant::now();
        let answer = match self.event_list(request) {
            Some(answer) => answer,
            None => self.route(request).map(|(status, value)| {
                (
                    status,
                    if status == 204 {
                        Vec::new()
                    } else {
                        value.to_string().into_bytes()
                    },
                )
            }),
        };
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
            let allow = allowed_methods(&segments(request.url()));
            response
                .add_header(Header::from_bytes("Allow", allow.join(", ")).expect("valid header"));
        }
        response
    }

    fn route(&self, request: &mut Request) -> Answer {
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let parts = segments(path);
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        if parts == ["healthz"] && *request.method() == Method::Get {
            return self.healthz();
        }

        let allowed = allowed_methods(&parts.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        if allowed.is_empty() {
            return Err(Problem::new(
                404,
                "not_found",
                format!(
                    "no route {} {path}; the API's routes start with /v1",
                    request.method()
                ),
            ));
        }
        if parts == ["v1", "portal", "session"] && *request.method() == Method::Post {
            // The one route without a token: the portal link's code is the credential.
            let body = read_body(request, REQUEST_BYTES_MAX)?;
            return self.portal_session(&body);
        }
        let access = self.authorize(request)?;
        let query = Query::parse(query);
        let method = request.method().clone();
        if !allowed.contains(&method.to_string().as_str()) {
            return Err(Problem::new(
                405,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            ));
        }
        let default_workspace = access.workspace().unwrap_or(DEFAULT_WORKSPACE);
        match (method, parts.as_slice()) {
            (Method::Get, ["v1", "me"]) => Ok((
                200,
                match access.workspace() {
                    None => json!({"role": "admin"}),
                    Some(workspace) => json!({"role": "workspace", "workspace_id": workspace}),
                },
            )),
            (Method::Post, ["v1", "events"]) => {
                let body = read_body(request, self.shared.max_event_bytes)?;
                let event = ingest::parse_event(
                    &body,
                    "",
                    self.shared.max_event_bytes,
                    now_ms(),
                    default_workspace,
                )?;
                access.check_workspace(&event.workspace_id, "workspace_id")?;
                let mut stored = self.ingest(vec![event])?;
                let stored = stored.pop().expect("one event in, one out");
                Ok((if stored.created { 202 } else { 200 }, stored_json(&stored)))
            }
            (Method::Post, ["v1", "events", "batch"]) => {
                let body = read_body(request, BATCH_BYTES_MAX)?;
                let events = ingest::parse_batch(
                    &body,
                    self.shared.max_event_bytes,
                    now_ms(),
                    default_workspace,
                )?;
                for (index, event) in events.iter().enumerate() {
                    access.check_workspace(
                        &event.workspace_id,
                        &format!("events[{index}].workspace_id"),
                    )?;
                }
                let stored = self.ingest(events)?;
                Ok((
                    202,
                    json!({ "events": stored.iter().map(stored_json).collect::<Vec<_>>() }),
                ))
            }
            // (Method::Get, ["v1", "events"]) is answered as bytes by `event_list`.
            (Method::Get, ["v1", "events", id]) => self.get_event(&access, id, &query),
            (Method::Get, ["v1", "event-types"]) => Ok((200, catalog::to_json())),
            (Method::Post, ["v1", "endpoints"]) => {
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.create_endpoint(&access, &body)
            }
            (Method::Get, ["v1", "endpoints"]) => self.list_endpoints(&access, &query),
            (Method::Get, ["v1", "endpoints", id]) => {
                let endpoint = self.find_endpoint(&access, id)?;
                Ok((
                    200,
                    endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq)),
                ))
            }
            (Method::Patch, ["v1", "endpoints", id]) => {
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.update_endpoint(&access, id, &body)
            }
            (Method::Get, ["v1", "endpoints", id, "secret"]) => {
                let endpoint = self.find_endpoint(&access, id)?;
                let store::Secrets {
                    current: secret,
                    previous,
                } = store::endpoint_secrets(&self.conn, endpoint.seq, now_ms())
                    .map_err(internal)?
                    .ok_or_else(|| not_found("endpoint", id))?;
                Ok((
                    200,
                    json!({
                        "secret": secret,
                        "previous_secret": previous.as_ref().map(|(secret, _)| secret),
                        "previous_secret_expires_at": previous.map(|(_, at)| format_rfc3339_millis(at)),
                    }),
                ))
            }
            (Method::Post, ["v1", "endpoints", id, "rotate-secret"]) => {
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.rotate_secret(&access, id, &body)
            }
            (Method::Post, ["v1", "endpoints", id, "test"]) => {
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.send_test(&access, id, &body)
            }
            (Method::Post, ["v1", "endpoints", id, "recover"]) => {
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.recover(&access, id, &body)
            }
            (Method::Get, ["v1", "endpoints", id, "stats"]) => self.stats(&access, id, &query),
            (Method::Post, ["v1", "workspaces", workspace, "tokens"]) => {
                access.check_admin()?;
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.create_token(workspace, &body)
            }
            (Method::Post, ["v1", "workspaces", workspace, "portal-links"]) => {
                access.check_admin()?;
                let body = read_body(request, REQUEST_BYTES_MAX)?;
                self.create_portal_link(workspace, &body)
            }
            (Method::Get, ["v1", "workspaces", workspace, "tokens"]) => {
                access.check_admin()?;
                let (limit, before) = query.page()?;
                let rows =
                    store::tokens(&self.conn, workspace, before, limit + 1).map_err(internal)?;
                Ok((200, page(rows, limit, |r| r.seq, token_json)))
            }
            (Method::Delete, ["v1", "workspaces", workspace, "tokens", id]) => {
                access.check_admin()?;
                if !store::delete_token(&self.conn, workspace, id).map_err(internal)? {
                    return Err(not_found("token", id));
                }
                log::info!("token revoked: token={id} workspace={workspace}");
                Ok((204, Value::Null))
            }
            (Method::Delete, ["v1", "endpoints", id]) => {
                let endpoint = self.find_endpoint(&access, id)?;
                // Answers at once: the history goes in the background (purge.rs).
                store::delete_endpoint(&self.conn, endpoint.seq, now_ms()).map_err(internal)?;
                self.endpoint_changed(endpoint.seq);
                self.shared.dispatcher.forget(endpoint.seq);
                Ok((204, Value::Null))
            }
            (Method::Get, ["v1", "deliveries"]) => self.list_deliveries(&access, &query),
            (Method::Get, ["v1", "deliveries", id]) => {
                let delivery = self.find_delivery(&access, id)?;
                let attempts = store::attempts(&self.conn, delivery.seq, ATTEMPTS_LISTED_MAX)
                    .map_err(internal)?;
                let mut value = delivery_json(&delivery);
                value["attempts"] = attempts
                    .iter()
                    .map(|a| {
                        json!({
                            "number": a.number,
                            "started_at": format_rfc3339_millis(a.started_at_ms),
                            "duration_ms": a.duration_ms,
                            "status_code": a.status_code,
                            "error_class": a.error_class,
                            "error": a.error_message,
                            "response_excerpt": a.response_excerpt,
                        })
                    })
                    .collect();
                Ok((200, value))
            }
            (Method::Post, ["v1", "deliveries", id, "retry"]) => {
                let delivery = self.find_delivery(&access, id)?;
                if !store::retry_delivery(&self.conn, delivery.seq, now_ms()).map_err(internal)? {
                    return Err(Problem::new(
                        409,
                        "delivery_in_flight",
                        "an attempt of this delivery is in flight; try again when it ends",
                    ));
                }
                // Read before waking the scheduler: the answer is what the retry made (pending),
                // not whatever the scheduler did next (a claim raced the read and said delivering).
                let delivery = self.find_delivery(&access, id)?;
                let _ = self.shared.commands.try_send(Command::Wake);
                Ok((202, delivery_json(&delivery)))
            }
            (method, _) => Err(Problem::new(
                405,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            )),
        }
    }

    /// Who sends the request: the admin, or a workspace token's holder.
    fn authorize(&self, request: &Request) -> Result<Access, Problem> {
        let token = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| {
                // The scheme name is case-insensitive (RFC 9110).
                let value = h.value.as_str();
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim);
        match token {
            None => Err(Problem::new(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
            )),
            Some(token) => {
                let hash = sha256_hex(token);
                if hash == self.shared.admin_token_sha256 {
                    return Ok(Access::Admin);
                }
                let found = store::token_by_hash(&self.conn, &hash, now_ms()).map_err(internal)?;
                let Some(found) = found else {
                    return Err(Problem::new(
                        401,
                        "unauthorized",
                        "the bearer token is not valid (revoked, expired, or never issued)",
                    ));
                };
                if let Err(error) = store::touch_token(&self.conn, &found, now_ms()) {
                    // Only `last_used_at` is lost; the request goes on.
                    log::warn!("api: noting the use of token {} failed: {error}", found.id);
                }
                Ok(Access::Workspace(found.workspace_id))
            }
        }
    }

    /// `GET /metrics`: Prometheus text, no token (like `/healthz`); no secret or payload in it.
    fn metrics(&self) -> Response<std::io::Cursor<Vec<u8>>> {
        let page = store::metrics_gauges(&self.conn, now_ms()).and_then(|gauges| {
            let mut flows = Vec::new();
            for view in self.shared.dispatcher.flows() {
                // An endpoint deleted meanwhile has no id any more: it is left out.
                if let Some(id) = store::endpoint_id(&self.conn, view.endpoint_seq)? {
                    flows.push((id, view.window, view.running));
                }
            }
            Ok(self.shared.metrics.render(&gauges) + &crate::metrics::render_flows(&flows))
        });
        match page {
            Ok(page) => Response::from_data(page.into_bytes()).with_header(
                Header::from_bytes("Content-Type", "text/plain; version=0.0.4")
                    .expect("valid header"),
            ),
            Err(error) => {
                let problem = internal(error);
                let body = json!({"error": {"code": problem.code, "message": problem.message}})
                    .to_string();
                Response::from_data(body.into_bytes()).with_status_code(problem.status)
            }
        }
    }

    fn healthz(&self) -> Answer {
        let database = self
            .conn
            .query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
            .is_ok();
        let scheduler =
            now_ms() - self.shared.heartbeat_ms.load(Ordering::Relaxed) < HEARTBEAT_STALE_MS;
        let status = if database && scheduler { 200 } else { 503 };
        Ok((
            status,
            json!({"database": if database { "ok" } else { "failing" }, "scheduler": if scheduler { "ok" } else { "stalled" }}),
        ))
    }

    /// Hands events to the scheduler and waits for their commit.
    fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, Problem> {
        let (reply, answer) = bounded(1);
        let stopped = || {
            Problem::new(
                503,
                "unavailable",
                "the service is shutting down; try again shortly",
            )
        };
        self.shared
            .commands
            .send(Command::Ingest { events, reply })
            .map_err(|_| stopped())?;
        match answer.recv().map_err(|_| stopped())? {
            Ok(stored) => {
                for event in stored.iter().filter(|event| event.created) {
                    self.shared.metrics.event_ingested(&event.event_type);
                }
                Ok(stored)
            }
            Err(error) => Err(internal(error)),
        }
    }

    /// `GET /v1/events`, answered as bytes rather than a `Value` (see `pages.rs`); `None` for
    /// every other request, which `route` answers.
    fn event_list(&self, request: &Request) -> Option<Result<(u16, Vec<u8>), Problem>> {
        if *request.method() != Method::Get || segments(request.url()) != ["v1", "events"] {
            return None;
        }
        let query = Query::parse(request.url().split_once('?').map_or("", |(_, query)| query));
        Some(
            self.authorize(request)
                .and_then(|access| self.list_events(&access, &query)),
        )
    }

    fn list_events(&self, access: &Access, query: &Query) -> Result<(u16, Vec<u8>), Problem> {
        let (limit, before) = query.page()?;
        let since_ms = match query.get("since") {
            Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
                Problem::new(
                    400,
                    "invalid_query",
                    "since must be an RFC 3339 time, e.g. 2024-01-15T10:30:00Z",
                )
                .at("since")
            })?),
            None => None,
        };
        let filter = EventFilter {
            workspace_id: access.narrow(query.get("workspace_id"))?,
            event_type: query.get("type"),
            since_ms,
        };
        // One fetch holds at most a page's worth of stored bodies, however large they are.
        let fetch_max = (crate::pages::PAGE_BYTES_MAX / self.shared.max_event_bytes.max(1)).max(1);
        let page = crate::pages::event_page(
            limit,
            before,
            crate::pages::PAGE_BYTES_MAX,
            fetch_max,
            |before, count| store::events(&self.conn, &filter, before, count).map_err(internal),
        )?;
        Ok((200, page))
    }

    /// Event ids are unique per workspace: a workspace token sees its own event; the admin
    /// names the workspace with `?workspace_id=` when two workspaces use the id.
    fn get_event(&self, access: &Access, id: &str, query: &Query) -> Answer {
        let workspace_id = access.narrow(query.get("workspace_id"))?;
        let mut found = store::events_by_id(&self.conn, id, workspace_id, 2).map_err(internal)?;
        if found.len() > 1 {
            return Err(Problem::new(
                409,
                "ambiguous_event_id",
                format!("several workspaces have an event \"{id}\"; name one with ?workspace_id="),
            )
            .at("workspace_id"));
        }
        let event = found.pop().ok_or_else(|| not_found("event", id))?;
        let filter = DeliveryFilter {
            workspace_id: Some(&event.workspace_id),
            event_id: Some(id),
            ..DeliveryFilter::default()
        };
        let deliveries =
            store::deliveries(&self.conn, &filter, i64::MAX, PAGE_LIMIT_MAX).map_err(internal)?;
        let mut value = event_json(&event);
        value["deliveries"] = deliveries.iter().map(delivery_json).collect();
        Ok((200, value))
    }

    /// The endpoint with this id, if `access` may see it: another workspace's is "not found".
    fn find_endpoint(&self, access: &Access, id: &str) -> Result<EndpointRow, Problem> {
        store::endpoint(&self.conn, id)
            .map_err(internal)?
            .filter(|endpoint| access.sees(&endpoint.workspace_id))
            .ok_or_else(|| not_found("endpoint", id))
    }

    fn find_delivery(&self, access: &Access, id: &str) -> Result<DeliveryRow, Problem> {
        store::delivery(&self.conn, id)
            .map_err(internal)?
            .filter(|delivery| access.sees(&delivery.workspace_id))
            .ok_or_else(|| not_found("delivery", id))
    }

    fn create_endpoint(&self, access: &Access, body: &str) -> Answer {
        let input = parse_object(body)?;
        let now = now_ms();
        let mut endpoint = EndpointRow {
            seq: 0,
            id: new_id("ep"),
            workspace_id: access.workspace().unwrap_or(DEFAULT_WORKSPACE).to_string(),
            url: String::new(),
            event_types: Vec::new(),
            description: String::new(),
            headers: Vec::new(),
            enabled: true,
            disabled_reason: None,
            failing_since_ms: None,
            last_success_at_ms: None,
            previous_secret_expires_at_ms: None,
            created_at_ms: now,
            updated_at_ms: now,
            rate_limit: None,
            ordering: "none".to_string(),
        };
        if !input.contains_key("url") {
            return Err(Problem::field("url", "url is required"));
        }
        if !input.contains_key("events") {
            return Err(Problem::field(
                "events",
                "events is required: a list of event types, or [\"*\"] for all",
            ));
        }
        self.apply_endpoint_fields(&mut endpoint, &input, FieldSet::Create)?;
        access.check_workspace(&endpoint.workspace_id, "workspace_id")?;
        self.check_url(&endpoint)?;
        let secret = new_secret();
        store::insert_endpoint(&self.conn, &mut endpoint, &secret).map_err(internal)?;
        log::info!(
            "endpoint created: endpoint={} workspace={}",
            endpoint.id,
            endpoint.workspace_id
        );
        let mut value = endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq));
        value["secret"] = Value::from(secret);
        Ok((201, value))
    }

    fn update_endpoint(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_object(body)?;
        let mut endpoint = self.find_endpoint(access, id)?;
        self.apply_endpoint_fields(&mut endpoint, &input, FieldSet::Update)?;
        if input.contains_key("url") {
            self.check_url(&endpoint)?;
        }
        endpoint.updated_at_ms = now_ms();
        let fields: Vec<&str> = input.keys().map(String::as_str).collect();
        store::update_endpoint(&self.conn, &endpoint, &fields).map_err(internal)?;
        self.endpoint_changed(endpoint.seq);
        // Answer what is stored: the scheduler may have changed other fields meanwhile.
        let endpoint = self.find_endpoint(access, id)?;
        Ok((
            200,
            endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq)),
        ))
    }

    /// `POST /v1/endpoints/{id}/rotate-secret {overlap?}`: a new secret at once; the old one
    /// stays live for the overlap (SPEC "Rotation").
    fn rotate_secret(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_optional_object(body)?;
        let mut overlap = ROTATION_OVERLAP_DEFAULT;
        for (key, value) in &input {
            match key.as_str() {
                "overlap" => {
                    let text = value.as_str().ok_or_else(|| {
                        Problem::field("overlap", "overlap must be a duration such as \"24h\"")
                    })?;
                    overlap = time::parse_duration(text).map_err(|message| {
                        Problem::field("overlap", format!("overlap: {message}"))
                    })?;
                    if overlap > ROTATION_OVERLAP_MAX {
                        return Err(Problem::field(
                            "overlap",
                            format!(
                                "overlap is at most {}",
                                time::format_duration(ROTATION_OVERLAP_MAX)
                            ),
                        ));
                    }
                }
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: overlap"),
                    ));
                }
            }
        }
        let endpoint = self.find_endpoint(access, id)?;
        let secret = new_secret();
        let now = now_ms();
        store::rotate_secret(
            &self.conn,
            endpoint.seq,
            &secret,
            time::duration_ms(overlap),
            now,
        )
        .map_err(internal)?;
        // Claimed attempts were signed with the old secrets: they are claimed again.
        self.endpoint_changed(endpoint.seq);
        log::info!(
            "secret rotated: endpoint={} overlap={}",
            endpoint.id,
            time::format_duration(overlap)
        );
        let endpoint = self.find_endpoint(access, id)?;
        let mut value = endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq));
        value["secret"] = Value::from(secret);
        Ok((200, value))
    }

    /// `POST /v1/endpoints/{id}/test {type?}`: a sample event of that type to this endpoint
    /// only, through the normal delivery path.
    fn send_test(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_optional_object(body)?;
        let endpoint = self.find_endpoint(access, id)?;
        let mut type_name = endpoint
            .event_types
            .iter()
            .find(|name| name.as_str() != "*")
            .cloned()
            .unwrap_or_else(|| catalog::EVENT_TYPES[0].name.to_string());
        for (key, value) in &input {
            match key.as_str() {
                "type" => {
                    type_name = value
                        .as_str()
                        .ok_or_else(|| Problem::field("type", "type must be a string"))?
                        .to_string();
                }
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: type"),
                    ));
                }
            }
        }
        let Some(data) = catalog::sample(&type_name) else {
            return Err(ingest::unknown_event_type(&type_name, "type"));
        };
        if !endpoint.enabled {
            return Err(Problem::new(
                409,
                "endpoint_disabled",
                "this endpoint is disabled, so a test event would wait; enable it first",
            ));
        }
        let now = now_ms();
        let event_id = new_id("evt");
        let event = NewEvent {
            body: ingest::envelope(&event_id, &type_name, now, &data.to_string()).into_bytes(),
            id: event_id,
            workspace_id: endpoint.workspace_id.clone(),
            subject: ingest::default_subject(&type_name, &data),
            event_type: type_name,
            created_at_ms: now,
            test_endpoint_seq: Some(endpoint.seq),
        };
        let mut stored = self.ingest(vec![event])?;
        let mut value = stored_json(&stored.pop().expect("one event in, one out"));
        value["test"] = Value::from(true);
        Ok((202, value))
    }

    /// `POST /v1/endpoints/{id}/recover {since, until?}`: failed deliveries back to pending.
    fn recover(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_object(body)?;
        let time_field = |name: &str| -> Result<Option<i64>, Problem> {
            match input.get(name) {
                None => Ok(None),
                Some(value) => value
                    .as_str()
                    .and_then(parse_rfc3339)
                    .map(Some)
                    .ok_or_else(|| {
                        Problem::field(
                            name,
                            format!("{name} must be an RFC 3339 time, e.g. 2024-01-15T10:30:00Z"),
                        )
                    }),
            }
        };
        if let Some(other) = input
            .keys()
            .find(|key| !["since", "until", "after"].contains(&key.as_str()))
        {
            return Err(Problem::field(
                other,
                format!("unknown field \"{other}\"; allowed: since, until, after"),
            ));
        }
        // `after`: the `next` of the previous call, so a long recovery goes on where it stopped
        // (deliveries it re-queued that failed again are not taken twice).
        let after_seq = match input.get("after") {
            None | Some(Value::Null) => 0,
            Some(value) => value
                .as_str()
                .and_then(|text| text.parse::<i64>().ok())
                .filter(|seq| *seq > 0)
                .ok_or_else(|| {
                    Problem::field(
                        "after",
                        "after must be the `next` of a previous recover answer",
                    )
                })?,
        };
        let since_ms = time_field("since")?
            .ok_or_else(|| Problem::field("since", "since is required: an RFC 3339 time"))?;
        let now = now_ms();
        let until_ms = time_field("until")?.unwrap_or(i64::MAX);
        if until_ms < since_ms {
            return Err(Problem::field(
                "until",
                "until must not be earlier than since",
            ));
        }
        let endpoint = self.find_endpoint(access, id)?;
        let (requeued, next) = store::recover_failed(
            &self.conn,
            endpoint.seq,
            (since_ms, until_ms),
            after_seq,
            now,
            RECOVER_DELIVERIES_MAX,
        )
        .map_err(internal)?;
        if requeued > 0 {
            let _ = self.shared.commands.try_send(Command::Wake);
        }
        log::info!("recover: endpoint={} requeued={requeued}", endpoint.id);
        Ok((
            202,
            json!({"requeued": requeued, "more": next.is_some(), "next": next.map(|seq| seq.to_string())}),
        ))
    }

    /// `GET /v1/endpoints/{id}/stats?hours=24`: deliveries per hour by outcome, success rate,
    /// last success, counted from the endpoint's newest deliveries.
    fn stats(&self, access: &Access, id: &str, query: &Query) -> Answer {
        let hours = match query.get("hours") {
            None => 24,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|hours| (1..=STATS_HOURS_MAX).contains(hours))
                .ok_or_else(|| {
                    Problem::new(
                        400,
                        "invalid_query",
                        format!("hours must be a whole number from 1 to {STATS_HOURS_MAX}"),
                    )
                    .at("hours")
                })?,
        };
        let endpoint = self.find_endpoint(access, id)?;
        const HOUR_MS: i64 = 3_600_000;
        let first_hour_ms = (now_ms().div_euclid(HOUR_MS) - (hours - 1)) * HOUR_MS;
        let rows = store::recent_deliveries(
            &self.conn,
            endpoint.seq,
            first_hour_ms,
            STATS_DELIVERIES_MAX,
        )
        .map_err(internal)?;
        let mut hourly = vec![[0u64; 3]; hours as usize];
        let mut totals = [0u64; 4];
        for (status, created_at_ms) in &rows {
            let bucket = ((created_at_ms - first_hour_ms) / HOUR_MS).clamp(0, hours - 1) as usize;
            let (outcome, total) = match status.as_str() {
                "succeeded" => (0, 0),
                "failed" => (1, 1),
                "pending" => (2, 2),
                _ => (2, 3),
            };
            hourly[bucket][outcome] += 1;
            totals[total] += 1;
        }
        let finished = totals[0] + totals[1];
        Ok((
            200,
            json!({
                "hours": hours,
                "last_success_at": endpoint.last_success_at_ms.map(format_rfc3339_millis),
                "success_rate": (finished > 0).then(|| totals[0] as f64 / finished as f64),
                "totals": {"succeeded": totals[0], "failed": totals[1], "pending": totals[2], "delivering": totals[3]},
                "counted": rows.len(),
                "hourly": hourly.iter().enumerate().map(|(index, [succeeded, failed, pending])| json!({
                    "hour": format_rfc3339_seconds(first_hour_ms + index as i64 * HOUR_MS),
                    "succeeded": succeeded,
                    "failed": failed,
                    "pending": pending,
                })).collect::<Vec<_>>(),
            }),
        ))
    }

    /// `POST /v1/workspaces/{ws}/tokens {description?}`: the token is in this answer only.
    fn create_token(&self, workspace: &str, body: &str) -> Answer {
        let workspace =
            ingest::check_id(Some(&Value::from(workspace)), "workspace_id")?.expect("given");
        let input = parse_optional_object(body)?;
        let mut description = String::new();
        for (key, value) in &input {
            match key.as_str() {
                "description" => description = check_description(value)?,
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: description"),
                    ));
                }
            }
        }
        let mut row = store::TokenRow {
            seq: 0,
            id: new_id("tok"),
            workspace_id: workspace,
            description,
            created_at_ms: now_ms(),
            last_used_at_ms: None,
            expires_at_ms: None,
        };
        self.issue_token(&mut row)
    }

    /// Stores a workspace token; the answer (201) is the only place its secret appears.
    fn issue_token(&self, row: &mut store::TokenRow) -> Answer {
        let token = new_token(WORKSPACE_TOKEN_PREFIX);
        store::insert_token(&self.conn, row, &sha256_hex(&token)).map_err(internal)?;
        log::info!(
            "token created: token={} workspace={} description={:?}",
            row.id,
            row.workspace_id,
            row.description
        );
        let mut value = token_json(row);
        value["token"] = Value::from(token);
        Ok((201, value))
    }

    /// `POST /v1/workspaces/{ws}/portal-links {expires_in?}`: a single-use code, short-lived,
    /// that the dashboard exchanges for a portal session. The link carries the code, never a
    /// token: a browser's history keeps it, but once used or expired it opens nothing.
    fn create_portal_link(&self, workspace: &str, body: &str) -> Answer {
        let workspace =
            ingest::check_id(Some(&Value::from(workspace)), "workspace_id")?.expect("given");
        let input = parse_optional_object(body)?;
        let mut expires_in = PORTAL_CODE_LIFETIME_DEFAULT;
        for (key, value) in &input {
            match key.as_str() {
                "expires_in" => {
                    expires_in = value
                        .as_str()
                        .ok_or_else(|| {
                            Problem::field(
                                "expires_in",
                                "expires_in must be a duration such as \"15m\"",
                            )
                        })
                        .and_then(|text| {
                            time::parse_duration(text).map_err(|message| {
                                Problem::field("expires_in", format!("expires_in: {message}"))
                            })
                        })?;
                    if expires_in.is_zero() || expires_in > PORTAL_CODE_LIFETIME_MAX {
                        return Err(Problem::field(
                            "expires_in",
                            format!(
                                "expires_in must be more than 0s and at most {}",
                                time::format_duration(PORTAL_CODE_LIFETIME_MAX)
                            ),
                        ));
                    }
                }
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: expires_in"),
                    ));
                }
            }
        }
        let code = new_token(PORTAL_CODE_PREFIX);
        let now = now_ms();
        let expires_at_ms = time::after_ms(now, expires_in);
        store::insert_portal_code(
            &self.conn,
            &sha256_hex(&code),
            &workspace,
            now,
            expires_at_ms,
        )
        .map_err(internal)?;
        log::info!("portal link created: workspace={workspace}");
        Ok((
            201,
            json!({
                "code": code,
                "workspace_id": workspace,
                "expires_at": format_rfc3339_millis(expires_at_ms),
                "url": format!("/#code={code}"),
            }),
        ))
    }

    /// `POST /v1/portal/session {code}` (no token): uses up a portal code and answers a
    /// workspace token that lasts `PORTAL_SESSION_LIFETIME`.
    fn portal_session(&self, body: &str) -> Answer {
        let input = parse_object(body)?;
        if let Some(other) = input.keys().find(|key| key.as_str() != "code") {
            return Err(Problem::field(
                other,
                format!("unknown field \"{other}\"; allowed: code"),
            ));
        }
        let code = input
            .get("code")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::field("code", "code is required: the code of a portal link"))?;
        let now = now_ms();
        let workspace = store::take_portal_code(&self.conn, &sha256_hex(code), now)
            .map_err(internal)?
            .ok_or_else(|| {
                Problem::new(
                    401,
                    "invalid_code",
                    "this portal link was used already, has expired, or never existed; ask for a new one",
                )
                .at("code")
            })?;
        let mut row = store::TokenRow {
            seq: 0,
            id: new_id("tok"),
            workspace_id: workspace,
            description: "portal session".to_string(),
            created_at_ms: now,
            last_used_at_ms: None,
            expires_at_ms: Some(time::after_ms(now, PORTAL_SESSION_LIFETIME)),
        };
        self.issue_token(&mut row)
    }

    /// Tells the scheduler, so work claimed with the old settings is not sent with them (and a
    /// just-disabled endpoint gets nothing more). Blocking send: this must not be dropped.
    fn endpoint_changed(&self, endpoint_seq: i64) {
        let _ = self
            .shared
            .commands
            .send(Command::EndpointChanged { endpoint_seq });
    }

    /// Checks an endpoint's url, looking its host up on its workspace's share of the lookup
    /// threads and within `net::DNS_LOOKUP_TIMEOUT`, so this API thread is held no longer.
    fn check_url(&self, endpoint: &EndpointRow) -> Result<(), Problem> {
        check_endpoint_url(
            &endpoint.url,
            self.shared.allow_http,
            &self.shared.policy,
            &endpoint.workspace_id,
        )
        .map_err(|message| Problem::new(422, "invalid_url", message).at("url"))
    }

    /// Checks each given field and writes it into `endpoint`.
    fn apply_endpoint_fields(
        &self,
        endpoint: &mut EndpointRow,
        input: &serde_json::Map<String, Value>,
        fields: FieldSet,
    ) -> Result<(), Problem> {
        for (key, value) in input {
            match key.as_str() {
                "url" => {
                    let url = value
                        .as_str()
                        .ok_or_else(|| Problem::field("url", "url must be a string"))?;
                    // Checked by `check_url` once the endpoint's workspace is known.
                    endpoint.url = url.to_string();
                }
                "events" => endpoint.event_types = check_event_types(value)?,
                "description" => endpoint.description = check_description(value)?,
                "headers" => endpoint.headers = check_headers(value)?,
                "workspace_id" if fields == FieldSet::Create => {
                    endpoint.workspace_id =
                        ingest::check_id(Some(value), "workspace_id")?.expect("given");
                }
                "enabled" if fields == FieldSet::Update => {
                    let enabled = value.as_bool().ok_or_else(|| {
                        Problem::field("enabled", "enabled must be true or false")
                    })?;
                    if enabled != endpoint.enabled {
                        endpoint.enabled = enabled;
                        endpoint.disabled_reason = if enabled {
                            None
                        } else {
                            Some("disabled through the API".to_string())
                        };
                        if enabled {
                            // A fresh start: the health record begins again (store does the same).
                            endpoint.failing_since_ms = None;
                        }
                    }
                }
                "rate_limit" => endpoint.rate_limit = check_rate_limit(value)?,
                "ordering" => endpoint.ordering = check_ordering(value)?,
                other => {
                    let allowed = match fields {
                        FieldSet::Create => {
                            "url, events, description, headers, workspace_id, rate_limit, ordering"
                        }
                        FieldSet::Update => {
                            "url, events, description, headers, enabled, rate_limit, ordering"
                        }
                    };
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: {allowed}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn list_endpoints(&self, access: &Access, query: &Query) -> Answer {
        let (limit, before) = query.page()?;
        let workspace_id = access.narrow(query.get("workspace_id"))?;
        let rows =
            store::endpoints(&self.conn, workspace_id, before, limit + 1).map_err(internal)?;
        let dispatcher = &self.shared.dispatcher;
        Ok((
            200,
            page(
                rows,
                limit,
                |r| r.seq,
                |r| endpoint_json(r, dispatcher.window(r.seq)),
            ),
        ))
    }

    fn list_deliveries(&self, access: &Access, query: &Query) -> Answer {
        let (limit, before) = query.page()?;
        let status = query.get("status");
        if let Some(status) = status
            && !["pending", "delivering", "succeeded", "failed"].contains(&status)
        {
            return Err(Problem::new(
                400,
                "invalid_query",
                "status must be pending, delivering, succeeded or failed",
            )
            .at("status"));
        }
        let filter = DeliveryFilter {
            workspace_id: access.narrow(query.get("workspace_id"))?,
            endpoint_id: query.get("endpoint_id"),
            event_id: query.get("event_id"),
            status,
        };
        let rows = store::deliveries(&self.conn, &filter, before, limit + 1).map_err(internal)?;
        Ok((200, page(rows, limit, |r| r.seq, delivery_json)))
    }
}

/// Who a request comes from. A workspace token sees and changes its workspace only; to it,
/// another workspace's objects do not exist (404), and naming another workspace is 403.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    Admin,
    Workspace(String),
}

impl Access {
    /// The one workspace this access is limited to; None for the admin.
    fn workspace(&self) -> Option<&str> {
        match self {
            Access::Admin => None,
            Access::Workspace(workspace) => Some(workspace),
        }
    }

    fn sees(&self, workspace_id: &str) -> bool {
        self.workspace().is_none_or(|own| own == workspace_id)
    }

    /// 403 unless this access may act in `workspace_id` (named in `field`).
    fn check_workspace(&self, workspace_id: &str, field: &str) -> Result<(), Problem> {
        if self.sees(workspace_id) {
            return Ok(());
        }
        Err(Problem::new(
            403,
            "forbidden",
            format!(
                "this token is for workspace \"{}\" only",
                self.workspace().unwrap_or("")
            ),
        )
        .at(field))
    }

    fn check_admin(&self) -> Result<(), Problem> {
        match self {
            Access::Admin => Ok(()),
            Access::Workspace(_) => Err(Problem::new(
                403,
                "forbidden",
                "only the admin token may manage workspace tokens",
            )),
        }
    }

    /// The workspace filter of a list: a workspace token always lists its own.
    fn narrow<'a>(&'a self, asked: Option<&'a str>) -> Result<Option<&'a str>, Problem> {
        match (self.workspace(), asked) {
            (None, asked) => Ok(asked),
            (Some(own), Some(asked)) if asked != own => {
                self.check_workspace(asked, "workspace_id")?;
                Ok(Some(own))
            }
            (Some(own), _) => Ok(Some(own)),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldSet {
    Create,
    Update,
}

fn parse_object(body: &str) -> Result<serde_json::Map<String, Value>, Problem> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::new(
            422,
            "invalid_body",
            "request body must be a JSON object",
        )),
        Err(error) => Err(ingest::json_problem(&error, "")),
    }
}

/// A description: a string of at most `DESCRIPTION_CHARS_MAX` characters.
/// Most attempt starts in any second an endpoint may ask for.
const RATE_LIMIT_MAX: u32 = 10_000;

/// `rate_limit`: deliveries per second, 1 to 10000, or null for none.
fn check_rate_limit(value: &Value) -> Result<Option<u32>, Problem> {
    if value.is_null() {
        return Ok(None);
    }
    value
        .as_u64()
        .filter(|n| (1..=u64::from(RATE_LIMIT_MAX)).contains(n))
        .map(|n| Some(n as u32))
        .ok_or_else(|| {
            Problem::field(
                "rate_limit",
                format!("rate_limit must be a whole number of deliveries per second from 1 to {RATE_LIMIT_MAX}, or null for no limit"),
            )
        })
}

/// `ordering`: "none" or "subject".
fn check_ordering(value: &Value) -> Result<String, Problem> {
    match value.as_str() {
        Some(ordering @ ("none" | "subject")) => Ok(ordering.to_string()),
        _ => Err(Problem::field(
            "ordering",
            "ordering must be \"none\" or \"subject\" (one subject's events in order)",
        )),
    }
}

fn check_description(value: &Value) -> Result<String, Problem> {
    let text = value
        .as_str()
        .ok_or_else(|| Problem::field("description", "description must be a string"))?;
    if text.chars().count() > DESCRIPTION_CHARS_MAX {
        return Err(Problem::field(
            "description",
            format!("description is longer than {DESCRIPTION_CHARS_MAX} characters"),
        ));
    }
    Ok(text.to_string())
}

/// A body that may be empty (all fields optional) or a JSON object.
fn parse_optional_object(body: &str) -> Result<serde_json::Map<String, Value>, Problem> {
    if body.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    parse_object(body)
}

fn check_event_types(value: &Value) -> Result<Vec<String>, Problem> {
    let message = "events must be a non-empty list of event types, or [\"*\"] for all";
    let list = value
        .as_array()
        .filter(|list| !list.is_empty())
        .ok_or_else(|| Problem::field("events", message))?;
    let mut types: Vec<String> = Vec::new();
    for (index, item) in list.iter().enumerate() {
        let name = item
            .as_str()
            .ok_or_else(|| Problem::field(format!("events[{index}]"), message))?;
        if name != "*" && catalog::find(name).is_none() {
            return Err(Problem::new(
                422,
                "unknown_event_type",
                format!("\"{name}\" is not an event type (see GET /v1/event-types)"),
            )
            .at(format!("events[{index}]")));
        }
        if !types.iter().any(|t| t == name) {
            types.push(name.to_string());
        }
    }
    if types.iter().any(|t| t == "*") {
        types = vec!["*".to_string()];
    }
    Ok(types)
}

fn check_headers(value: &Value) -> Result<Vec<(String, String)>, Problem> {
    let map = value.as_object().ok_or_else(|| {
        Problem::field(
            "headers",
            "headers must be an object of name: value strings",
        )
    })?;
    if map.len() > ENDPOINT_HEADERS_MAX {
        return Err(Problem::field(
            "headers",
            format!("at most {ENDPOINT_HEADERS_MAX} headers"),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in map {
        let field = format!("headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(Problem::field(
                field,
                format!("\"{name}\" is not a valid header name"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-clockeye-") {
            return Err(Problem::field(
                field,
                format!("header {name} is set by the service and cannot be overridden"),
            ));
        }
        let text = value
            .as_str()
            .ok_or_else(|| Problem::field(field.clone(), format!("{field} must be a string")))?;
        if text.len() > HEADER_VALUE_BYTES_MAX
            || text.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err(Problem::field(
                field.clone(),
                format!(
                    "{field} must be at most {HEADER_VALUE_BYTES_MAX} bytes without control characters"
                ),
            ));
        }
        headers.push((name.clone(), text.to_string()));
    }
    Ok(headers)
}

/// Reads a request body up to `limit` bytes as UTF-8; more is 413.
fn read_body(request: &mut Request, limit: usize) -> Result<String, Problem> {
    let too_large = || {
        Problem::new(
            413,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    if request.body_length().is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    // Bodies up to 1 MiB were read by the connection's thread already; a larger one is read
    // here, in chunks, under a deadline, so a trickling sender cannot keep this thread.
    let deadline = std::time::Instant::now() + BODY_READ_TIMEOUT;
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut reader = request.as_reader().take(limit as u64 + 1);
    loop {
        let read = reader.read(&mut chunk).map_err(|error| {
            Problem::new(
                400,
                "unreadable_body",
                format!("could not read the request body: {error}"),
            )
        })?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
        if std::time::Instant::now() > deadline {
            return Err(Problem::new(
                408,
                "request_timeout",
                format!(
                    "the request body took longer than {}s to arrive",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ));
        }
    }
    if body.len() > limit {
        return Err(too_large());
    }
    String::from_utf8(body)
        .map_err(|_| Problem::new(400, "invalid_json", "request body is not UTF-8"))
}

pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// `GET /openapi.json`, built once.
fn openapi_response() -> Response<std::io::Cursor<Vec<u8>>> {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| crate::openapi::document().to_string());
    Response::from_data(text.clone().into_bytes())
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("valid header"))
}

/// Every route: method and path, `{…}` standing for one segment. `allowed_methods` (404/405
/// and `Allow`) reads this, and `openapi.rs` describes exactly these (a test compares them).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    // The dashboard's files (`dashboard::serve` answers these before the router).
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/dashboard/{file}"),
    ("HEAD", "/dashboard/{file}"),
    ("GET", "/v1/me"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events/batch"),
    ("GET", "/v1/events/{id}"),
    ("GET", "/v1/event-types"),
    ("POST", "/v1/endpoints"),
    ("GET", "/v1/endpoints"),
    ("GET", "/v1/endpoints/{id}"),
    ("PATCH", "/v1/endpoints/{id}"),
    ("DELETE", "/v1/endpoints/{id}"),
    ("GET", "/v1/endpoints/{id}/secret"),
    ("POST", "/v1/endpoints/{id}/rotate-secret"),
    ("POST", "/v1/endpoints/{id}/test"),
    ("POST", "/v1/endpoints/{id}/recover"),
    ("GET", "/v1/endpoints/{id}/stats"),
    ("GET", "/v1/deliveries"),
    ("GET", "/v1/deliveries/{id}"),
    ("POST", "/v1/deliveries/{id}/retry"),
    ("POST", "/v1/workspaces/{workspace}/tokens"),
    ("GET", "/v1/workspaces/{workspace}/tokens"),
    ("DELETE", "/v1/workspaces/{workspace}/tokens/{id}"),
    ("POST", "/v1/workspaces/{workspace}/portal-links"),
    ("POST", "/v1/portal/session"),
];

/// The methods a path answers to; empty when no route has that shape. A route naming a
/// segment literally wins over one with `{…}` there (`/v1/events/batch` is not an event id).
pub(crate) fn allowed_methods(parts: &[String]) -> Vec<&'static str> {
    // ROUTES split into segments once, not on every request.
    static SPLIT: std::sync::OnceLock<Vec<(&str, Vec<&str>)>> = std::sync::OnceLock::new();
    let routes = SPLIT.get_or_init(|| {
        ROUTES
            .iter()
            .map(|(method, pattern)| {
                (
                    *method,
                    pattern.split('/').filter(|p| !p.is_empty()).collect(),
                )
            })
            .collect()
    });
    let mut best = 0;
    let mut methods = Vec::new();
    for (method, pattern) in routes {
        let matches = pattern.len() == parts.len()
            && pattern
                .iter()
                .zip(parts)
                .all(|(want, got)| want.starts_with('{') || want == got);
        if !matches {
            continue;
        }
        let literal = pattern.iter().filter(|p| !p.starts_with('{')).count() + 1;
        if literal > best {
            best = literal;
            methods.clear();
        }
        if literal == best && !methods.contains(method) {
            methods.push(*method);
        }
    }
    methods
}

/// `?a=b&c=d`, percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(text: &str) -> Query {
        Query(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` and the `after` cursor: (page size, seq below which the page starts).
    fn page(&self) -> Result<(usize, i64), Problem> {
        let limit = match self.get("limit") {
            None => PAGE_LIMIT_DEFAULT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => n,
                _ => {
                    return Err(Problem::new(
                        400,
                        "invalid_query",
                        format!("limit must be a whole number from 1 to {PAGE_LIMIT_MAX}"),
                    )
                    .at("limit"));
                }
            },
        };
        let before = match self.get("after") {
            // `?after=` with nothing: the first page, as with no cursor.
            None | Some("") => i64::MAX,
            Some(text) => text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Problem::new(
                    400,
                    "invalid_query",
                    "after must be the `next` cursor of a previous page",
                )
                .at("after")
            })?,
        };
        Ok((limit, before))
    }
}

fn percent_decode(text: &str) -> String {
    let hex_value = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) =
                (hex_value(bytes[index + 1]), hex_value(bytes[index + 2]))
        {
            out.push(high * 16 + low);
            index += 3;
            continue;
        }
        out.push(if byte == b'+' { b' ' } else { byte });
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A page of rows as `{"data": [...], "next": cursor|null}`; `rows` holds up to `limit + 1`.
/// It also stops before passing `pages::PAGE_BYTES_MAX` (rows here are small and bounded, so
/// this rarely cuts; events have their own, see `pages.rs`).
fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    seq: impl Fn(&T) -> i64,
    to_json: impl Fn(&T) -> Value,
) -> Value {
    let mut more = rows.len() > limit;
    rows.truncate(limit);
    let mut data = Vec::with_capacity(rows.len());
    let mut bytes = 0;
    for row in &rows {
        let value = to_json(row);
        bytes += value.to_string().len() + 1;
        if !data.is_empty() && bytes > crate::pages::PAGE_BYTES_MAX {
            more = true;
            break;
        }
        data.push(value);
    }
    let next = more
        .then(|| {
            rows.get(data.len() - 1)
                .map(|row| Value::from(seq(row).to_string()))
        })
        .flatten();
    json!({ "data": data, "next": next })
}

fn stored_json(stored: &StoredEvent) -> Value {
    json!({
        "id": stored.id,
        "type": stored.event_type,
        "created_at": format_rfc3339_seconds(stored.created_at_ms),
        "workspace_id": stored.workspace_id,
        "deliveries": stored.deliveries.iter().map(|(id, endpoint_id)| json!({"id": id, "endpoint_id": endpoint_id})).collect::<Vec<_>>(),
    })
}

fn event_json(event: &store::EventRow) -> Value {
    let data = serde_json::from_slice::<Value>(&event.body)
        .ok()
        .and_then(|mut body| body.get_mut("data").map(Value::take));
    json!({
        "id": event.id,
        "type": event.event_type,
        "created_at": format_rfc3339_seconds(event.created_at_ms),
        "workspace_id": event.workspace_id,
        "test": event.test,
        "subject": event.subject,
        "data": data,
    })
}

/// A workspace token as listed: never the token itself.
fn token_json(token: &store::TokenRow) -> Value {
    json!({
        "id": token.id,
        "workspace_id": token.workspace_id,
        "description": token.description,
        "created_at": format_rfc3339_millis(token.created_at_ms),
        "last_used_at": token.last_used_at_ms.map(format_rfc3339_millis),
        "expires_at": token.expires_at_ms.map(format_rfc3339_millis),
    })
}

/// An endpoint as the API shows it after creation: never the secret, header values redacted
/// (they often carry the receiver's credentials).
fn endpoint_json(endpoint: &EndpointRow, window: usize) -> Value {
    let headers: serde_json::Map<String, Value> = endpoint
        .headers
        .iter()
        .map(|(name, _)| (name.clone(), Value::from("[redacted]")))
        .collect();
    json!({
        "id": endpoint.id,
        "workspace_id": endpoint.workspace_id,
        "url": endpoint.url,
        "events": endpoint.event_types,
        "description": endpoint.description,
        "headers": headers,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since_ms.map(format_rfc3339_millis),
        "last_success_at": endpoint.last_success_at_ms.map(format_rfc3339_millis),
        "previous_secret_expires_at": endpoint.previous_secret_expires_at_ms.map(format_rfc3339_millis),
        "rate_limit": endpoint.rate_limit,
        "ordering": endpoint.ordering,
        "window": window,
        "created_at": format_rfc3339_millis(endpoint.created_at_ms),
        "updated_at": format_rfc3339_millis(endpoint.updated_at_ms),
    })
}

fn delivery_json(delivery: &DeliveryRow) -> Value {
    json!({
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "workspace_id": delivery.workspace_id,
        "status": delivery.status,
        "test": delivery.test,
        "attempts_made": delivery.attempts_made,
        "next_attempt_at": delivery.next_attempt_at_ms.map(time::format_rfc3339_millis),
        "created_at": format_rfc3339_millis(delivery.created_at_ms),
        "updated_at": format_rfc3339_millis(delivery.updated_at_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_junk() {
        assert_eq!(
            percent_decode("2024-01-15T10%3A30%3A00Z"),
            "2024-01-15T10:30:00Z"
        );
        assert_eq!(percent_decode("a+b%20c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn routes_know_their_methods() {
        let parts = |path: &str| segments(path);
        assert_eq!(
            allowed_methods(&parts("/v1/endpoints/ep_1")),
            vec!["GET", "PATCH", "DELETE"]
        );
        assert!(allowed_methods(&parts("/v1/nothing")).is_empty());
        assert_eq!(
            allowed_methods(&parts("/v1/deliveries/dlv_1/retry")),
            vec!["POST"]
        );
    }
}
