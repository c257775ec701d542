//! Workspace tokens: one workspace's endpoints, events and deliveries, nothing else; no token
//! minting; listed without the secret part, stored hashed, revoked at once.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::{ADMIN_TOKEN, Backend, Receiver, Service, ids, loopback_flags};

const WAIT: Duration = Duration::from_secs(20);

fn as_token(
    service: &Service,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    service.request(
        method,
        path,
        Some(token),
        body.as_deref().map(str::as_bytes),
    )
}

fn a_workspace_token_sees_and_changes_only_its_workspace(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms"));
    let (theirs, _) =
        service.create_endpoint(&format!("{}/globex", receiver.url), &["*"], Some("globex"));
    let their_event = service.send_sample("project.created", json!({"workspace_id": "globex"}));
    let their_delivery = service.first_delivery(&their_event, "succeeded", WAIT)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, created) = service.post(
        "/v1/workspaces/acme/tokens",
        &json!({"description": "acme portal"}),
    );
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let token_id = created["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("cew_ws_"), "{created}");
    let (_, me) = as_token(&service, &token, "GET", "/v1/me", None);
    assert_eq!(me, json!({"role": "workspace", "workspace_id": "acme"}));
    // The scheme name is case-insensitive.
    let lower = util::client()
        .get(format!("{}/v1/me", service.base))
        .header("Authorization", format!("bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(lower.status(), 200);

    // Its own endpoint: created without naming the workspace, which is its own.
    let (status, mine) = as_token(
        &service,
        &token,
        "POST",
        "/v1/endpoints",
        Some(json!({"url": format!("{}/acme", receiver.url), "events": ["*"]})),
    );
    assert_eq!(
        (status, mine["workspace_id"].as_str()),
        (201, Some("acme")),
        "{mine}"
    );
    let mine = mine["id"].as_str().unwrap().to_string();
    let (status, event) = as_token(
        &service,
        &token,
        "POST",
        "/v1/events",
        Some(
            json!({"type": "project.created", "data": clockeye_webhooks::catalog::sample("project.created").unwrap()}),
        ),
    );
    assert_eq!(
        (status, event["workspace_id"].as_str()),
        (202, Some("acme")),
        "{event}"
    );
    let my_delivery = event["deliveries"][0]["id"].as_str().unwrap().to_string();
    service.wait_for_delivery_status(&my_delivery, "succeeded", WAIT);

    // Lists hold only acme's objects.
    let (_, endpoints) = as_token(&service, &token, "GET", "/v1/endpoints", None);
    assert_eq!(ids(&endpoints), vec![mine.clone()]);
    let (_, events) = as_token(&service, &token, "GET", "/v1/events", None);
    assert_eq!(
        ids(&events),
        vec![event["id"].as_str().unwrap().to_string()]
    );
    let (_, deliveries) = as_token(&service, &token, "GET", "/v1/deliveries", None);
    assert_eq!(ids(&deliveries), vec![my_delivery.clone()]);

    // Another workspace's objects do not exist for it, and it cannot act there.
    let their_event_id = their_event["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", format!("/v1/endpoints/{theirs}"), None),
        (
            "PATCH",
            format!("/v1/endpoints/{theirs}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/v1/endpoints/{theirs}"), None),
        ("GET", format!("/v1/endpoints/{theirs}/secret"), None),
        (
            "POST",
            format!("/v1/endpoints/{theirs}/rotate-secret"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/endpoints/{theirs}/test"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/endpoints/{theirs}/recover"),
            Some(json!({"since": "2024-01-01T00:00:00Z"})),
        ),
        ("GET", format!("/v1/endpoints/{theirs}/stats"), None),
        ("GET", format!("/v1/events/{their_event_id}"), None),
        ("GET", format!("/v1/deliveries/{their_delivery}"), None),
        (
            "POST",
            format!("/v1/deliveries/{their_delivery}/retry"),
            None,
        ),
    ] {
        let (status, answer) = as_token(&service, &token, method, &path, body);
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    for (method, path, body) in [
        ("GET", "/v1/endpoints?workspace_id=globex", None),
        ("GET", "/v1/deliveries?workspace_id=globex", None),
        (
            "POST",
            "/v1/endpoints",
            Some(json!({"url": receiver.url, "events": ["*"], "workspace_id": "globex"})),
        ),
        (
            "POST",
            "/v1/events",
            Some(json!({"type": "project.created", "workspace_id": "globex",
                                           "data": clockeye_webhooks::catalog::sample("project.created").unwrap()})),
        ),
        ("POST", "/v1/workspaces/acme/tokens", Some(json!({}))),
        ("GET", "/v1/workspaces/acme/tokens", None),
        ("POST", "/v1/workspaces/globex/tokens", Some(json!({}))),
    ] {
        let (status, answer) = as_token(&service, &token, method, path, body);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {answer}"
        );
    }
    // The other workspace is untouched.
    let (_, still) = service.get(&format!("/v1/endpoints/{theirs}"));
    assert_eq!(still["enabled"], true);

    // The admin lists tokens without their secret part; the database holds only a hash.
    let (_, listed) = service.get("/v1/workspaces/acme/tokens");
    assert_eq!(ids(&listed), vec![token_id.clone()]);
    assert_eq!(listed["data"][0]["description"], "acme portal");
    assert!(listed["data"][0]["last_used_at"].is_string(), "{listed}");
    assert!(!listed.to_string().contains(&token), "{listed}");
    let (_, other_list) = service.get("/v1/workspaces/globex/tokens");
    assert!(ids(&other_list).is_empty());
    for (place, bytes) in stored_bytes(backend, dir.path(), &service) {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{place} holds the token in clear"
        );
    }

    // Revoked: refused at once.
    let (status, _) = service.request(
        "DELETE",
        &format!("/v1/workspaces/acme/tokens/{token_id}"),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 204);
    let (status, answer) = as_token(&service, &token, "GET", "/v1/endpoints", None);
    assert_eq!(status, 401, "{answer}");
    let (status, _) = service.request(
        "DELETE",
        &format!("/v1/workspaces/acme/tokens/{token_id}"),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 404);
    let (_, me) = service.get("/v1/me");
    assert_eq!(me, json!({"role": "admin"}));
}
both_backends!(a_workspace_token_sees_and_changes_only_its_workspace);

fn a_portal_link_opens_one_session_once_and_carries_no_token(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms"));
    let (status, link) = service.post("/v1/workspaces/acme/portal-links", &json!({}));
    assert_eq!(status, 201, "{link}");
    let code = link["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("cew_pl_"), "{link}");
    assert_eq!(link["url"], format!("{}/#code={code}", service.base));
    let exchange = |code: &str| {
        let body = json!({ "code": code }).to_string();
        service.request("POST", "/v1/portal/session", None, Some(body.as_bytes()))
    };
    // No token needed to use the code; the answer is a workspace token for acme, for 12 hours.
    let (status, session) = exchange(&code);
    assert_eq!(status, 201, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(session["workspace_id"], "acme");
    assert_eq!(session["description"], "portal session");
    let expires_at =
        clockeye_webhooks::test_support::parse_rfc3339(session["expires_at"].as_str().unwrap())
            .unwrap();
    let hours = (expires_at - clockeye_webhooks::test_support::now_ms()) as f64 / 3_600_000.0;
    assert!((11.9..=12.0).contains(&hours), "{session}");
    let (_, me) = as_token(&service, &token, "GET", "/v1/me", None);
    assert_eq!(me, json!({"role": "workspace", "workspace_id": "acme"}));
    // Once only.
    let (status, again) = exchange(&code);
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (401, Some("invalid_code")),
        "{again}"
    );
    // Listed among acme's tokens with its end; revoking it ends the session.
    let (_, listed) = service.get("/v1/workspaces/acme/tokens");
    assert_eq!(
        listed["data"][0]["expires_at"], session["expires_at"],
        "{listed}"
    );
    // A workspace token cannot make links.
    let (status, _) = as_token(
        &service,
        &token,
        "POST",
        "/v1/workspaces/acme/portal-links",
        Some(json!({})),
    );
    assert_eq!(status, 403);
    // An expired code opens nothing.
    let (_, short) = service.post(
        "/v1/workspaces/acme/portal-links",
        &json!({"expires_in": "1s"}),
    );
    let short_expiry =
        clockeye_webhooks::test_support::parse_rfc3339(short["expires_at"].as_str().unwrap())
            .unwrap();
    util::eventually("the code to expire", Duration::from_secs(5), || {
        (clockeye_webhooks::test_support::now_ms() > short_expiry)
            .then_some(())
            .ok_or_else(String::new)
    });
    let (status, _) = exchange(short["code"].as_str().unwrap());
    assert_eq!(status, 401);
    // Bad input names the field.
    for (body, field) in [
        (json!({"expires_in": "2d"}), "expires_in"),
        (json!({"expires_in": "0s"}), "expires_in"),
        (json!({"x": 1}), "x"),
    ] {
        let (status, error) = service.post("/v1/workspaces/acme/portal-links", &body);
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{error}"
        );
    }
    let (status, error) = service.request("POST", "/v1/portal/session", None, Some(b"{}"));
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("code")),
        "{error}"
    );
    // The database holds neither the code nor the session token in clear.
    let stored = stored_bytes(backend, dir.path(), &service);
    for (place, bytes) in &stored {
        for secret in [&code, &token] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{place}"
            );
        }
    }
}
both_backends!(a_portal_link_opens_one_session_once_and_carries_no_token);

/// What the database holds, to search for secrets in clear: the SQLite files (never empty),
/// or on Postgres the text of every row of the tables that keep hashes.
fn stored_bytes(
    backend: Backend,
    dir: &std::path::Path,
    service: &Service,
) -> Vec<(String, Vec<u8>)> {
    let stored: Vec<(String, Vec<u8>)> = match backend {
        Backend::Sqlite => ["webhooks.db", "webhooks.db-wal"]
            .iter()
            .map(|file| {
                let bytes = std::fs::read(dir.join(file)).unwrap();
                assert!(!bytes.is_empty(), "{file} is empty");
                (file.to_string(), bytes)
            })
            .collect(),
        Backend::Postgres => ["tokens", "portal_codes", "meta"]
            .iter()
            .map(|table| {
                let rows = util::pg::psql(
                    &service.db_arg,
                    &format!("SELECT string_agg(t::text, ' ') FROM {table} t"),
                );
                (table.to_string(), rows.into_bytes())
            })
            .collect(),
    };
    assert!(
        stored.iter().any(|(_, bytes)| !bytes.is_empty()),
        "nothing read back"
    );
    stored
}
