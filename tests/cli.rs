//! The command line: flags, environment, help, first start, signals.

mod util;

use std::process::Command;
use std::time::Duration;

use util::{ADMIN_TOKEN, BIN, Service};

/// Arguments, environment, the expected stderr.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_flags_and_values_exit_2_with_one_clear_line() {
    let cases: [Case; 6] = [
        (
            &["serve", "--retry-schedule", "5x"],
            &[],
            "--retry-schedule: \"5x\" is not a duration",
        ),
        (
            &["serve", "--workers", "many"],
            &[],
            "--workers: \"many\" is not a whole number",
        ),
        (
            &["serve", "--no-such-flag"],
            &[],
            "unknown flag --no-such-flag",
        ),
        (
            &["serve", "--listen", "localhost"],
            &[],
            "--listen: \"localhost\" is not an address",
        ),
        (
            &["serve"],
            &[("CLOCKEYE_ATTEMPT_TIMEOUT", "soon")],
            "--attempt-timeout: \"soon\" is not a duration",
        ),
        (&["launch"], &[], "unknown command \"launch\""),
    ];
    for (args, env, expected) in cases {
        let output = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let output = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--db",
        "--admin-token",
        "--workers",
        "--retry-schedule",
        "--attempt-timeout",
        "--allow-http",
        "--allow-private-networks",
        "--allow-network",
        "--max-event-bytes",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
        let env = format!(
            "CLOCKEYE_{}",
            flag.trim_start_matches("--")
                .to_uppercase()
                .replace('-', "_")
        );
        assert!(help.contains(&env), "{env} missing from help");
    }
}

/// Starts `serve` on `db` without --admin-token; returns it with its stdout lines after the
/// first, and the base URL.
fn start_without_token(
    db: &std::path::Path,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    String,
) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    let base = listening.strip_prefix("listening on ").unwrap().to_string();
    (child, lines, base)
}

#[test]
fn the_first_start_shows_a_generated_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("first.db");
    let (mut child, mut lines, base) = start_without_token(&db);
    let token = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("admin token: ")
        .unwrap()
        .to_string();
    assert!(token.len() >= 32, "{token}");
    let agent = util::client();
    let status = |base: &str, token: &str| {
        agent
            .get(&format!("{base}/v1/endpoints"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&base, &token), 200);
    assert_eq!(status(&base, "cew_admin_wrong"), 401);
    let _ = child.kill();
    let _ = child.wait();

    // Second start on the same database: the token is not shown again, and still works.
    let (mut child, mut lines, base) = start_without_token(&db);
    let second = lines.next().unwrap().unwrap();
    assert!(!second.contains(&token), "{second}");
    assert_eq!(status(&base, &token), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &[]);
    let (status, _) = service.request("GET", "/v1/endpoints", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200);
    let exit = service.terminate(Duration::from_secs(15));
    assert_eq!(exit.code(), Some(0), "{}", service.stderr());
    assert!(service.stderr().contains("stopped"));
}
