//! Running the command-line tools as processes: one-shot commands with their output, and
//! long-running ones (`listen`, receivers in node or python) whose stdout lines are collected.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ADMIN_TOKEN, BIN, Service, eventually};

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs the binary with `args`, no CLOCKEYE_* variables but `env`, and `stdin`.
pub fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("CLOCKEYE_SERVER")
        .env_remove("CLOCKEYE_TOKEN")
        .env_remove("CLOCKEYE_SECRET")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a client command against `service` with the admin token from the environment.
pub fn client(service: &Service, args: &[&str]) -> Run {
    client_with_stdin(service, args, None)
}

pub fn client_with_stdin(service: &Service, args: &[&str], stdin: Option<&[u8]>) -> Run {
    run(
        args,
        &[
            ("CLOCKEYE_SERVER", service.base.as_str()),
            ("CLOCKEYE_TOKEN", ADMIN_TOKEN),
        ],
        stdin,
    )
}

/// A long-running process whose stdout lines are collected as they come.
pub struct Lines {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    pub fn spawn(mut command: Command) -> Lines {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line);
            }
        });
        Lines { child, lines }
    }

    /// Starts `clockeye-webhooks listen --port 0 ARGS`.
    pub fn listen(args: &[&str]) -> Lines {
        let mut command = Command::new(BIN);
        command
            .args(["listen", "--port", "0"])
            .args(args)
            .env_remove("CLOCKEYE_SECRET");
        Lines::spawn(command)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for the first line matching `found`; returns it.
    pub fn wait_line(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        eventually(what, Duration::from_secs(20), || {
            let lines = self.lines();
            lines
                .iter()
                .find(|line| found(line))
                .cloned()
                .ok_or_else(|| format!("{lines:?}"))
        })
    }

    /// The URL of a `listening on http://…` line.
    pub fn url(&self) -> String {
        self.wait_line("the listening line", |l| l.starts_with("listening on "))
            .strip_prefix("listening on ")
            .unwrap()
            .to_string()
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
