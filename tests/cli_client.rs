//! The API commands (`send`, `endpoints …`, `deliveries …`, `recover`) as processes against
//! the real service: tables, `--json`, bulk progress, and one clear line for each failure.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::cli::{client, client_with_stdin, run};
use util::{ADMIN_TOKEN, Receiver, Reply, Service, eventually, local_flags};

fn id_after(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    text[start..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn endpoints_events_and_deliveries_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::ok();
    let url = format!("{}/hooks", receiver.url);

    let added = client(
        &service,
        &[
            "endpoints",
            "add",
            &url,
            "--events",
            "time_entry.created,user.invited",
            "--description",
            "first",
            "--header",
            "X-Team: billing",
        ],
    );
    assert_eq!(added.code, 0, "{added:?}");
    assert!(added.stdout.contains("secret: whsec_"), "{added:?}");
    let first = id_after(&added.stdout, "ep_");
    let second = client(&service, &["endpoints", "add", &url, "--json"]).json();
    assert_eq!(second["events"], json!(["*"]));
    let second = second["id"].as_str().unwrap().to_string();

    let listed = client(&service, &["endpoints", "list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{listed:?}");
    assert_eq!(lines.len(), 3, "{listed:?}");
    // Columns line up: each column starts at the same place on every line.
    let url_column = lines[0].find("URL").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[url_column..].starts_with("http"))
    );
    assert!(listed.stdout.contains("time_entry.created,user.invited"));

    let shown = client(&service, &["endpoints", "show", &first]);
    assert!(shown.stdout.contains("first"), "{shown:?}");
    let disabled = client(&service, &["endpoints", "update", &first, "--disable"]);
    assert_eq!(disabled.code, 0, "{disabled:?}");
    let shown = client(&service, &["endpoints", "show", &first, "--json"]).json();
    assert_eq!(shown["enabled"], false);
    assert_eq!(
        client(&service, &["endpoints", "update", &first, "--enable"]).code,
        0
    );
    let nothing = client(&service, &["endpoints", "update", &first]);
    assert_eq!(nothing.code, 2, "{nothing:?}");

    // send: sample data, then data from a file.
    let sent = client(&service, &["send", "time_entry.created"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert!(
        sent.stdout
            .contains("(time_entry.created, workspace default) to 2 endpoints"),
        "{sent:?}"
    );
    let delivery = id_after(&sent.stdout, "dlv_");
    let data = dir.path().join("data.json");
    std::fs::write(
        &data,
        r#"{"id":"usr_9","email":"kim@example.com","role":"admin","invited_by":"usr_1"}"#,
    )
    .unwrap();
    let sent = client(
        &service,
        &[
            "send",
            "user.invited",
            "--data",
            &format!("@{}", data.display()),
            "--id",
            "evt_cli_1",
            "--json",
        ],
    );
    assert_eq!(sent.json()["id"], "evt_cli_1");
    let event = service.get("/v1/events/evt_cli_1").1;
    assert_eq!(event["data"]["email"], "kim@example.com");

    // The API's refusals come back as one line with the field, exit 1.
    let refused = client(
        &service,
        &["send", "time_entry.created", "--data", r#"{"id":"te_1"}"#],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("server answered 422") && refused.stderr.contains("(field: "),
        "{refused:?}"
    );
    assert_eq!(refused.stderr.lines().count(), 1);
    assert_eq!(client(&service, &["send", "no.such_type"]).code, 2);

    service.wait_for_delivery_status(&delivery, "succeeded", Duration::from_secs(10));
    let listed = client(
        &service,
        &[
            "deliveries",
            "list",
            "--endpoint",
            &first,
            "--status",
            "succeeded",
        ],
    );
    assert!(listed.stdout.contains(&delivery), "{listed:?}");
    assert!(listed.stdout.lines().next().unwrap().starts_with("ID "));
    let shown = client(&service, &["deliveries", "show", &delivery]);
    assert!(shown.stdout.contains("succeeded"), "{shown:?}");
    assert!(shown.stdout.contains("DURATION"), "{shown:?}");

    // Bulk retry: progress on stderr, a result per id, exit 1 because one is unknown.
    let retried = client(&service, &["deliveries", "retry", &delivery, "dlv_unknown"]);
    assert_eq!(retried.code, 1, "{retried:?}");
    assert!(
        retried.stderr.contains("retried 2/2, 1 failed"),
        "{retried:?}"
    );
    assert!(
        retried.stdout.contains("retried: now pending"),
        "{retried:?}"
    );
    assert!(
        retried.stdout.contains("failed: server answered 404"),
        "{retried:?}"
    );
    eventually(
        "the retried delivery's second attempt",
        Duration::from_secs(10),
        || {
            let delivery = service.get(&format!("/v1/deliveries/{delivery}")).1;
            if delivery["status"] == "succeeded" && delivery["attempts_made"] == 2 {
                Ok(())
            } else {
                Err(delivery.to_string())
            }
        },
    );

    let removed = client(&service, &["endpoints", "remove", &second]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert_eq!(service.get(&format!("/v1/endpoints/{second}")).0, 404);
}

#[test]
fn failures_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);

    let wrong_token = run(
        &[
            "endpoints",
            "list",
            "--server",
            &service.base,
            "--token",
            "cew_nope",
        ],
        &[],
        None,
    );
    assert_eq!(wrong_token.code, 1, "{wrong_token:?}");
    assert!(wrong_token.stderr.contains("401"), "{wrong_token:?}");
    assert!(
        wrong_token
            .stderr
            .contains("check --token or CLOCKEYE_TOKEN")
    );

    // Bulk work stops at the first refusal of the token instead of trying every id.
    let stopped = run(
        &[
            "deliveries",
            "retry",
            "dlv_1",
            "dlv_2",
            "dlv_3",
            "--server",
            &service.base,
            "--token",
            "cew_nope",
        ],
        &[],
        None,
    );
    assert_eq!(stopped.code, 1, "{stopped:?}");
    assert!(
        stopped.stderr.contains("stopped after 0 of 3"),
        "{stopped:?}"
    );
    assert_eq!(stopped.stderr.lines().count(), 1, "{stopped:?}");

    let no_token = run(&["endpoints", "list", "--server", &service.base], &[], None);
    assert_eq!(no_token.code, 2, "{no_token:?}");
    assert!(no_token.stderr.contains("no token"), "{no_token:?}");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let unreachable = run(
        &[
            "deliveries",
            "list",
            "--server",
            &server,
            "--token",
            ADMIN_TOKEN,
        ],
        &[],
        None,
    );
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("cannot reach the server at"),
        "{unreachable:?}"
    );
    assert_eq!(unreachable.stderr.lines().count(), 1);

    let missing = client(&service, &["endpoints", "show", "ep_missing"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("404 not_found"), "{missing:?}");
    let bad_status = client(&service, &["deliveries", "list", "--status", "lost"]);
    assert_eq!(bad_status.code, 2, "{bad_status:?}");
}

#[test]
fn listing_all_follows_pages_and_bulk_retry_reads_ids_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let (endpoint, _) = service.create_endpoint("http://127.0.0.1:9/off", &["*"], None);
    // Disabled, so its deliveries wait as pending and nothing is sent.
    service.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"enabled": false}),
    );
    let sample = clockeye_webhooks::catalog::sample("project.created").unwrap();
    let events: Vec<Value> = (0..520)
        .map(|_| json!({"type": "project.created", "data": sample}))
        .collect();
    let (status, _) = service.post("/v1/events/batch", &json!({ "events": events }));
    assert_eq!(status, 202);

    let ids = client(&service, &["deliveries", "list", "--all", "--ids"]);
    assert_eq!(ids.code, 0, "{ids:?}");
    assert_eq!(ids.stdout.lines().count(), 520);
    assert!(
        ids.stderr.contains("fetched 520 deliveries (2 pages)"),
        "{ids:?}"
    );
    let limited = client(&service, &["deliveries", "list", "--limit", "3", "--json"]).json();
    assert_eq!(limited["data"].as_array().unwrap().len(), 3);
    assert!(limited["next"].is_string());

    let retried = client_with_stdin(
        &service,
        &["deliveries", "retry", "-", "--json"],
        Some(ids.stdout.as_bytes()),
    );
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert!(
        retried.stderr.contains("retried 520/520"),
        "{}",
        retried.stderr
    );
    let results = retried.json();
    assert_eq!(results.as_array().unwrap().len(), 520);
    assert!(results.as_array().unwrap().iter().all(|r| r["ok"] == true));
}

#[test]
fn rotate_test_and_recover_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::start(|request| {
        if request.path == "/down" {
            Reply::status(500)
        } else {
            Reply::status(200)
        }
    });
    let (endpoint, old_secret) =
        service.create_endpoint(&format!("{}/up", receiver.url), &["user.invited"], None);

    let rotated = client(
        &service,
        &["endpoints", "rotate", &endpoint, "--overlap", "1h"],
    );
    assert_eq!(rotated.code, 0, "{rotated:?}");
    assert!(rotated.stdout.contains("new secret: whsec_"), "{rotated:?}");
    assert!(
        rotated
            .stdout
            .contains("the previous secret stays valid until"),
        "{rotated:?}"
    );
    let new_secret = id_after(&rotated.stdout, "whsec_");
    assert_ne!(new_secret, old_secret);
    let secret = client(&service, &["endpoints", "secret", &endpoint]);
    assert_eq!(secret.code, 0, "{secret:?}");
    // (id_after stops at the first character that is not alphanumeric or _.)
    assert_eq!(
        secret.stdout.trim().split(['+', '/', '=']).next().unwrap(),
        new_secret
    );
    assert_eq!(secret.stdout.lines().count(), 1, "{secret:?}");
    assert!(
        secret
            .stderr
            .contains("the previous secret also signs until")
    );

    let tested = client(&service, &["endpoints", "test", &endpoint, "--wait"]);
    assert_eq!(tested.code, 0, "{tested:?}");
    assert!(tested.stdout.contains("(user.invited)"), "{tested:?}");
    assert!(tested.stdout.contains("succeeded: 200"), "{tested:?}");

    // Two deliveries fail at a receiver that is down; recover sends them again once it is up.
    service.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"url": format!("{}/down", receiver.url)}),
    );
    let first = service.send_sample("user.invited", json!({}));
    let second = service.send_sample("user.invited", json!({}));
    service.first_delivery(&first, "failed", Duration::from_secs(10));
    service.first_delivery(&second, "failed", Duration::from_secs(10));
    service.patch(
        &format!("/v1/endpoints/{endpoint}"),
        &json!({"url": format!("{}/up", receiver.url)}),
    );
    let recovered = client(&service, &["recover", &endpoint, "--since", "1h"]);
    assert_eq!(recovered.code, 0, "{recovered:?}");
    assert!(
        recovered.stdout.starts_with("requeued 2 failed deliveries"),
        "{recovered:?}"
    );
    service.first_delivery(&first, "succeeded", Duration::from_secs(10));
    service.first_delivery(&second, "succeeded", Duration::from_secs(10));
    let bad = client(&service, &["recover", &endpoint, "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn pipes_other_peoples_text_and_empty_input_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::ok();
    // A description with a terminal escape and a newline is shown defused.
    let added = client(
        &service,
        &[
            "endpoints",
            "add",
            &receiver.url,
            "--description",
            "x \u{1b}[31mRED\u{1b}[0m\nsecond",
        ],
    );
    assert_eq!(added.code, 0, "{added:?}");
    let listed = client(&service, &["endpoints", "list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(!listed.stdout.contains('\u{1b}'), "{listed:?}");
    assert_eq!(listed.stdout.lines().count(), 2, "{listed:?}");

    // Nothing failed: the README's bulk-retry pipeline does nothing and succeeds.
    let none = client_with_stdin(&service, &["deliveries", "retry", "-"], Some(b""));
    assert_eq!(none.code, 0, "{none:?}");
    assert!(none.stderr.contains("nothing"), "{none:?}");

    // A reader that closes the pipe early ends the command quietly, not with a panic.
    // (500 deliveries as JSON: far more than a pipe's 64 KiB buffer.)
    let data = clockeye_webhooks::catalog::sample("project.created").unwrap();
    let batch = json!({"events": (0..500).map(|_| json!({"type": "project.created", "data": data})).collect::<Vec<_>>()});
    assert_eq!(service.post("/v1/events/batch", &batch).0, 202);
    let script = format!(
        "\"{}\" deliveries list --limit 500 --json | head -c 1 > /dev/null; echo \"status=${{PIPESTATUS[0]}}\"",
        util::BIN
    );
    let piped = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("CLOCKEYE_SERVER", &service.base)
        .env("CLOCKEYE_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8_lossy(&piped.stdout);
    assert!(!stdout.contains("status=101"), "{stdout}");

    // help names the command it is asked about, or says there is none.
    let serve_help = run(&["help", "serve"], &[], None);
    assert!(
        serve_help.stdout.contains("--retry-schedule"),
        "{serve_help:?}"
    );
    assert_eq!(run(&["help", "frob"], &[], None).code, 2);
}
