//! The route table's answers before any handler runs, on the real binary: 404 for a path no
//! route has, 401 before 405, `Allow` on 405, the admin-only routes, the public ones. The
//! statuses were read from the binary before the routes became one table.

mod util;

use util::{ADMIN_TOKEN, Service};

/// Status and `Allow` of one request.
fn call(service: &Service, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", service.base));
    if let Some(token) = token {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    // An empty body with `Content-Length: 0` where one may go, as curl sends.
    let response = if matches!(method, "GET" | "HEAD") {
        util::client().run(builder.body(()).unwrap())
    } else {
        util::client().run(builder.body(Vec::new()).unwrap())
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let allow = response
        .headers()
        .get("allow")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    (response.status().as_u16(), allow)
}

#[test]
fn the_route_table_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let (status, workspace_token) = service.post(
        "/v1/workspaces/acme/tokens",
        &serde_json::json!({"description": "routes test"}),
    );
    assert_eq!(status, 201, "{workspace_token}");
    let workspace_token = workspace_token["token"].as_str().unwrap().to_string();
    let admin = Some(ADMIN_TOKEN);
    // (method, path, token, status, Allow)
    let table: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("DELETE", "/healthz", None, 401, ""),
        ("DELETE", "/healthz", admin, 405, "GET"),
        ("HEAD", "/metrics", None, 401, ""),
        ("HEAD", "/metrics", admin, 405, "GET"),
        ("POST", "/", None, 405, "GET, HEAD"),
        ("GET", "/dashboard/a/b", None, 404, ""),
        ("GET", "/nope", None, 404, ""),
        ("GET", "/nope", admin, 404, ""),
        ("PUT", "/v1/events", None, 401, ""),
        ("PUT", "/v1/events", admin, 405, "POST, GET"),
        (
            "PUT",
            "/v1/endpoints/ep_1",
            admin,
            405,
            "GET, PATCH, DELETE",
        ),
        ("GET", "/v1/me", None, 401, ""),
        ("GET", "/v1/me", admin, 200, ""),
        ("GET", "/healthz", None, 200, ""),
        ("GET", "/metrics", None, 200, ""),
        ("GET", "/openapi.json", None, 200, ""),
        ("POST", "/v1/portal/session", None, 400, ""),
        (
            "GET",
            "/v1/workspaces/acme/tokens",
            Some(&workspace_token),
            403,
            "",
        ),
        ("GET", "/v1/workspaces/acme/tokens", admin, 200, ""),
        ("GET", "/v1/endpoints/ep_nothing", admin, 404, ""),
    ];
    for (method, path, token, status, allow) in table {
        assert_eq!(
            call(&service, method, path, *token),
            (*status, allow.to_string()),
            "{method} {path} token={}",
            token.is_some()
        );
    }
}
