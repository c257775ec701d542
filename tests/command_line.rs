//! The command line as one definition: global flags on either side of the command, one-line
//! usage errors for every command, `-h` and `-V` everywhere, completions for every command's
//! flags, environment variables for `backup` too.

mod util;

use std::process::Command;

use util::cli::run;
use util::{ADMIN_TOKEN, Service};

#[test]
fn global_flags_work_before_and_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let base = service.base.as_str();
    let orders: [&[&str]; 4] = [
        &[
            "--server",
            base,
            "--token",
            ADMIN_TOKEN,
            "--json",
            "endpoints",
            "list",
        ],
        &[
            "endpoints",
            "list",
            "--server",
            base,
            "--token",
            ADMIN_TOKEN,
            "--json",
        ],
        &[
            "-t",
            ADMIN_TOKEN,
            "endpoints",
            "-j",
            "list",
            "--server",
            base,
        ],
        &[
            "--json",
            "--server",
            base,
            "deliveries",
            "list",
            "-t",
            ADMIN_TOKEN,
        ],
    ];
    for args in orders {
        let listed = run(args, &[], None);
        assert_eq!(listed.code, 0, "{args:?}: {listed:?}");
        assert!(listed.json()["data"].is_array(), "{args:?}: {listed:?}");
    }

    // A token given before the command is the one used, and wins over CLOCKEYE_TOKEN.
    let refused = run(
        &["--token", "cew_nope", "endpoints", "list", "--server", base],
        &[("CLOCKEYE_TOKEN", ADMIN_TOKEN)],
        None,
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("401"), "{refused:?}");
}

#[test]
fn every_command_answers_a_usage_error_with_one_line_and_exit_2() {
    let cases: [(&[&str], &str); 15] = [
        (&["endpoints", "list", "--frob"], "unknown flag --frob"),
        (
            &["bench", "--receiver-url", "http://10.0.0.1:8080"],
            "--receiver-url: \"http://10.0.0.1:8080\": the receiver must be on a loopback address",
        ),
        (
            &["bench", "--receiver-url", "https://127.0.0.1:8443"],
            "--receiver-url: \"https://127.0.0.1:8443\" is not an http:// URL",
        ),
        (&["--frob", "endpoints", "list"], "unknown flag --frob"),
        (
            &["bench", "--runs", "0"],
            "--runs: \"0\" is not a positive whole number",
        ),
        (&["bench", "--frob"], "unknown flag --frob"),
        (&["backup"], "backup needs PATH"),
        (&["backup", "a.db", "b.db"], "unexpected argument \"b.db\""),
        (
            &["deliveries", "list", "--status", "lost"],
            "--status: \"lost\" is not one of",
        ),
        (
            &["serve", "--allow-http=yes"],
            "--allow-http takes no value",
        ),
        (
            &["endpoints", "list", "--json=true"],
            "--json takes no value",
        ),
        (
            &["serve", "--json"],
            "--json is for the commands that call the API",
        ),
        (&["help", "frob"], "unknown command \"frob\""),
        (&["endpoints", "show"], "endpoints show needs ID"),
        (
            &["completions", "tcsh"],
            "\"tcsh\" is not one of: bash, zsh, fish",
        ),
    ];
    for (args, expected) in cases {
        let result = run(args, &[], None);
        assert_eq!(result.code, 2, "{args:?}: {result:?}");
        assert_eq!(result.stderr.lines().count(), 1, "{args:?}: {result:?}");
        assert!(
            result.stderr.starts_with("clockeye-webhooks: "),
            "{args:?}: {result:?}"
        );
        assert!(result.stderr.contains(expected), "{args:?}: {result:?}");
        assert!(result.stdout.is_empty(), "{args:?}: {result:?}");
    }
}

#[test]
fn dash_h_and_dash_capital_v_work_everywhere() {
    let version = format!("clockeye-webhooks {}\n", env!("CARGO_PKG_VERSION"));
    let asks: [&[&str]; 7] = [
        &["-V"],
        &["--version"],
        &["version"],
        &["serve", "-V"],
        &["bench", "-V"],
        &["endpoints", "list", "-V"],
        &["deliveries", "-V"],
    ];
    for args in asks {
        let result = run(args, &[], None);
        assert_eq!(result.code, 0, "{args:?}: {result:?}");
        assert_eq!(result.stdout, version, "{args:?}");
    }
    let helps: [(&[&str], &str); 6] = [
        (&["-h"], "usage:"),
        (&["serve", "-h"], "CLOCKEYE_RETRY_SCHEDULE"),
        (&["bench", "-h"], "examples:"),
        (&["backup", "-h"], "example:"),
        (&["deliveries", "retry", "-h"], "examples:"),
        (&["listen", "-h"], "examples:"),
    ];
    for (args, expected) in helps {
        let result = run(args, &[], None);
        assert_eq!(result.code, 0, "{args:?}: {result:?}");
        assert!(result.stdout.contains(expected), "{args:?}: {result:?}");
        assert!(result.stderr.is_empty(), "{args:?}: {result:?}");
    }
}

#[test]
fn completions_offer_the_flags_of_bench_backup_and_serve() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell], &[], None);
        assert_eq!(script.code, 0, "{script:?}");
        for word in [
            "soak-minutes",
            "serve-flag",
            "allow-private-networks",
            "log-format",
            "backup",
        ] {
            assert!(script.stdout.contains(word), "{shell}: {word}");
        }
    }
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
    assert_eq!(
        complete("clockeye-webhooks bench --soak-m"),
        "--soak-minutes"
    );
    assert_eq!(complete("clockeye-webhooks backup --d"), "--db");
    assert_eq!(
        complete("clockeye-webhooks endpoints list --tok"),
        "--token"
    );
    assert_eq!(complete("clockeye-webhooks serve --log-format j"), "json");
}

#[test]
fn backup_reads_its_database_from_clockeye_db() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let copy = dir.path().join("copy.db");
    let result = run(
        &["backup", copy.to_str().unwrap()],
        &[("CLOCKEYE_DB", missing.to_str().unwrap())],
        None,
    );
    assert_eq!(result.code, 1, "{result:?}");
    assert!(
        result
            .stderr
            .contains(&format!("no database at {}", missing.display())),
        "{result:?}"
    );
}
