//! The dashboard: its files are served without a token and with safe headers, and, in Debian's
//! headless Chromium driven by `tests/browser/dashboard.mjs`, a person can sign in, add an
//! endpoint, send a test event and see it delivered, rotate the secret, disable the endpoint,
//! a portal link signs in once and never stays in the address bar, and a workspace token sees
//! only its own workspace. `.ci/run` installs Chromium and the
//! script's `npm ci`. `UPDATE_SCREENSHOTS=1 cargo test --test dashboard` rewrites `docs/*.png`.

mod util;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use util::{ADMIN_TOKEN, Receiver, Reply, Service, local_flags};

/// The browser the script drives: Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run, start to end; it takes about 10 s on two cores.
const BROWSER_RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn raw_get(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let mut builder = ureq::http::Request::builder().method("GET").uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = util::client().run(builder.body(()).unwrap()).unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[test]
fn the_page_and_its_files_are_served_without_a_token_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);

    let (status, headers, body) = raw_get(&format!("{}/", service.base), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let policy = header(&headers, "content-security-policy");
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert!(body.contains("/dashboard/app.js"));

    for (path, content_type) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, _) = raw_get(&format!("{}{path}", service.base), &[]);
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        // Revalidation: the same ETag back is a 304 without a body.
        let etag = header(&headers, "etag").to_string();
        let (status, _, body) = raw_get(
            &format!("{}{path}", service.base),
            &[("If-None-Match", &etag)],
        );
        assert_eq!((status, body.as_str()), (304, ""), "{path}");
    }

    let (status, headers, body) = raw_get(&format!("{}/dashboard/missing.js", service.base), &[]);
    assert_eq!(status, 404);
    assert!(body.contains("not_found"), "{body}");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let (status, body) = service.request("POST", "/", Some(ADMIN_TOKEN), Some(b"{}"));
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &json!("method_not_allowed"))
    );
    // The API itself still wants a token.
    let (status, _) = service.request("GET", "/v1/endpoints", None, None);
    assert_eq!(status, 401);
}

/// The node process, ended if the test gives up on it (playwright then closes the browser).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Says what is missing and how to get it, instead of a bare "No such file".
fn browser_prerequisites(browser_dir: &Path) -> Result<(), String> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!(
            "{CHROMIUM} is missing: run .ci/run (or apt-get install chromium) to install it"
        ));
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "{}/node_modules is missing: run .ci/run (or npm ci in tests/browser)",
            browser_dir.display()
        ));
    }
    Ok(())
}

#[test]
fn a_person_manages_endpoints_in_chromium_and_a_workspace_sees_only_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    if let Err(missing) = browser_prerequisites(&browser_dir) {
        // Under CI a missing browser is a failure; on a developer's machine, a skip that says why.
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{missing}");
        }
        eprintln!("SKIPPED: {missing}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Answers 500 with a small HTML body to events whose body says `fail-me`, 200 to the rest.
    // The 500 comes after a while, so a retried delivery is still in flight when the list looks
    // again right after the retry (the row must then follow it on its own).
    // Events whose body says `rotate-me` are refused 401 at their first attempt (a receiver that
    // still checks the old secret), so the at-once retry with the other secret shows.
    let receiver = Receiver::start(|request| {
        if String::from_utf8_lossy(&request.body).contains("rotate-me")
            && request.header("x-clockeye-attempt") == Some("1")
        {
            Reply {
                body: "invalid signature".to_string(),
                ..Reply::status(401)
            }
        } else if String::from_utf8_lossy(&request.body).contains("fail-me") {
            Reply {
                body: "<h1>database is down</h1>".to_string(),
                delay: Duration::from_millis(600),
                ..Reply::status(500)
            }
        } else {
            Reply {
                body: "ok".to_string(),
                ..Reply::status(200)
            }
        }
    });
    let service = Service::start(dir.path(), &local_flags("100ms"));

    let (status, token) = service.post(
        "/v1/workspaces/acme/tokens",
        &json!({"description": "dashboard test"}),
    );
    assert_eq!(status, 201, "{token}");
    let other_url = format!("{}/globex-only", receiver.url);
    let (other_id, _) = service.create_endpoint(&other_url, &["*"], Some("globex"));

    let mut command = Command::new("node");
    command
        .arg("dashboard.mjs")
        .current_dir(&browser_dir)
        .env("BASE_URL", &service.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RECEIVER_URL", &receiver.url)
        .env("WORKSPACE_ID", "acme")
        .env("WORKSPACE_TOKEN", token["token"].as_str().unwrap())
        .env("WORKSPACE_TOKEN_ID", token["id"].as_str().unwrap())
        .env("OTHER_ENDPOINT_ID", &other_id)
        .env("OTHER_ENDPOINT_URL", &other_url)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(
        command
            .spawn()
            .expect("node is installed (.ci/run installs it)"),
    );
    // Read both pipes on their own threads so a chatty browser never blocks on a full pipe.
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = util::eventually(
        "the browser run to finish",
        BROWSER_RUN_TIMEOUT,
        || match child.0.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(format!("still running after {:?}", started.elapsed())),
            Err(error) => Err(error.to_string()),
        },
    );
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    println!("{out}");
    assert!(
        status.success(),
        "the browser run failed ({status}):\n{out}\n{err}\nservice log:\n{}",
        service.stderr()
    );
    assert!(out.contains(", 0 failed"), "{out}");
    assert!(!out.contains("not ok"), "{out}");
}

/// Runs a script of `tests/browser` against `service` with `envs`; panics with its output when
/// it fails. Returns its stdout.
fn run_browser_script(script: &str, service: &Service, envs: &[(&str, String)]) -> String {
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
        .env("BASE_URL", &service.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = KillOnDrop(
        command
            .spawn()
            .expect("node is installed (.ci/run installs it)"),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = util::eventually(
        "the browser run to finish",
        BROWSER_RUN_TIMEOUT,
        || match child.0.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(format!("still running after {:?}", started.elapsed())),
            Err(error) => Err(error.to_string()),
        },
    );
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    println!("{out}");
    assert!(
        status.success(),
        "{script} failed ({status}):\n{out}\n{err}\nservice log:\n{}",
        service.stderr()
    );
    assert!(
        out.contains(", 0 failed") && !out.contains("not ok"),
        "{out}"
    );
    out
}

/// A day as an operator sees it: a healthy endpoint, a flaky one, one that is down, one its
/// receiver retired (410), and another workspace's. Every view is checked at 1280 and 375 px
/// (nothing runs off the side, health reads in words); with `UPDATE_SCREENSHOTS=1` this run
/// writes the README's screenshots into `docs/`, so they show this session, not test strings.
#[test]
fn every_view_reads_well_at_both_widths_in_a_realistic_session() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Err(missing) = browser_prerequisites(&root.join("tests/browser")) {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{missing}");
        }
        eprintln!("SKIPPED: {missing}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = Receiver::start(|_| Reply {
        body: "{\"received\":true}".to_string(),
        ..Reply::status(200)
    });
    // Every fourth event (by the last digit of its entity id) meets a database hiccup.
    let flaky = Receiver::start(|request| {
        let body = String::from_utf8_lossy(&request.body).to_string();
        if body.contains("_3\"") || body.contains("_7\"") {
            Reply {
                body: "{\"error\":\"deadlock detected, try again\"}".to_string(),
                ..Reply::status(500)
            }
        } else {
            Reply {
                body: "ok".to_string(),
                ..Reply::status(200)
            }
        }
    });
    let down = Receiver::start(|_| {
        Reply {
        body: "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>".to_string(),
        ..Reply::status(503)
    }
    });
    let gone = Receiver::start(|_| Reply {
        body: "this integration was retired; remove the webhook".to_string(),
        ..Reply::status(410)
    });
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let host = |receiver: &Receiver, path: &str| {
        format!("{}{path}", receiver.url.replace("127.0.0.1", "localhost"))
    };
    let endpoints = [
        (
            host(&ok, "/webhooks/clockeye"),
            "Payroll sync (Acme HR)",
            json!([
                "time_entry.created",
                "time_entry.updated",
                "time_entry.deleted",
                "timesheet.approved"
            ]),
            "acme",
            json!({"rate_limit": 50, "ordering": "subject", "headers": {"Authorization": "Basic cGF5cm9sbDpzM2NyZXQ="}}),
        ),
        (
            host(&flaky, "/hooks/timesheets"),
            "Slack notifications for timesheets",
            json!([
                "timesheet.submitted",
                "timesheet.approved",
                "time_entry.created"
            ]),
            "acme",
            json!({}),
        ),
        (
            host(&down, "/api/v2/clockeye/events"),
            "Data warehouse loader",
            json!(["*"]),
            "acme",
            json!({}),
        ),
        (
            host(&gone, "/legacy/webhook"),
            "Old billing integration",
            json!(["project.created", "user.invited", "user.activated"]),
            "acme",
            json!({}),
        ),
        (
            host(&ok, "/globex/clockeye"),
            "Globex BI import",
            json!(["*"]),
            "globex",
            json!({"rate_limit": 20}),
        ),
    ];
    let mut ids = Vec::new();
    for (url, description, events, workspace, extra) in &endpoints {
        let mut body = json!({"url": url, "events": events, "description": description, "workspace_id": workspace});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = service.post("/v1/endpoints", &body);
        assert_eq!(status, 201, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_string());
    }
    // The receiver that answers 410 gets its endpoint disabled: its later deliveries wait.
    let retired = ids[3].clone();
    let people = ["usr_ana", "usr_ben", "usr_chen", "usr_dara"];
    let projects = ["prj_website", "prj_mobile_app", "prj_payroll"];
    let tasks = [
        "Sprint planning",
        "Code review",
        "Customer call",
        "Release prep",
    ];
    for n in 0..24 {
        let workspace = if n % 6 == 5 { "globex" } else { "acme" };
        let user = people[n % people.len()];
        let (event_type, data) = match n % 6 {
            0 | 1 | 5 => (
                "time_entry.created",
                json!({"id": format!("te_{n}"), "user_id": user, "project_id": projects[n % 3],
                       "start_time": "2026-12-02T08:30:00Z", "duration": 1800 + 300 * n,
                       "description": tasks[n % tasks.len()]}),
            ),
            2 => (
                "timesheet.submitted",
                json!({"id": format!("ts_{n}"), "user_id": user, "period_start": "2026-11-23",
                       "period_end": "2026-11-29", "total_hours": 38.5}),
            ),
            3 => (
                "timesheet.approved",
                json!({"id": format!("ts_{n}"), "approved_by": "usr_manager", "approved_at": "2026-12-01T17:02:00Z"}),
            ),
            _ => (
                "user.invited",
                json!({"id": format!("usr_new_{n}"), "email": format!("new.hire{n}@acme.example"), "role": "member", "invited_by": "usr_ana"}),
            ),
        };
        let (status, answer) = service.post(
            "/v1/events",
            &json!({"type": event_type, "workspace_id": workspace, "data": data}),
        );
        assert_eq!(status, 202, "{answer}");
    }
    // Everything has finished (two attempts each, 100 ms apart) before the pages are shown;
    // then two more approvals, which the flaky receiver takes: its last attempts succeeded.
    let finished = || {
        util::eventually("every delivery to finish", Duration::from_secs(30), || {
            let (_, pending) = service.get("/v1/deliveries?status=pending&limit=500");
            let (_, delivering) = service.get("/v1/deliveries?status=delivering&limit=1");
            let waiting = pending["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["endpoint_id"] == json!(retired));
            if waiting && delivering["data"].as_array().unwrap().is_empty() {
                Ok(())
            } else {
                Err(format!("{pending} {delivering}"))
            }
        })
    };
    finished();
    for n in [100, 101] {
        let data = json!({"id": format!("ts_{n}"), "approved_by": "usr_manager", "approved_at": "2026-12-02T09:15:00Z"});
        let (status, answer) = service.post(
            "/v1/events",
            &json!({"type": "timesheet.approved", "workspace_id": "acme", "data": data}),
        );
        assert_eq!(status, 202, "{answer}");
    }
    finished();
    let (status, token) = service.post(
        "/v1/workspaces/acme/tokens",
        &json!({"description": "Acme's portal"}),
    );
    assert_eq!(status, 201, "{token}");
    let screenshots = std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let docs = root.join("docs");
    let mut envs = vec![(
        "WORKSPACE_TOKEN",
        token["token"].as_str().unwrap().to_string(),
    )];
    if screenshots {
        envs.push(("SCREENSHOTS_DIR", docs.display().to_string()));
    }
    run_browser_script("screenshots.mjs", &service, &envs);
}
