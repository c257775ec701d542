//! The API's rooms on Postgres (`store::pg::{read,writes}`), through the real binary on a
//! private test cluster: every route answers as it does on SQLite (tests/routes.rs,
//! tests/operator.rs, tests/tokens.rs show the SQLite side). The NUL refusals run on both.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::{ADMIN_TOKEN, Backend, Receiver, Service, ids, loopback_flags, pg};

fn start_postgres(dir: &std::path::Path) -> Service {
    Service::start_backend(Backend::Postgres, dir, &loopback_flags("100ms"))
}

#[test]
fn endpoints_are_created_listed_paged_changed_rotated_and_deleted_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = start_postgres(dir.path());

    let mut acme = Vec::new();
    for n in 0..3 {
        let (id, secret) =
            service.create_endpoint(&format!("{}/acme{n}", receiver.url), &["*"], Some("acme"));
        assert!(secret.starts_with("whsec_"), "{secret}");
        acme.push(id);
    }
    let (globex, _) = service.create_endpoint(
        &format!("{}/globex", receiver.url),
        &["project.created", "user.invited"],
        Some("globex"),
    );

    // Newest first; the workspace filter; pages of 2 with the cursor.
    let (status, all) = service.get("/v1/endpoints");
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        ids(&all),
        vec![
            globex.clone(),
            acme[2].clone(),
            acme[1].clone(),
            acme[0].clone()
        ]
    );
    let (_, first) = service.get("/v1/endpoints?workspace_id=acme&limit=2");
    assert_eq!(ids(&first), vec![acme[2].clone(), acme[1].clone()]);
    let next = first["next"].as_str().expect("a next cursor").to_string();
    let (_, second) = service.get(&format!(
        "/v1/endpoints?workspace_id=acme&limit=2&after={next}"
    ));
    assert_eq!(ids(&second), vec![acme[0].clone()]);
    assert_eq!(second["next"], Value::Null, "{second}");
    let (_, none) = service.get("/v1/endpoints?workspace_id=initech");
    assert!(ids(&none).is_empty(), "{none}");

    // One endpoint as stored: its fields come back as given.
    let (status, one) = service.get(&format!("/v1/endpoints/{globex}"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["workspace_id"], "globex");
    assert_eq!(one["events"], json!(["project.created", "user.invited"]));
    assert_eq!(one["enabled"], true);
    assert_eq!(one["rate_limit"], Value::Null);
    assert_eq!(one["ordering"], "none");

    // PATCH writes the named fields only; disabling keeps a reason, enabling clears it.
    let (status, patched) = service.patch(
        &format!("/v1/endpoints/{globex}"),
        &json!({"description": "billing", "headers": {"X-Team": "ops"}, "rate_limit": 5,
                "ordering": "subject", "enabled": false}),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "billing");
    // Header values are shown redacted; the row holds them.
    assert_eq!(patched["headers"], json!({"X-Team": "[redacted]"}));
    assert_eq!(
        pg::psql(
            &service.db_arg,
            &format!("SELECT headers FROM endpoints WHERE id = '{globex}'")
        ),
        r#"{"X-Team":"ops"}"#
    );
    assert_eq!(patched["rate_limit"], 5);
    assert_eq!(patched["ordering"], "subject");
    assert_eq!(patched["enabled"], false);
    assert_eq!(
        patched["events"],
        json!(["project.created", "user.invited"])
    );
    let (status, metrics_text) = metrics_text(&service);
    assert_eq!(status, 200, "{metrics_text}");
    assert!(
        metrics_text
            .lines()
            .any(|line| line.starts_with("clockeye_endpoints_disabled") && line.ends_with(" 1")),
        "{metrics_text}"
    );
    let (_, enabled) = service.patch(
        &format!("/v1/endpoints/{globex}"),
        &json!({"enabled": true, "rate_limit": null}),
    );
    assert_eq!(enabled["enabled"], true, "{enabled}");
    assert_eq!(enabled["rate_limit"], Value::Null, "{enabled}");
    assert_eq!(enabled["description"], "billing", "{enabled}");

    // Rotation: the new secret is current, the old one lives through the overlap.
    let (_, before) = service.get(&format!("/v1/endpoints/{globex}/secret"));
    let old = before["secret"].as_str().unwrap().to_string();
    let (status, rotated) = service.post(
        &format!("/v1/endpoints/{globex}/rotate-secret"),
        &json!({"overlap": "1h"}),
    );
    assert_eq!(status, 200, "{rotated}");
    let (_, after) = service.get(&format!("/v1/endpoints/{globex}/secret"));
    let new = after["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(after["previous_secret"], old.as_str(), "{after}");
    assert!(after["previous_secret_expires_at"].is_string(), "{after}");
    let (_, now_gone) = service.post(
        &format!("/v1/endpoints/{globex}/rotate-secret"),
        &json!({"overlap": "0s"}),
    );
    let (_, after) = service.get(&format!("/v1/endpoints/{globex}/secret"));
    assert_eq!(after["previous_secret"], Value::Null, "{now_gone} {after}");

    // Stats and recover on an endpoint with no deliveries yet.
    let (status, stats) = service.get(&format!("/v1/endpoints/{globex}/stats"));
    assert_eq!(status, 200, "{stats}");
    let (status, recovered) = service.post(
        &format!("/v1/endpoints/{globex}/recover"),
        &json!({"since": "2024-01-01T00:00:00Z"}),
    );
    assert_eq!(status, 202, "{recovered}");
    assert_eq!(recovered["requeued"], 0, "{recovered}");
    assert_eq!(recovered["more"], false, "{recovered}");

    // Deleted: gone at once from lookups and lists; a second delete finds nothing.
    let (status, _) = service.request(
        "DELETE",
        &format!("/v1/endpoints/{}", acme[1]),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = service.get(&format!("/v1/endpoints/{}", acme[1]));
    assert_eq!(status, 404);
    let (status, _) = service.request(
        "DELETE",
        &format!("/v1/endpoints/{}", acme[1]),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 404);
    let (_, listed) = service.get("/v1/endpoints?workspace_id=acme");
    assert_eq!(ids(&listed), vec![acme[2].clone(), acme[0].clone()]);

    // Nothing delivered yet: events and deliveries lists are empty, lookups 404.
    let (status, events) = service.get("/v1/events?type=project.created");
    assert_eq!((status, ids(&events).len()), (200, 0), "{events}");
    let (status, deliveries) = service.get(&format!("/v1/deliveries?endpoint_id={globex}"));
    assert_eq!((status, ids(&deliveries).len()), (200, 0), "{deliveries}");
    for path in ["/v1/events/evt_missing", "/v1/deliveries/dlv_missing"] {
        let (status, answer) = service.get(path);
        assert_eq!(status, 404, "{path}: {answer}");
    }
    let (status, _) = service.post("/v1/deliveries/dlv_missing/retry", &json!({}));
    assert_eq!(status, 404);

    let (status, health) = service.request("GET", "/healthz", None, None);
    assert_eq!(status, 200, "{health}");
    // The routes that read no table answer as well.
    let (status, _) = service.request("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    let (status, types) = service.get("/v1/event-types");
    assert_eq!(status, 200, "{types}");
}

fn metrics_text(service: &Service) -> (u16, String) {
    let mut response = util::client()
        .get(format!("{}/metrics", service.base))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

#[test]
fn tokens_and_portal_codes_work_and_are_kept_hashed_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_postgres(dir.path());
    let (status, created) = service.post(
        "/v1/workspaces/acme/tokens",
        &json!({"description": "acme portal"}),
    );
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let token_id = created["id"].as_str().unwrap().to_string();
    let (_, me) = service.request("GET", "/v1/me", Some(&token), None);
    assert_eq!(me, json!({"role": "workspace", "workspace_id": "acme"}));
    let (_, second) = service.post("/v1/workspaces/acme/tokens", &json!({}));
    let second_id = second["id"].as_str().unwrap().to_string();
    let (_, listed) = service.get("/v1/workspaces/acme/tokens");
    assert_eq!(ids(&listed), vec![second_id.clone(), token_id.clone()]);
    assert!(listed["data"][1]["last_used_at"].is_string(), "{listed}");
    let (_, paged) = service.get("/v1/workspaces/acme/tokens?limit=1");
    assert_eq!(ids(&paged), vec![second_id.clone()]);
    let (_, rest) = service.get(&format!(
        "/v1/workspaces/acme/tokens?limit=1&after={}",
        paged["next"].as_str().expect("a next cursor")
    ));
    assert_eq!(ids(&rest), vec![token_id.clone()]);

    let (status, link) = service.post("/v1/workspaces/acme/portal-links", &json!({}));
    assert_eq!(status, 201, "{link}");
    let code = link["code"].as_str().unwrap().to_string();
    let exchange = |code: &str| {
        let body = json!({ "code": code }).to_string();
        service.request("POST", "/v1/portal/session", None, Some(body.as_bytes()))
    };
    let (status, session) = exchange(&code);
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["workspace_id"], "acme");
    let session_token = session["token"].as_str().unwrap().to_string();
    let (status, again) = exchange(&code);
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (401, Some("invalid_code"))
    );

    // Only hashes are stored.
    let stored = pg::psql(
        &service.db_arg,
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM tokens) t",
    ) + &pg::psql(
        &service.db_arg,
        "SELECT string_agg(m::text, ' ') FROM meta m",
    );
    for secret in [&token, &code, &session_token] {
        assert!(!stored.contains(secret.as_str()), "{stored}");
    }

    // Revoked: refused at once; revoking again finds nothing.
    let path = format!("/v1/workspaces/acme/tokens/{token_id}");
    let (status, _) = service.request("DELETE", &path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 204);
    let (status, _) = service.request("GET", "/v1/me", Some(&token), None);
    assert_eq!(status, 401);
    let (status, _) = service.request("DELETE", &path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 404);
}

#[test]
fn two_instances_starting_together_on_an_empty_database_keep_one_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = pg::database();
    let start = |name: &str| {
        let out = dir.path().join(format!("{name}.out"));
        let stdout = std::fs::File::create(&out).unwrap();
        let child = std::process::Command::new(util::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &url])
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.err"))).unwrap())
            .spawn()
            .unwrap();
        (child, out)
    };
    let mut started = vec![start("a"), start("b"), start("c")];
    let banners: Vec<String> = started
        .iter()
        .map(|(_, out)| {
            util::eventually("the banner", Duration::from_secs(30), || {
                let text = std::fs::read_to_string(out).map_err(|e| e.to_string())?;
                if text.lines().count() >= 2 {
                    Ok(text)
                } else {
                    Err(text)
                }
            })
        })
        .collect();
    let shown: Vec<&str> = banners
        .iter()
        .filter_map(|banner| {
            banner
                .lines()
                .find_map(|line| line.strip_prefix("admin token: cew_admin"))
        })
        .collect();
    let hashes = pg::psql(
        &url,
        "SELECT value FROM meta WHERE key = 'admin_token_sha256'",
    );
    assert_eq!(hashes.lines().count(), 1, "{hashes}");
    assert_eq!(
        shown.len(),
        1,
        "one instance shows a new token: {banners:?}"
    );
    // The token shown is the one kept: every instance accepts it.
    let token = format!("cew_admin{}", shown[0]);
    for banner in &banners {
        let base = banner
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("listening on "))
            .unwrap_or_else(|| panic!("{banner}"));
        let mut response = util::client()
            .get(format!("{base}/v1/me"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{base}: {body}");
    }
    for (child, _) in &mut started {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The loser of the race never shows a token: an instance whose write meets a hash another
/// stored first (held uncommitted here, then committed) keeps that hash and prints no token.
/// (With a read-then-overwrite it would have replaced the hash and shown its own token.)
#[test]
fn an_instance_that_finds_a_hash_stored_meanwhile_keeps_it_and_shows_no_token() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let url = pg::database();
    // The schema first (a given --admin-token stores no hash).
    drop(Service::start_db(dir.path(), &url, &[]));
    let mut holder = std::process::Command::new(pg::cluster().bin.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut holder_in = holder.stdin.take().unwrap();
    writeln!(
        holder_in,
        "BEGIN; INSERT INTO meta (key, value) VALUES ('admin_token_sha256', 'first');"
    )
    .unwrap();
    holder_in.flush().unwrap();
    util::eventually("the held insert", Duration::from_secs(10), || {
        let held = pg::psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
             AND datname = current_database()",
        );
        (held == "1").then_some(()).ok_or(held)
    });
    let out = dir.path().join("late.out");
    let mut late = std::process::Command::new(util::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &url])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.path().join("late.err")).unwrap())
        .spawn()
        .unwrap();
    // It waits on the held row; then the holder commits.
    util::eventually(
        "the instance to wait on the row",
        Duration::from_secs(10),
        || {
            let waiting = pg::psql(
                &url,
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
            );
            (waiting == "1").then_some(()).ok_or(waiting)
        },
    );
    writeln!(holder_in, "COMMIT;").unwrap();
    drop(holder_in);
    assert!(holder.wait().unwrap().success());
    let banner = util::eventually("the banner", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
        if text.lines().count() >= 2 {
            Ok(text)
        } else {
            Err(format!(
                "{text} / stderr: {}",
                std::fs::read_to_string(dir.path().join("late.err")).unwrap_or_default()
            ))
        }
    });
    let _ = late.kill();
    let _ = late.wait();
    assert!(
        banner.contains("admin token: the one shown at first start"),
        "{banner}"
    );
    assert!(!banner.contains("cew_admin"), "{banner}");
    assert_eq!(
        pg::psql(
            &url,
            "SELECT value FROM meta WHERE key = 'admin_token_sha256'"
        ),
        "first"
    );
}

/// A NUL character cannot reach a TEXT column on either backend: descriptions, subjects,
/// path segments and query parameters with one are refused, naming where.
fn nul_is_refused_in_text_fields(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = Service::start_backend(backend, dir.path(), &loopback_flags("100ms"));
    let (status, error) = service.post(
        "/v1/endpoints",
        &json!({"url": receiver.url, "events": ["*"], "description": "a\u{0}b"}),
    );
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("description")),
        "{error}"
    );
    assert!(
        error["error"]["message"].as_str().unwrap().contains("NUL"),
        "{error}"
    );
    let (endpoint, _) = service.create_endpoint(&receiver.url, &["*"], None);
    let (status, error) = service.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"description": "\u{0}"}),
    );
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("description"))
    );
    let (status, error) = service.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"headers": {"X-A": "a\u{0}"}}),
    );
    assert_eq!(status, 422, "{error}");
    let (status, error) = service.post(
        "/v1/workspaces/acme/tokens",
        &json!({"description": "x\u{0}"}),
    );
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("description"))
    );
    let data = clockeye_webhooks::catalog::sample("project.created").unwrap();
    let (status, error) = service.post(
        "/v1/events",
        &json!({"type": "project.created", "subject": "p\u{0}1", "data": data}),
    );
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("subject")),
        "{error}"
    );
    // A NUL in data.id is payload: the event is taken, its default subject has U+FFFD there.
    let mut data = clockeye_webhooks::catalog::sample("project.created").unwrap();
    data["id"] = json!("p\u{0}1");
    let (status, taken) = service.post(
        "/v1/events",
        &json!({"type": "project.created", "id": "nul-in-data", "data": data}),
    );
    assert_eq!(status, 202, "{taken}");
    let (status, event) = service.get("/v1/events/nul-in-data");
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["subject"], "project:p\u{FFFD}1", "{event}");
    assert_eq!(event["data"]["id"], "p\u{0}1", "{event}");
    for path in [
        "/v1/endpoints/ep_%00",
        "/v1/events/evt%00",
        "/v1/deliveries/dlv_%00",
        "/v1/workspaces/ac%00me/tokens",
    ] {
        let (status, error) = service.get(path);
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("invalid_path")),
            "{path}: {error}"
        );
    }
    for path in [
        "/v1/events?type=a%00",
        "/v1/deliveries?status=pending%00",
        "/v1/endpoints?workspace_id=%00",
    ] {
        let (status, error) = service.get(path);
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{path}: {error}"
        );
    }
    // The service is still fine, and nothing was stored.
    let (_, endpoints) = service.get("/v1/endpoints");
    assert_eq!(ids(&endpoints), vec![endpoint]);
    let (_, tokens) = service.get("/v1/workspaces/acme/tokens");
    assert!(ids(&tokens).is_empty());
}
both_backends!(nul_is_refused_in_text_fields);

/// Events, deliveries and attempts written straight into the database (rows as the scheduler
/// writes them), then read, filtered, paged, retried and recovered through the API.
#[test]
fn events_and_deliveries_are_read_filtered_paged_retried_and_recovered_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = start_postgres(dir.path());
    let (acme, _) =
        service.create_endpoint(&format!("{}/acme", receiver.url), &["*"], Some("acme"));
    let (globex, _) =
        service.create_endpoint(&format!("{}/globex", receiver.url), &["*"], Some("globex"));
    let now = clockeye_webhooks::test_support::now_ms();
    let body = |id: &str, event_type: &str| {
        format!(
            r#"convert_to('{{"id":"{id}","type":"{event_type}","created_at":"2026-01-01T00:00:00Z","data":{{"id":"p1"}}}}', 'UTF8')"#
        )
    };
    let sql = format!(
        "INSERT INTO events (id, workspace_id, type, created_at_ms, body, test, subject) VALUES
           ('evt_a1', 'acme', 'project.created', {a1}, {b_a1}, 0, 'project:p1'),
           ('evt_a2', 'acme', 'user.invited', {a2}, {b_a2}, 1, NULL),
           ('evt_g1', 'globex', 'project.created', {g1}, {b_g1}, 0, NULL);
         INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, created_at_ms, updated_at_ms)
           SELECT 'dlv_' || substr(ev.id, 5), ev.seq, e.seq, CASE WHEN ev.id = 'evt_a1' THEN 'failed' ELSE 'succeeded' END,
                  CASE WHEN ev.id = 'evt_a1' THEN 2 ELSE 1 END, ev.created_at_ms, ev.created_at_ms
           FROM events ev JOIN endpoints e ON e.workspace_id = ev.workspace_id ORDER BY ev.seq;
         INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code, error_class, response_excerpt)
           SELECT d.seq, n, {a1} + n, 7, 500, 'http_status', 'oops ' || n
           FROM deliveries d, generate_series(1, 2) n WHERE d.id = 'dlv_a1';",
        a1 = now - 3000,
        a2 = now - 2000,
        g1 = now - 1000,
        b_a1 = body("evt_a1", "project.created"),
        b_a2 = body("evt_a2", "user.invited"),
        b_g1 = body("evt_g1", "project.created"),
    );
    pg::psql(&service.db_arg, &sql);

    // Events: newest first, by workspace, by type, since, and in pages.
    for (query, want) in [
        ("", vec!["evt_g1", "evt_a2", "evt_a1"]),
        ("?workspace_id=acme", vec!["evt_a2", "evt_a1"]),
        ("?type=project.created", vec!["evt_g1", "evt_a1"]),
        ("?workspace_id=globex&type=user.invited", vec![]),
    ] {
        let (status, listed) = service.get(&format!("/v1/events{query}"));
        assert_eq!(
            (status, ids(&listed)),
            (200, want.iter().map(|s| s.to_string()).collect()),
            "{query}: {listed}"
        );
    }
    // evt_a2's time, as the API writes it (its delivery was made at the same time).
    let (_, a2) = service.get("/v1/events/evt_a2");
    let since = a2["created_at"].as_str().expect("created_at").to_string();
    let (_, recent) = service.get(&format!("/v1/events?since={since}"));
    assert_eq!(ids(&recent), vec!["evt_g1", "evt_a2"], "{recent}");
    let (_, page) = service.get("/v1/events?limit=2");
    assert_eq!(ids(&page), vec!["evt_g1", "evt_a2"]);
    let (_, rest) = service.get(&format!(
        "/v1/events?limit=2&after={}",
        page["next"].as_str().expect("a next cursor")
    ));
    assert_eq!(ids(&rest), vec!["evt_a1"]);
    assert_eq!(rest["next"], Value::Null);
    let (status, event) = service.get("/v1/events/evt_a2");
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["test"], true);
    assert_eq!(event["type"], "user.invited");
    assert_eq!(ids(&json!({"data": event["deliveries"]})), vec!["dlv_a2"]);

    // Deliveries: each filter, and pages.
    for (query, want) in [
        (String::new(), vec!["dlv_g1", "dlv_a2", "dlv_a1"]),
        ("?status=failed".into(), vec!["dlv_a1"]),
        (format!("?endpoint_id={acme}"), vec!["dlv_a2", "dlv_a1"]),
        (format!("?endpoint_id={globex}&status=failed"), vec![]),
        ("?event_id=evt_g1".into(), vec!["dlv_g1"]),
        ("?workspace_id=globex".into(), vec!["dlv_g1"]),
        ("?type=project.created".into(), vec!["dlv_g1", "dlv_a1"]),
        (format!("?since={since}"), vec!["dlv_g1", "dlv_a2"]),
        (format!("?until={since}"), vec!["dlv_a1"]),
    ] {
        let (status, listed) = service.get(&format!("/v1/deliveries{query}"));
        assert_eq!(
            (status, ids(&listed)),
            (200, want.iter().map(|s| s.to_string()).collect()),
            "{query}: {listed}"
        );
    }
    let (_, page) = service.get("/v1/deliveries?limit=1");
    let (_, rest) = service.get(&format!(
        "/v1/deliveries?limit=5&after={}",
        page["next"].as_str().expect("a next cursor")
    ));
    assert_eq!(ids(&rest), vec!["dlv_a2", "dlv_a1"]);

    // One delivery with its attempts, oldest first; what an attempt sent.
    let (status, delivery) = service.get("/v1/deliveries/dlv_a1");
    assert_eq!(status, 200, "{delivery}");
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts_made"], 2);
    assert_eq!(delivery["endpoint_id"], acme.as_str());
    assert_eq!(delivery["event_type"], "project.created");
    let attempts = delivery["attempts"].as_array().unwrap();
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2], "{delivery}");
    assert_eq!(attempts[1]["status_code"], 500);
    assert_eq!(attempts[1]["response_excerpt"], "oops 2");
    let (status, sent) = service.get("/v1/deliveries/dlv_a1/attempts/1/request");
    assert_eq!(status, 200, "{sent}");
    assert!(sent.to_string().contains("evt_a1"), "{sent}");

    // Stats count the endpoint's deliveries.
    let (_, stats) = service.get(&format!("/v1/endpoints/{acme}/stats"));
    assert_eq!(stats["totals"]["succeeded"], 1, "{stats}");
    assert_eq!(stats["totals"]["failed"], 1, "{stats}");
    assert_eq!(stats["counted"], 2, "{stats}");

    // Retry puts a finished delivery back to pending, due now; recover takes the failed one.
    let (status, retried) = service.post("/v1/deliveries/dlv_g1/retry", &json!({}));
    assert_eq!(
        (status, retried["status"].as_str()),
        (202, Some("pending")),
        "{retried}"
    );
    assert!(retried["next_attempt_at"].is_string(), "{retried}");
    let (status, recovered) = service.post(
        &format!("/v1/endpoints/{acme}/recover"),
        &json!({"since": "2024-01-01T00:00:00Z"}),
    );
    assert_eq!(status, 202, "{recovered}");
    assert_eq!(recovered["requeued"], 1, "{recovered}");
    assert_eq!(recovered["more"], false, "{recovered}");
    // The row itself changed (the scheduler may have moved it on since).
    let status = pg::psql(
        &service.db_arg,
        "SELECT status, attempts_made FROM deliveries WHERE id = 'dlv_a1'",
    );
    assert_ne!(status, "failed|2", "recover left the delivery failed");
    // Stats and gauges keep answering.
    let (status, _) = service.get(&format!("/v1/endpoints/{acme}/stats?hours=24"));
    assert_eq!(status, 200);
}

/// With the scheduler's room on Postgres: events in (one, a repeat, a batch, a test event),
/// delivered to a real receiver, then read back, retried and counted through the API.
#[test]
fn events_are_ingested_delivered_retried_and_counted_on_postgres() {
    let wait = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let service = start_postgres(dir.path());
    let (endpoint, _) = service.create_endpoint(&format!("{}/hooks", receiver.url), &["*"], None);
    let data = clockeye_webhooks::catalog::sample("project.created").unwrap();
    let one = json!({"type": "project.created", "id": "evt-one", "data": data});
    let (status, accepted) = service.post("/v1/events", &one);
    assert_eq!(status, 202, "{accepted}");
    let (status, again) = service.post("/v1/events", &one);
    assert_eq!((status, &again), (200, &accepted), "a repeat is idempotent");
    let (status, batch) = service.post(
        "/v1/events/batch",
        &json!({"events": [
            {"type": "project.created", "data": data},
            {"type": "project.created", "data": data},
        ]}),
    );
    assert_eq!(status, 202, "{batch}");
    let (status, test) = service.post(&format!("/v1/endpoints/{endpoint}/test"), &json!({}));
    assert_eq!(status, 202, "{test}");
    let delivered = service.first_delivery(&accepted, "succeeded", wait);
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{delivered}");
    assert_eq!(attempts[0]["status_code"], 200, "{delivered}");
    for event in batch["events"].as_array().unwrap() {
        service.first_delivery(event, "succeeded", wait);
    }
    service.first_delivery(&test, "succeeded", wait);
    assert_eq!(receiver.wait_for(4, wait).len(), 4);
    let (_, events) = service.get("/v1/events");
    assert_eq!(ids(&events).len(), 4, "{events}");
    let (_, listed) = service.get(&format!(
        "/v1/deliveries?endpoint_id={endpoint}&status=succeeded"
    ));
    assert_eq!(ids(&listed).len(), 4, "{listed}");

    // A manual retry sends it again.
    let delivery_id = delivered["id"].as_str().unwrap();
    let (status, retried) =
        service.post(&format!("/v1/deliveries/{delivery_id}/retry"), &json!({}));
    assert_eq!(status, 202, "{retried}");
    util::eventually("the retried attempt", wait, || {
        let (_, delivery) = service.get(&format!("/v1/deliveries/{delivery_id}"));
        let attempts = delivery["attempts"].as_array().map_or(0, Vec::len);
        (delivery["status"] == "succeeded" && attempts == 2)
            .then_some(())
            .ok_or(delivery.to_string())
    });
    assert_eq!(receiver.wait_for(5, wait).len(), 5);
    let (_, stats) = service.get(&format!("/v1/endpoints/{endpoint}/stats"));
    assert_eq!(stats["totals"]["succeeded"], 4, "{stats}");
    assert_eq!(stats["success_rate"], 1.0, "{stats}");
    let (_, metrics) = metrics_text(&service);
    assert!(
        metrics
            .lines()
            .any(|line| line == "clockeye_deliveries_pending 0"),
        "{metrics}"
    );
}
