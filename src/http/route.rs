//! The route table's types and its matching. A `Route` is a method, a path pattern (`{name}`
//! stands for one segment), what answers it with its auth rule (`Handler`), and its OpenAPI
//! operation (`Doc`). The table itself is `routes::ROUTES`; this file imports no handler.

use std::io::Cursor;

use serde_json::Value;
use tiny_http::{Request, Response};

use super::Api;
use super::auth::Access;
use super::problem::{Answer, BytesAnswer, Problem};
use super::request::{Query, percent_decode, read_body};

/// One route: the only description of it (router, 404/405/`Allow`, edge and OpenAPI read it).
pub(crate) struct Route {
    /// `GET`, `POST`, … as sent.
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) handler: Handler,
    /// Its OpenAPI operation; a function because a `Value` cannot be made in a constant.
    pub(crate) doc: fn() -> Doc,
}

/// What answers a route, and so its auth rule: the variant is the rule.
pub(crate) enum Handler {
    /// No token; answered before the dashboard and the router (`/metrics`, `/openapi.json`).
    Raw(fn(&Api) -> Response<Cursor<Vec<u8>>>),
    /// The dashboard's files, no token: `dashboard::serve` answers them before the router.
    Dashboard,
    /// No token, JSON (`/healthz`, `POST /v1/portal/session`).
    Public(fn(&Api, &mut Call<'_>) -> Answer),
    /// The admin or a workspace token; the handler narrows by `Access`.
    Token(fn(&Api, &Access, &mut Call<'_>) -> Answer),
    /// As `Token`, answered as bytes already (`GET /v1/events`, see `pages.rs`).
    TokenBytes(fn(&Api, &Access, &mut Call<'_>) -> BytesAnswer),
    /// The admin token only: `Access::check_admin` runs before the handler reads the body.
    Admin(fn(&Api, &mut Call<'_>) -> Answer),
}

impl Handler {
    /// Whether the route needs `Authorization: Bearer <token>`.
    pub(crate) fn needs_token(&self) -> bool {
        matches!(
            self,
            Handler::Token(_) | Handler::TokenBytes(_) | Handler::Admin(_)
        )
    }
}

/// A route's OpenAPI operation without method and path (those are the route's).
pub(crate) struct Doc {
    pub(crate) summary: &'static str,
    pub(crate) body: Option<Value>,
    pub(crate) query: Vec<Value>,
    pub(crate) responses: Vec<(&'static str, Value)>,
}

/// One request as a handler sees it: the path's `{name}` values, the query, the body on demand.
pub(crate) struct Call<'r> {
    pub(crate) request: &'r mut Request,
    pub(crate) params: Vec<(&'static str, String)>,
    pub(crate) query: Query,
}

impl Call<'_> {
    /// The path segment the route's pattern names `{name}`; empty if it names none.
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The body, up to `limit` bytes (more is 413), as UTF-8.
    pub(crate) fn body(&mut self, limit: usize) -> Result<String, Problem> {
        read_body(self.request, limit)
    }
}

/// What a method and path come to.
pub(crate) enum Resolved {
    Found(&'static Route, Vec<(&'static str, String)>),
    /// The path has routes, none for this method: the methods it has (for `Allow`).
    WrongMethod(Vec<&'static str>),
    NoRoute,
}

/// The path's segments, percent-decoded (the query, if any, is left out).
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// The route for `method` and `url`. A route naming a segment literally wins over one with
/// `{…}` there (`/v1/events/batch` is not an event id).
pub(crate) fn resolve(routes: &'static [Route], method: &str, url: &str) -> Resolved {
    let parts = segments(url);
    let mut best = 0;
    let mut found: Vec<&'static Route> = Vec::new();
    for route in routes {
        let pattern = route.path.split('/').filter(|p| !p.is_empty());
        let matches = pattern.clone().count() == parts.len()
            && pattern
                .clone()
                .zip(&parts)
                .all(|(want, got)| want.starts_with('{') || want == got);
        if !matches {
            continue;
        }
        let literal = pattern.filter(|p| !p.starts_with('{')).count() + 1;
        if literal > best {
            best = literal;
            found.clear();
        }
        if literal == best {
            found.push(route);
        }
    }
    if found.is_empty() {
        return Resolved::NoRoute;
    }
    match found.iter().find(|route| route.method == method) {
        Some(route) => {
            let params = route
                .path
                .split('/')
                .filter(|p| !p.is_empty())
                .zip(parts)
                .filter_map(|(want, got)| Some((want.strip_prefix('{')?.strip_suffix('}')?, got)))
                .collect();
            Resolved::Found(route, params)
        }
        None => {
            let mut methods: Vec<&'static str> = Vec::new();
            for route in found {
                if !methods.contains(&route.method) {
                    methods.push(route.method);
                }
            }
            Resolved::WrongMethod(methods)
        }
    }
}

/// The methods `url` answers to; empty when no route has its shape.
pub(crate) fn allowed_methods(routes: &'static [Route], url: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = Vec::new();
    // Every method of the best-matching routes: resolve with a method no route has.
    match resolve(routes, "", url) {
        Resolved::WrongMethod(found) => methods = found,
        Resolved::Found(..) | Resolved::NoRoute => {}
    }
    methods.dedup();
    methods
}

#[cfg(test)]
mod tests {
    use super::super::routes::ROUTES;
    use super::*;

    #[test]
    fn routes_know_their_methods() {
        assert_eq!(
            allowed_methods(ROUTES, "/v1/endpoints/ep_1"),
            vec!["GET", "PATCH", "DELETE"]
        );
        assert!(allowed_methods(ROUTES, "/v1/nothing").is_empty());
        assert_eq!(
            allowed_methods(ROUTES, "/v1/deliveries/dlv_1/retry"),
            vec!["POST"]
        );
    }

    #[test]
    fn a_literal_segment_wins_and_names_are_taken_from_the_path() {
        let Resolved::Found(route, params) = resolve(ROUTES, "POST", "/v1/events/batch") else {
            panic!("POST /v1/events/batch has a route")
        };
        assert_eq!(route.path, "/v1/events/batch");
        assert!(params.is_empty());
        let Resolved::Found(route, params) = resolve(
            ROUTES,
            "DELETE",
            "/v1/workspaces/acme%20co/tokens/tok_1?x=1",
        ) else {
            panic!("DELETE of a token has a route")
        };
        assert_eq!(route.path, "/v1/workspaces/{workspace}/tokens/{id}");
        assert_eq!(
            params,
            vec![
                ("workspace", "acme co".to_string()),
                ("id", "tok_1".to_string())
            ]
        );
        assert!(matches!(resolve(ROUTES, "GET", "/nope"), Resolved::NoRoute));
        assert!(matches!(
            resolve(ROUTES, "PUT", "/v1/events"),
            Resolved::WrongMethod(methods) if methods == ["POST", "GET"]
        ));
    }

    #[test]
    fn only_the_public_routes_go_without_a_token() {
        let public: Vec<(&str, &str)> = ROUTES
            .iter()
            .filter(|route| !route.handler.needs_token())
            .map(|route| (route.method, route.path))
            .collect();
        assert_eq!(
            public,
            [
                ("GET", "/healthz"),
                ("GET", "/metrics"),
                ("GET", "/openapi.json"),
                ("GET", "/"),
                ("HEAD", "/"),
                ("GET", "/dashboard/{file}"),
                ("HEAD", "/dashboard/{file}"),
                ("POST", "/v1/portal/session"),
            ]
        );
    }

    #[test]
    fn every_route_is_listed_once() {
        for (index, route) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..index]
                    .iter()
                    .any(|other| other.method == route.method && other.path == route.path),
                "{} {} twice",
                route.method,
                route.path
            );
        }
    }
}
