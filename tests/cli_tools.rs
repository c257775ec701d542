//! The receiver-side tools as processes: `verify` names what is wrong, `listen` prints and
//! forwards real deliveries, help and completions cover every command.

mod util;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use clockeye_webhooks::signing::{clockeye_signature, standard_signature};
use clockeye_webhooks::test_support::now_ms;
use serde_json::{Value, json};
use util::cli::{Lines, Run, run};
use util::{Receiver, Reply, Service, local_flags};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str = r#"{"id":"evt_1","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{"id":"prj_1","name":"Web","created_by":"usr_1"}}"#;

fn verify(args: &[&str], body: &[u8]) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    all.push("-");
    run(&all, &[], Some(body))
}

#[test]
fn verify_says_valid_or_names_the_mistake() {
    let signature = clockeye_signature(SECRET, BODY.as_bytes());
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(BODY).unwrap())
        .unwrap()
        .into_bytes();
    let old_signature = clockeye_signature("whsec_old", BODY.as_bytes());
    let with_newline = format!("{BODY}\n").into_bytes();
    let cases: Vec<(Vec<&str>, &[u8], i32, &str)> = vec![
        (
            vec!["--secret", SECRET, "--signature", &signature],
            BODY.as_bytes(),
            0,
            "valid: X-ClockEye-Signature matches",
        ),
        (
            vec!["--secret", SECRET, "--signature", &signature],
            &with_newline,
            1,
            "ends with a newline that was not signed",
        ),
        (
            vec!["--secret", SECRET, "--signature", &signature],
            &pretty,
            1,
            "the body was re-serialized",
        ),
        (
            vec!["--secret", SECRET, "--signature", &old_signature],
            BODY.as_bytes(),
            1,
            "wrong secret",
        ),
        (
            vec![
                "--secret",
                SECRET,
                "--previous-secret",
                "whsec_old",
                "--signature",
                &old_signature,
            ],
            BODY.as_bytes(),
            1,
            "signed with the previous secret",
        ),
        (
            vec!["--secret", SECRET, "--signature", "sha256=abc"],
            BODY.as_bytes(),
            1,
            "header malformed",
        ),
    ];
    for (args, body, code, expected) in cases {
        let result = verify(&args, body);
        assert_eq!(result.code, code, "{args:?}: {result:?}");
        assert!(result.stdout.contains(expected), "{args:?}: {result:?}");
    }

    // From a file, with the header line pasted whole.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, BODY).unwrap();
    let pasted = format!("X-ClockEye-Signature: {signature}");
    let result = run(
        &["verify", "--signature", &pasted, file.to_str().unwrap()],
        &[("CLOCKEYE_SECRET", SECRET)],
        None,
    );
    assert_eq!(result.code, 0, "{result:?}");
}

#[test]
fn verify_checks_webhook_signature_timestamps_and_needs_id_and_timestamp() {
    let now_s = now_ms() / 1000;
    let fresh = standard_signature(SECRET, "evt_1", now_s, BODY.as_bytes());
    let now = now_s.to_string();
    let result = verify(
        &[
            "--secret",
            SECRET,
            "--signature",
            &fresh,
            "--id",
            "evt_1",
            "--timestamp",
            &now,
        ],
        BODY.as_bytes(),
    );
    assert_eq!(result.code, 0, "{result:?}");
    assert!(result.stdout.contains("valid: webhook-signature"));

    let hour_ago = (now_s - 3600).to_string();
    let old = standard_signature(SECRET, "evt_1", now_s - 3600, BODY.as_bytes());
    let args = [
        "--secret",
        SECRET,
        "--signature",
        &old,
        "--id",
        "evt_1",
        "--timestamp",
        &hour_ago,
    ];
    let result = verify(&args, BODY.as_bytes());
    assert_eq!(result.code, 1, "{result:?}");
    assert!(
        result.stdout.contains("outside the 300s tolerance"),
        "{result:?}"
    );
    let mut wider = args.to_vec();
    wider.extend(["--tolerance", "2h"]);
    assert_eq!(verify(&wider, BODY.as_bytes()).code, 0);

    // Usage errors: exit 2, one line on stderr.
    for args in [
        vec!["--secret", SECRET, "--signature", &fresh],
        vec!["--signature", &fresh],
        vec!["--secret", SECRET],
        vec![
            "--secret",
            SECRET,
            "--signature",
            "x",
            "--tolerance",
            "soon",
        ],
    ] {
        let result = verify(&args, BODY.as_bytes());
        assert_eq!(result.code, 2, "{args:?}: {result:?}");
        assert_eq!(result.stderr.lines().count(), 1, "{result:?}");
    }
}

#[test]
fn verify_accepts_a_real_delivery_by_either_header() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let receiver = Receiver::ok();
    let (_, secret) = service.create_endpoint(&receiver.url, &["*"], None);
    service.send_sample("timesheet.submitted", json!({}));
    let request = receiver
        .wait_for(1, std::time::Duration::from_secs(10))
        .remove(0);
    let header = |name: &str| request.header(name).unwrap().to_string();
    let clockeye = verify(
        &[
            "--secret",
            &secret,
            "--signature",
            &header("x-clockeye-signature"),
        ],
        &request.body,
    );
    assert_eq!(clockeye.code, 0, "{clockeye:?}");
    let standard = verify(
        &[
            "--secret",
            &secret,
            "--signature",
            &header("webhook-signature"),
            "--id",
            &header("webhook-id"),
            "--timestamp",
            &header("webhook-timestamp"),
        ],
        &request.body,
    );
    assert_eq!(standard.code, 0, "{standard:?}");
    let mut reserialized = serde_json::to_vec(&request.json()).unwrap();
    reserialized.push(b'\n');
    let changed = verify(
        &[
            "--secret",
            &secret,
            "--signature",
            &header("x-clockeye-signature"),
        ],
        &reserialized,
    );
    assert_eq!(changed.code, 1, "{changed:?}");
    assert!(changed.stdout.contains("body bytes differ"), "{changed:?}");
}

#[test]
fn listen_prints_each_webhook_and_forwards_relaying_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &local_flags("100ms"));
    let (endpoint_id, secret) =
        service.create_endpoint("http://127.0.0.1:9/placeholder", &["*"], None);

    // 1. A listener with the right secret, printing JSON lines.
    let listen = Lines::listen(&["--secret", &secret, "--json"]);
    let url = listen.url();
    let (status, _) = service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"url": format!("{url}/webhooks")}),
    );
    assert_eq!(status, 200);
    let accepted = service.send_sample("time_entry.created", json!({}));
    let event_id = accepted["id"].as_str().unwrap().to_string();
    let line = listen.wait_line("the webhook's line", |l| l.contains(&event_id));
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["type"], "time_entry.created");
    assert_eq!(line["attempt"], 1);
    assert_eq!(line["verified"], true, "{line}");
    assert_eq!(line["status"], 200);
    service.first_delivery(&accepted, "succeeded", std::time::Duration::from_secs(10));
    drop(listen);

    // 2. A listener answering 500: the service records it.
    let failing = Lines::listen(&["--status", "500"]);
    let url = failing.url();
    service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"url": format!("{url}/webhooks")}),
    );
    let accepted = service.send_sample("project.created", json!({}));
    let delivery = service.first_delivery(&accepted, "failed", std::time::Duration::from_secs(10));
    assert_eq!(delivery["attempts"][0]["status_code"], 500, "{delivery}");
    let line = failing.wait_line("the failed attempt's line", |l| l.contains("attempt 2"));
    assert!(
        line.contains("signature not checked (no --secret); → 500"),
        "{line}"
    );
    drop(failing);

    // 3. A listener with a wrong secret, forwarding to a receiver that fails once.
    let calls = AtomicUsize::new(0);
    let receiver = Receiver::start(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut reply = Reply::status(503);
            reply.body = "busy".into();
            reply
        } else {
            Reply::status(200)
        }
    });
    let target = format!("{}/target", receiver.url);
    let forwarder = Lines::listen(&["--secret", "whsec_wrong", "--forward-to", &target]);
    let url = forwarder.url();
    service.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"url": format!("{url}/webhooks")}),
    );
    let accepted = service.send_sample("user.invited", json!({}));
    let event_id = accepted["id"].as_str().unwrap().to_string();
    let delivery =
        service.first_delivery(&accepted, "succeeded", std::time::Duration::from_secs(10));
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["status_code"], 503, "{delivery}");
    assert_eq!(attempts[0]["response_excerpt"], "busy", "{delivery}");
    assert_eq!(attempts[1]["status_code"], 200, "{delivery}");

    let received = receiver.wait_for(2, std::time::Duration::from_secs(5));
    let event_json = &service.get(&format!("/v1/events/{event_id}")).1;
    for request in &received {
        assert_eq!(request.path, "/target");
        assert_eq!(request.json()["id"], event_json["id"]);
        assert_eq!(
            request.header("x-clockeye-signature"),
            Some(clockeye_signature(&secret, &request.body).as_str()),
            "the same body bytes and signature arrive"
        );
        assert!(request.header("webhook-signature").is_some());
    }
    let first = forwarder.wait_line("the first attempt's line", |l| {
        l.contains(&event_id) && l.contains("attempt 1")
    });
    assert!(first.contains("user.invited"), "{first}");
    assert!(
        first.contains("signature NOT verified: wrong secret"),
        "{first}"
    );
    assert!(first.contains("forwarded → 503"), "{first}");
    let second = forwarder.wait_line("the second attempt's line", |l| {
        l.contains(&event_id) && l.contains("attempt 2")
    });
    assert!(second.contains("forwarded → 200"), "{second}");
}

#[test]
fn listen_answers_502_when_the_forward_target_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}/down");
    let forwarder = Lines::listen(&["--forward-to", &target]);
    let response = util::client()
        .post(&format!("{}/hooks", forwarder.url()))
        .header("X-ClockEye-Event", "user.invited")
        .send(&b"{}"[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    let line = forwarder.wait_line("the forward's line", |l| l.contains("user.invited"));
    assert!(
        line.contains(&format!("forward failed: {target}")),
        "{line}"
    );
    assert!(line.ends_with("→ 502"), "{line}");
}

#[test]
fn every_command_has_help_with_examples() {
    let top = run(&["--help"], &[], None);
    assert_eq!(top.code, 0);
    for command in [
        "listen",
        "verify",
        "send",
        "endpoints list",
        "endpoints show",
        "endpoints add",
        "endpoints update",
        "endpoints remove",
        "endpoints rotate",
        "endpoints secret",
        "endpoints test",
        "deliveries list",
        "deliveries show",
        "deliveries retry",
        "recover",
        "workspaces tokens create",
        "workspaces tokens list",
        "workspaces tokens revoke",
        "portal-link",
        "completions",
    ] {
        assert!(top.stdout.contains(command), "{command} missing: {top:?}");
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("--help");
        let help = run(&args, &[], None);
        assert_eq!(help.code, 0, "{command}: {help:?}");
        assert!(help.stdout.contains("examples:"), "{command}: {help:?}");
        assert!(
            help.stdout
                .contains(&format!("usage: clockeye-webhooks {command}")),
            "{command}: {help:?}"
        );
        let mut via_help = vec!["help"];
        via_help.extend(command.split(' '));
        assert_eq!(run(&via_help, &[], None).stdout, help.stdout);
    }
    let unknown = run(&["endpoints", "frob"], &[], None);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("unknown command \"endpoints frob\"")
    );
}

#[test]
fn completions_are_valid_scripts_that_complete_commands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell], &[], None);
        assert_eq!(script.code, 0, "{script:?}");
        for word in [
            "listen",
            "verify",
            "endpoints",
            "rotate",
            "forward-to",
            "user.invited",
        ] {
            assert!(script.stdout.contains(word), "{shell}: {word}");
        }
    }
    assert_eq!(run(&["completions", "tcsh"], &[], None).code, 2);

    // bash runs it: complete a subcommand, a flag and a flag's value.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, run(&["completions", "bash"], &[], None).stdout).unwrap();
    let complete = |words: &str| {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _clockeye_webhooks; echo \"${{COMPREPLY[*]}}\"",
            file.display()
        );
        let output = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("clockeye-webhooks endpoints ro"), "rotate");
    assert_eq!(
        complete("clockeye-webhooks deliveries list --st"),
        "--status"
    );
    assert_eq!(
        complete("clockeye-webhooks deliveries list --status su"),
        "succeeded"
    );
    assert_eq!(complete("clockeye-webhooks send user.inv"), "user.invited");
    assert_eq!(
        complete("clockeye-webhooks serve --allow-h"),
        "--allow-http"
    );
    assert_eq!(complete("clockeye-webhooks li"), "listen");

    // zsh and fish check their scripts' syntax when installed; fish also completes.
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let file = dir.path().join(format!("completion.{shell}"));
        std::fs::write(&file, run(&["completions", shell], &[], None).stdout).unwrap();
        match Command::new(shell).arg(check).arg(&file).output() {
            Ok(output) => assert!(output.status.success(), "{shell}: {output:?}"),
            Err(_) => eprintln!("SKIPPED the {shell} syntax check: {shell} is not installed"),
        }
    }
    if let Ok(output) = Command::new("fish")
        .arg("-c")
        .arg(format!(
            "source {}; complete -C 'clockeye-webhooks endpoints ro'",
            dir.path().join("completion.fish").display()
        ))
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "rotate");
    }
}
