//! The operator's and the integrator's day outside the browser: portal links with an absolute
//! URL, the request an attempt sent (rebuilt, compared with what the receiver got), deliveries
//! across endpoints by type and time, the `workspaces tokens` and `portal-link` commands,
//! `listen --register` and `listen --json`, error text and response excerpts in the CLI, and
//! the wording of common mistakes.

mod util;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use util::cli::{Lines, client, run};
use util::{ADMIN_TOKEN, BIN, Receiver, Reply, Service, eventually, local_flags};

#[test]
fn portal_links_answer_an_absolute_url_from_public_url_or_the_request_host() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let (status, link) = service.post("/v1/workspaces/acme/portal-links", &json!({}));
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("{}/#code={}", service.base, link["code"].as_str().unwrap()),
        "the request's Host makes the URL absolute"
    );
    drop(service);

    let service = Service::start_on(
        dir.path(),
        "second.db",
        &["--public-url", "https://webhooks.example.com/"],
    );
    let (_, link) = service.post("/v1/workspaces/acme/portal-links", &json!({}));
    assert_eq!(
        link["url"].as_str().unwrap(),
        format!(
            "https://webhooks.example.com/#code={}",
            link["code"].as_str().unwrap()
        )
    );
    let bad = run(
        &["serve", "--public-url", "webhooks.example.com"],
        &[],
        None,
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("is not an http(s) URL"), "{bad:?}");
}

#[test]
fn an_attempts_request_is_rebuilt_as_the_receiver_got_it_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::start(|_| Reply {
        body: "stored".into(),
        ..Reply::status(500)
    });
    let (status, endpoint) = service.post(
        "/v1/endpoints",
        &json!({"url": format!("{}/hooks", receiver.url), "events": ["*"],
                "headers": {"Authorization": "Basic c2VjcmV0OnZhbHVl"}}),
    );
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    // Whitespace in data is kept byte for byte: the body shown is the one sent.
    let (status, accepted) = service.request(
        "POST",
        "/v1/events",
        Some(ADMIN_TOKEN),
        Some(br#"{"type":"project.created","data":{"id":"prj_1",  "name":"Website","created_by":"usr_1"}}"#),
    );
    assert_eq!(status, 202, "{accepted}");
    let delivery = service.first_delivery(&accepted, "failed", Duration::from_secs(10));
    let delivery_id = delivery["id"].as_str().unwrap();
    let received = receiver.wait_for(2, Duration::from_secs(5));
    for (index, got) in received.iter().enumerate() {
        let number = index + 1;
        let (status, sent) = service.get(&format!(
            "/v1/deliveries/{delivery_id}/attempts/{number}/request"
        ));
        assert_eq!(status, 200, "{sent}");
        assert_eq!(sent["body"].as_str().unwrap().as_bytes(), &got.body[..]);
        assert_eq!(sent["body_bytes"], got.body.len());
        let headers: Vec<(String, String)> = sent["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["name"].as_str().unwrap().to_string(),
                    h["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (name, value) in &headers {
            if name == "Authorization" {
                assert_eq!(value, "[masked]");
                assert_eq!(got.header("authorization"), Some("Basic c2VjcmV0OnZhbHVl"));
                continue;
            }
            assert_eq!(
                got.header(name),
                Some(value.as_str()),
                "attempt {number}: {name} as the receiver got it"
            );
        }
        // Nothing the receiver got is missing from what is shown.
        let mut got_names: Vec<String> = got.headers.iter().map(|(name, _)| name.clone()).collect();
        let mut shown_names: Vec<String> = headers
            .iter()
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
        got_names.sort();
        shown_names.sort();
        assert_eq!(got_names, shown_names);
        let text = sent.to_string();
        assert!(
            !text.contains(&secret) && !text.contains("c2VjcmV0"),
            "{text}"
        );
    }
    let (status, missing) =
        service.get(&format!("/v1/deliveries/{delivery_id}/attempts/9/request"));
    assert_eq!(status, 404, "{missing}");

    // The same from the command line, as a raw HTTP request.
    let shown = client(
        &service,
        &["deliveries", "show", delivery_id, "--request", "2"],
    );
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown
            .stdout
            .starts_with(&format!("POST {}/hooks\n", receiver.url)),
        "{shown:?}"
    );
    assert!(
        shown.stdout.contains("X-ClockEye-Attempt: 2\n"),
        "{shown:?}"
    );
    assert!(
        shown.stdout.contains("Authorization: [masked]\n"),
        "{shown:?}"
    );
    assert!(
        shown
            .stdout
            .contains(std::str::from_utf8(&received[1].body).unwrap()),
        "{shown:?}"
    );
    assert!(!shown.stdout.contains(&secret), "{shown:?}");
    let zero = client(
        &service,
        &["deliveries", "show", delivery_id, "--request", "0"],
    );
    assert_eq!(zero.code, 2, "{zero:?}");
}

#[test]
fn deliveries_are_listed_across_endpoints_by_type_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::ok();
    service.create_endpoint(&format!("{}/a", receiver.url), &["*"], None);
    service.create_endpoint(&format!("{}/b", receiver.url), &["*"], None);
    let before = service.send_sample("project.created", json!({}));
    let (_, event) = service.get(&format!("/v1/events/{}", before["id"].as_str().unwrap()));
    let created_at = event["created_at"].as_str().unwrap().to_string();
    service.send_sample("user.invited", json!({}));
    let (status, all) = service.get("/v1/deliveries?limit=50");
    assert_eq!(status, 200);
    assert_eq!(all["data"].as_array().unwrap().len(), 4, "{all}");
    let (_, projects) = service.get("/v1/deliveries?type=project.created");
    let projects = projects["data"].as_array().unwrap();
    assert_eq!(projects.len(), 2);
    assert!(
        projects
            .iter()
            .all(|d| d["event_type"] == "project.created")
    );
    let (_, later) = service.get("/v1/deliveries?since=2999-01-01T00:00:00Z");
    assert!(later["data"].as_array().unwrap().is_empty(), "{later}");
    let (_, earlier) = service.get(&format!("/v1/deliveries?until={created_at}"));
    assert!(earlier["data"].as_array().unwrap().is_empty(), "{earlier}");
    let (_, since) = service.get(&format!("/v1/deliveries?since={created_at}"));
    assert_eq!(since["data"].as_array().unwrap().len(), 4, "{since}");
    let (status, bad) = service.get("/v1/deliveries?since=yesterday");
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["field"], "since");
}

#[test]
fn workspace_tokens_and_portal_links_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let created = client(
        &service,
        &[
            "workspaces",
            "tokens",
            "create",
            "acme",
            "--description",
            "Acme's integration",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    let token = created.stdout.trim().to_string();
    assert!(
        token.starts_with("cew_ws_"),
        "only the token on stdout: {created:?}"
    );
    let (status, _) = service.request("GET", "/v1/endpoints", Some(token.as_str()), None);
    assert_eq!(status, 200, "the token works");

    let listed = client(&service, &["workspaces", "tokens", "list", "acme"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(listed.stdout.contains("Acme's integration"), "{listed:?}");
    assert!(listed.stdout.contains("LAST USED"), "{listed:?}");
    assert!(!listed.stdout.contains(&token), "never the token itself");
    let id = client(
        &service,
        &["workspaces", "tokens", "list", "acme", "--json"],
    )
    .json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = client(&service, &["workspaces", "tokens", "revoke", "acme", &id]);
    assert_eq!(revoked.code, 0, "{revoked:?}");
    let (status, _) = service.request("GET", "/v1/endpoints", Some(token.as_str()), None);
    assert_eq!(status, 401, "a revoked token is refused");

    let link = client(&service, &["portal-link", "acme", "--expires-in", "15m"]);
    assert_eq!(link.code, 0, "{link:?}");
    assert!(
        link.stdout
            .trim()
            .starts_with(&format!("{}/#code=cew_pl_", service.base)),
        "{link:?}"
    );
    assert!(
        link.stderr
            .contains("opens the dashboard as workspace acme"),
        "{link:?}"
    );
    let too_long = client(&service, &["portal-link", "acme", "--expires-in", "3d"]);
    assert_eq!(too_long.code, 1, "{too_long:?}");
    assert!(too_long.stderr.contains("expires_in"), "{too_long:?}");
    // A workspace token may not make them.
    let workspace = run(
        &["portal-link", "acme"],
        &[
            ("CLOCKEYE_SERVER", &service.base),
            ("CLOCKEYE_TOKEN", &token),
        ],
        None,
    );
    assert_eq!(workspace.code, 1, "{workspace:?}");
}

#[test]
fn failures_show_the_receivers_answer_and_the_error_text() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::start(|_| Reply {
        body: "upstream payroll service unavailable".into(),
        ..Reply::status(502)
    });
    let (id, _) = service.create_endpoint(&format!("{}/hooks", receiver.url), &["*"], None);
    let tested = client(&service, &["endpoints", "test", &id, "--wait"]);
    assert_eq!(tested.code, 1, "{tested:?}");
    assert!(
        tested.stdout.contains("failed: 502 in")
            && tested
                .stdout
                .contains("response: upstream payroll service unavailable"),
        "{tested:?}"
    );

    // A refused connection: `deliveries show` says so in words, not only `connect`.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (id, _) = service.create_endpoint(&format!("http://127.0.0.1:{port}/hooks"), &["*"], None);
    let (_, event) = service.post(&format!("/v1/endpoints/{id}/test"), &json!({}));
    let delivery = service.first_delivery(&event, "failed", Duration::from_secs(10));
    let error = delivery["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = client(
        &service,
        &["deliveries", "show", delivery["id"].as_str().unwrap()],
    );
    assert_eq!(shown.code, 0, "{shown:?}");
    let start: String = format!("connect: {error}").chars().take(40).collect();
    assert!(shown.stdout.contains(&start), "{start:?} in {shown:?}");
}

#[test]
fn listen_register_adds_an_endpoint_for_itself_verifies_and_removes_it_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let mut command = Command::new(BIN);
    command
        .args([
            "listen",
            "--port",
            "0",
            "--register",
            "--json",
            "--events",
            "user.invited",
        ])
        .env("CLOCKEYE_SERVER", &service.base)
        .env("CLOCKEYE_TOKEN", ADMIN_TOKEN)
        .env_remove("CLOCKEYE_SECRET");
    let mut listen = Lines::spawn(command);
    let url = listen.url();
    let endpoint = eventually("the registered endpoint", Duration::from_secs(10), || {
        let (_, list) = service.get("/v1/endpoints");
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == json!(format!("{url}/")))
            .cloned()
            .ok_or_else(|| list.to_string())
    });
    assert_eq!(endpoint["events"], json!(["user.invited"]));
    let accepted = service.send_sample("user.invited", json!({}));
    let event_id = accepted["id"].as_str().unwrap().to_string();
    let line = listen.wait_line("the webhook's line", |l| l.contains(&event_id));
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        line["verified"], true,
        "verified with the endpoint's own secret: {line}"
    );
    let body = line["body"].as_str().unwrap();
    let (_, event) = service.get(&format!("/v1/events/{event_id}"));
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap()["data"],
        event["data"]
    );
    let headers = line["headers"].as_array().unwrap();
    assert!(
        headers.iter().any(|h| h[0]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("x-clockeye-signature")
            && h[1].as_str().unwrap().starts_with("sha256=")),
        "{line}"
    );

    // SIGTERM: the endpoint goes, and listen ends with 0.
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(listen.child.id() as i32, libc::SIGTERM);
    }
    let status = eventually("listen to exit", Duration::from_secs(10), || {
        listen
            .child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    assert!(status.success(), "{status:?}");
    let (status, _) = service.get(&format!(
        "/v1/endpoints/{}",
        endpoint["id"].as_str().unwrap()
    ));
    assert_eq!(status, 404, "the temporary endpoint is removed");

    // Against a server that does not deliver to this machine: one line saying what it needs.
    let strict = Service::start_on(dir.path(), "strict.db", &[]);
    let refused = run(
        &["listen", "--port", "0", "--register"],
        &[
            ("CLOCKEYE_SERVER", &strict.base),
            ("CLOCKEYE_TOKEN", ADMIN_TOKEN),
        ],
        None,
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("--allow-http --allow-network 127.0.0.0/8"),
        "{refused:?}"
    );
}

#[test]
fn common_mistakes_are_worded_to_be_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let cases = [
        ("", "url is required"),
        (
            "example.com/hooks",
            "add https:// in front (https://example.com/hooks)",
        ),
        (
            "ftp://x.example/hooks",
            "must start with https:// or http://",
        ),
    ];
    for (url, expected) in cases {
        let (status, answer) = service.post("/v1/endpoints", &json!({"url": url, "events": ["*"]}));
        assert_eq!(status, 422, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{url:?}: {message}");
    }
    let (status, answer) = service.post(
        "/v1/events",
        &json!({"type": "time_entry.created", "data": {"id": "te_1", "user_id": "u", "project_id": "p",
                "start_time": "yesterday", "duration": "long"}}),
    );
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("must be an "), "{message}");
    assert!(
        !message.contains(" a integer") && !message.contains(" a RFC"),
        "{message}"
    );

    // "1 endpoint shown", not "1 endpoints".
    service.create_endpoint("http://127.0.0.1:9/a", &["*"], None);
    service.create_endpoint("http://127.0.0.1:9/b", &["*"], None);
    let listed = client(&service, &["endpoints", "list", "--limit", "1"]);
    assert!(listed.stderr.contains("1 endpoint shown;"), "{listed:?}");
}

#[test]
fn the_log_names_the_signal_and_where_a_new_admin_token_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("fresh.db"))
        .env_remove("CLOCKEYE_ADMIN_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = eventually("serve to exit", Duration::from_secs(10), || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    assert!(status.success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("admin_token=[generated now"), "{log}");
    assert!(log.contains("shutting down on SIGTERM"), "{log}");
    assert!(!log.contains("Some(15)"), "{log}");
}
