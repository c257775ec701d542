//! Every route, described once: the router (`route::resolve`), 404/405 and `Allow`, the edge's
//! token check and `/openapi.json` all read this table. Its order is the document's.

use std::io::Cursor;
use std::sync::OnceLock;

use tiny_http::{Header, Response};

use super::Api;
use super::openapi::{self, operations as ops};
use super::route::Handler::{Admin, Dashboard, Public, Raw, Token, TokenBytes};
use super::route::Route;
use super::{deliveries, endpoint_actions, endpoints, events, system, workspaces};

pub(crate) static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healthz",
        handler: Public(system::healthz),
        doc: ops::get_healthz,
    },
    Route {
        method: "GET",
        path: "/metrics",
        handler: Raw(system::metrics_page),
        doc: ops::get_metrics,
    },
    Route {
        method: "GET",
        path: "/openapi.json",
        handler: Raw(openapi_json),
        doc: ops::get_openapi_json,
    },
    Route {
        method: "GET",
        path: "/",
        handler: Dashboard,
        doc: ops::get_root,
    },
    Route {
        method: "HEAD",
        path: "/",
        handler: Dashboard,
        doc: ops::head_root,
    },
    Route {
        method: "GET",
        path: "/dashboard/{file}",
        handler: Dashboard,
        doc: ops::get_dashboard_file,
    },
    Route {
        method: "HEAD",
        path: "/dashboard/{file}",
        handler: Dashboard,
        doc: ops::head_dashboard_file,
    },
    Route {
        method: "GET",
        path: "/v1/me",
        handler: Token(system::me),
        doc: ops::get_me,
    },
    Route {
        method: "POST",
        path: "/v1/events",
        handler: Token(events::create),
        doc: ops::post_events,
    },
    Route {
        method: "POST",
        path: "/v1/events/batch",
        handler: Token(events::create_batch),
        doc: ops::post_events_batch,
    },
    Route {
        method: "GET",
        path: "/v1/events",
        handler: TokenBytes(events::list),
        doc: ops::get_events,
    },
    Route {
        method: "GET",
        path: "/v1/events/{id}",
        handler: Token(events::get),
        doc: ops::get_events_id,
    },
    Route {
        method: "GET",
        path: "/v1/event-types",
        handler: Token(system::event_types),
        doc: ops::get_event_types,
    },
    Route {
        method: "POST",
        path: "/v1/endpoints",
        handler: Token(endpoints::create),
        doc: ops::post_endpoints,
    },
    Route {
        method: "GET",
        path: "/v1/endpoints",
        handler: Token(endpoints::list),
        doc: ops::get_endpoints,
    },
    Route {
        method: "GET",
        path: "/v1/endpoints/{id}",
        handler: Token(endpoints::get),
        doc: ops::get_endpoints_id,
    },
    Route {
        method: "PATCH",
        path: "/v1/endpoints/{id}",
        handler: Token(endpoints::update),
        doc: ops::patch_endpoints_id,
    },
    Route {
        method: "DELETE",
        path: "/v1/endpoints/{id}",
        handler: Token(endpoints::delete),
        doc: ops::delete_endpoints_id,
    },
    Route {
        method: "GET",
        path: "/v1/endpoints/{id}/secret",
        handler: Token(endpoint_actions::secret),
        doc: ops::get_endpoints_id_secret,
    },
    Route {
        method: "POST",
        path: "/v1/endpoints/{id}/rotate-secret",
        handler: Token(endpoint_actions::rotate),
        doc: ops::post_endpoints_id_rotate_secret,
    },
    Route {
        method: "POST",
        path: "/v1/endpoints/{id}/test",
        handler: Token(endpoint_actions::test),
        doc: ops::post_endpoints_id_test,
    },
    Route {
        method: "POST",
        path: "/v1/endpoints/{id}/recover",
        handler: Token(endpoint_actions::recover),
        doc: ops::post_endpoints_id_recover,
    },
    Route {
        method: "GET",
        path: "/v1/endpoints/{id}/stats",
        handler: Token(endpoint_actions::stats),
        doc: ops::get_endpoints_id_stats,
    },
    Route {
        method: "GET",
        path: "/v1/deliveries",
        handler: Token(deliveries::list),
        doc: ops::get_deliveries,
    },
    Route {
        method: "GET",
        path: "/v1/deliveries/{id}",
        handler: Token(deliveries::get),
        doc: ops::get_deliveries_id,
    },
    Route {
        method: "GET",
        path: "/v1/deliveries/{id}/attempts/{number}/request",
        handler: Token(deliveries::attempt_request),
        doc: ops::get_deliveries_id_attempts_number_request,
    },
    Route {
        method: "POST",
        path: "/v1/deliveries/{id}/retry",
        handler: Token(deliveries::retry),
        doc: ops::post_deliveries_id_retry,
    },
    Route {
        method: "POST",
        path: "/v1/workspaces/{workspace}/tokens",
        handler: Admin(workspaces::create_token),
        doc: ops::post_workspaces_workspace_tokens,
    },
    Route {
        method: "GET",
        path: "/v1/workspaces/{workspace}/tokens",
        handler: Admin(workspaces::list_tokens),
        doc: ops::get_workspaces_workspace_tokens,
    },
    Route {
        method: "DELETE",
        path: "/v1/workspaces/{workspace}/tokens/{id}",
        handler: Admin(workspaces::delete_token),
        doc: ops::delete_workspaces_workspace_tokens_id,
    },
    Route {
        method: "POST",
        path: "/v1/workspaces/{workspace}/portal-links",
        handler: Admin(workspaces::create_portal_link),
        doc: ops::post_workspaces_workspace_portal_links,
    },
    Route {
        method: "POST",
        path: "/v1/portal/session",
        handler: Public(workspaces::portal_session),
        doc: ops::post_portal_session,
    },
];

/// `GET /openapi.json`, built once from `ROUTES`.
fn openapi_json(_: &Api) -> Response<Cursor<Vec<u8>>> {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| openapi::document(ROUTES).to_string());
    Response::from_data(text.clone().into_bytes())
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("valid header"))
}
