//! schemathesis (PyPI) fuzzes the live binary from its own `/openapi.json`: no 5xx, and every
//! status, content type, header and body as documented. It creates endpoints with URLs it
//! makes up, which the service would resolve, so both run in a network namespace of their own
//! with only loopback (`unshare -n`): nothing can leave the machine.
//!
//! `.ci/run` installs schemathesis into /opt/schemathesis. Elsewhere the test says SKIPPED when
//! schemathesis or user namespaces are missing; under CI=true it fails instead.

mod util;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::BIN;

const SCHEMATHESIS_VENV: &str = "/opt/schemathesis/bin/schemathesis";
const DEADLINE: Duration = Duration::from_secs(300);
/// Checks that need no knowledge of which made-up inputs are valid (those two are left out:
/// schemathesis cannot know, for one, that `https://0.com` is refused by the address policy).
const EXCLUDED_CHECKS: &str = "positive_data_acceptance,negative_data_rejection";

fn unavailable(why: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{why}; .ci/run installs what this test needs");
    }
    eprintln!("SKIPPED: {why}");
}

fn schemathesis() -> Option<PathBuf> {
    if PathBuf::from(SCHEMATHESIS_VENV).is_file() {
        return Some(SCHEMATHESIS_VENV.into());
    }
    let found = Command::new("sh")
        .args(["-c", "command -v schemathesis"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (found.status.success() && !path.is_empty()).then(|| path.into())
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let Some(schemathesis) = schemathesis() else {
        return unavailable("schemathesis is not installed");
    };
    // Root makes a network namespace directly; anyone else through a user namespace.
    let Some(unshare_flags) = ["-n", "-rn"].into_iter().find(|flags| {
        Command::new("unshare")
            .args([flags, "ip", "link", "set", "lo", "up"])
            .output()
            .is_ok_and(|output| output.status.success())
    }) else {
        return unavailable("cannot make a network namespace (unshare -n or -rn, and ip)");
    };
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"set -u
ip link set lo up
"{bin}" serve --db "{dir}/fuzz.db" --listen 127.0.0.1:7740 --admin-token fuzz-admin-token-0123 \
    --retry-schedule 1s --attempt-timeout 1s > "{dir}/serve.out" 2> "{dir}/serve.err" &
SERVE=$!
"{schemathesis}" run http://127.0.0.1:7740/openapi.json --wait-for-schema 30 \
    -H "Authorization: Bearer fuzz-admin-token-0123" --checks all --exclude-checks {EXCLUDED_CHECKS} \
    --max-examples 20 --workers 1 --seed 1 --no-color > "{dir}/schemathesis.out" 2>&1
STATUS=$?
kill -TERM $SERVE
wait $SERVE
SERVE_STATUS=$?
echo "service exit status: $SERVE_STATUS"
[ $SERVE_STATUS -eq 0 ] || exit 3
exit $STATUS
"#,
        bin = BIN,
        dir = dir.path().display(),
        schemathesis = schemathesis.display(),
    );
    let mut child = Command::new("unshare")
        .args([unshare_flags, "sh", "-c", &script])
        // schemathesis keeps a cache in its working directory.
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = util::eventually("schemathesis to finish", DEADLINE, || {
        child
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("running for {:?}", started.elapsed()))
    });
    let output = child.wait_with_output().unwrap();
    let stdout = std::fs::read_to_string(dir.path().join("schemathesis.out")).unwrap_or_default();
    let tail: String = stdout
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let service_log = std::fs::read_to_string(dir.path().join("serve.err")).unwrap_or_default();
    assert!(
        status.success(),
        "schemathesis failed ({status}):\n{tail}\n{}\nservice log (errors and warnings, then the last lines):\n{}",
        String::from_utf8_lossy(&output.stderr),
        service_log
            .lines()
            .filter(|line| line.contains("ERROR") || line.contains("WARN"))
            .chain(service_log.lines().rev().take(10))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stdout.contains("passed"), "{tail}");
    assert!(!service_log.contains("panicked"), "{service_log}");
}
