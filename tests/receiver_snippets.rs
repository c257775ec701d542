//! The receivers README.md shows (Node, Express, Python, Go) are the files in `tests/receivers/`,
//! and each runs as a real process: it verifies every delivery of the real service, a 200 KiB
//! event included (Express's default body limit of 100 kB would refuse it with 413), and rejects
//! a request signed with another secret or not signed at all.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clockeye_webhooks::signing::clockeye_signature;
use serde_json::json;
use util::cli::Lines;
use util::{Service, local_flags};

const RECEIVERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receivers");

fn receiver_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(RECEIVERS).join(name)).unwrap()
}

#[test]
fn the_readme_shows_each_receiver_file_exactly() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (name, fence) in [
        ("receiver.mjs", "```js\n"),
        ("receiver-express.mjs", "```js\n"),
        ("receiver.py", "```python\n"),
        ("receiver.go", "```go\n"),
    ] {
        let block = format!("{fence}{}```\n", receiver_file(name));
        assert!(
            readme.contains(&block),
            "README.md does not show tests/receivers/{name} exactly in a {fence:?} block"
        );
    }
}

/// Is `program` on the PATH?
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .or_else(|_| Command::new(program).arg("version").output())
        .is_ok()
}

/// The receivers to run: node and python, and go when installed (built into `dir` first, so
/// the receiver is the child process; `go run` would leave it behind when killed).
fn languages(dir: &Path) -> Vec<&'static str> {
    let mut languages = vec!["node", "python"];
    // Express comes from npm: tests/receivers/package-lock.json, installed by .ci/run.
    if Path::new(RECEIVERS).join("node_modules/express").is_dir() {
        languages.push("express");
    } else if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("express is not installed; .ci/run runs npm ci in tests/receivers");
    } else {
        eprintln!("SKIPPED the Express receiver: run npm ci in tests/receivers (.ci/run does)");
    }
    if installed("go") {
        let build = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(dir.join("receiver-go"))
            .arg(Path::new(RECEIVERS).join("receiver.go"))
            .output()
            .unwrap();
        assert!(build.status.success(), "go build: {build:?}");
        languages.push("go");
    } else if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("go is not installed; .ci/run installs it");
    } else {
        eprintln!("SKIPPED the Go receiver: go is not installed (.ci/run installs it)");
    }
    languages
}

/// A receiver listening on a free port with the endpoint's secret.
fn receiver_command(language: &str, dir: &Path, secret: &str) -> Command {
    let mut command = match language {
        "node" => {
            let mut node = Command::new("node");
            node.arg(Path::new(RECEIVERS).join("receiver.mjs"));
            node
        }
        "express" => {
            let mut node = Command::new("node");
            node.arg(Path::new(RECEIVERS).join("receiver-express.mjs"));
            node
        }
        "python" => {
            let mut python = Command::new("python3");
            python.arg(Path::new(RECEIVERS).join("receiver.py"));
            python
        }
        _ => Command::new(dir.join("receiver-go")),
    };
    command.arg("0").env("CLOCKEYE_SECRET", secret);
    command
}

#[test]
fn each_receiver_verifies_real_deliveries_and_rejects_bad_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    // Each receiver has its own endpoint, so its own secret.
    let mut receivers = Vec::new();
    for language in languages(dir.path()) {
        let (endpoint, secret) =
            service.create_endpoint("http://127.0.0.1:9/placeholder", &["*"], None);
        let process = Lines::spawn(receiver_command(language, dir.path(), &secret));
        let url = process.url();
        let (status, _) = service.patch(
            &format!("/v1/endpoints/{endpoint}"),
            &json!({"url": format!("{url}/webhooks/clockeye")}),
        );
        assert_eq!(status, 200);
        receivers.push((language, process, url, secret));
    }

    let mut accepted = Vec::new();
    for event_type in [
        "time_entry.created",
        "screenshot.captured",
        "timesheet.submitted",
    ] {
        accepted.push(service.send_sample(event_type, json!({})));
    }
    // Events are up to 256 KiB: one of 200 KiB must get through every receiver.
    let mut large = clockeye_webhooks::catalog::sample("time_entry.created").unwrap();
    large["description"] = json!("x".repeat(200 * 1024));
    let (status, answer) = service.post(
        "/v1/events",
        &json!({"type": "time_entry.created", "data": large}),
    );
    assert_eq!(status, 202, "{answer}");
    accepted.push(answer);
    for (language, process, _, _) in &receivers {
        for event in &accepted {
            let id = event["id"].as_str().unwrap();
            let line = process.wait_line(&format!("{language} to verify {id}"), |l| {
                l.starts_with("verified ") && l.contains(id)
            });
            assert!(line.ends_with(event["type"].as_str().unwrap()), "{line}");
        }
    }
    for event in &accepted {
        let deliveries = event["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), receivers.len());
        for delivery in deliveries {
            service.wait_for_delivery_status(
                delivery["id"].as_str().unwrap(),
                "succeeded",
                Duration::from_secs(10),
            );
        }
    }

    // Signed with another secret, and not signed: 401, and the receiver says so.
    let agent = util::client();
    let body = br#"{"id":"evt_forged","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{}}"#;
    for (language, process, url, secret) in &receivers {
        let forged = clockeye_signature(&format!("{secret}x"), body);
        for signature in [Some(forged.as_str()), None] {
            let mut request = agent
                .post(&format!("{url}/webhooks/clockeye"))
                .header("Content-Type", "application/json");
            if let Some(signature) = signature {
                request = request.header("X-ClockEye-Signature", signature);
            }
            let response = request.send(&body[..]).unwrap();
            assert_eq!(response.status().as_u16(), 401, "{language}");
        }
        let rejected = || {
            process
                .lines()
                .iter()
                .filter(|l| l.starts_with("rejected: invalid signature"))
                .count()
        };
        util::eventually(
            &format!("{language} to print two rejections"),
            Duration::from_secs(5),
            || {
                (rejected() == 2)
                    .then_some(())
                    .ok_or(rejected().to_string())
            },
        );
        assert!(!process.lines().iter().any(|l| l.contains("evt_forged")));
    }
}
