//! A private, throwaway Postgres cluster for the tests that run the service on Postgres: one per
//! test binary, started on first use, a fresh database per test, torn down when the test binary
//! exits. Never the system cluster: its data lives in `/tmp/clockeye-pg-*`, it listens on a free
//! port of 127.0.0.1 only, and it trusts only the `clockeye` role on loopback.
//!
//! Debian's server binaries are used (`/usr/lib/postgresql/VERSION/bin`); `.ci/run` installs
//! them. Without them these tests panic rather than skip. Postgres refuses to run as root, so
//! when the tests run as root the cluster's directory belongs to the `postgres` user and
//! `initdb`/`pg_ctl` run through `runuser`.
//!
//! Teardown is a `libc::atexit` hook (libtest ends with `exit()`, which runs it):
//! `pg_ctl -m immediate stop`, then the directory goes. A test binary killed outright leaves
//! the cluster behind; `.ci/run` kills and removes those (the pid in each
//! `/tmp/clockeye-pg-*/data/postmaster.pid`).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian puts each major version's server binaries.
const DEBIAN_POSTGRES_DIR: &str = "/usr/lib/postgresql";
/// The one role, made by `initdb -U`; trusted on loopback (`--auth=trust`).
pub const ROLE: &str = "clockeye";
/// The cluster's directory name starts with this, in `/tmp` (`.ci/run` cleans up by it).
pub const DIR_PREFIX: &str = "clockeye-pg-";
/// Room for several services per test, each with its pools, and tests running in parallel.
const CONNECTIONS_MAX: u32 = 400;
/// Free ports are picked by binding and dropping; another process may take one in between.
const START_TRIES_MAX: u32 = 3;
/// Bound on `initdb` and on each `psql` call (a hung one fails the test instead of hanging it).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// `pg_ctl -w` waits this long for the server to accept connections, and for it to stop.
const PG_CTL_WAIT_SECONDS: &str = "60";

/// The running cluster of this test binary.
#[derive(Debug)]
pub struct PgCluster {
    /// `/tmp/clockeye-pg-…`: `data/` (the cluster), `log` (the server's log), the socket.
    pub dir: PathBuf,
    pub port: u16,
    /// The postmaster's pid (first line of `data/postmaster.pid`).
    pub pid: u32,
    /// The server binaries' directory, e.g. `/usr/lib/postgresql/15/bin`.
    pub bin: PathBuf,
    /// From making the directory to `pg_ctl -w start` returning.
    pub started_in: Duration,
    /// `Some((uid, gid))` of `postgres` when we are root and the server runs as that user.
    owner: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();

/// This test binary's cluster, started by the first caller; later callers (any thread) wait
/// for that start and share it. A failed start fails every caller with the same message.
pub fn cluster() -> &'static PgCluster {
    match CLUSTER.get_or_init(PgCluster::start) {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

/// A fresh, empty database `t_<16 hex>` of the cluster; its URL
/// `postgres://clockeye@127.0.0.1:PORT/t_…`. Each test gets its own.
pub fn database() -> String {
    let cluster = cluster();
    let name = format!("t_{:016x}", super::rand_u64());
    psql(&cluster.url("postgres"), &format!("CREATE DATABASE {name}"));
    cluster.url(&name)
}

/// Runs `sql` on the database at `url` (`psql -At`, stopping at the first error); its stdout
/// without the last newline. Panics with psql's stderr when it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let bin = &cluster().bin;
    let mut command = Command::new(bin.join("psql"));
    command
        // No ~/.psqlrc; unaligned rows, no headers; a failed statement fails the command.
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10");
    let output = run(command, "psql", COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    if !output.status.success() {
        panic!(
            "psql failed ({}) running {sql:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .trim_end_matches('\n')
        .to_string()
}

impl PgCluster {
    /// `postgres://clockeye@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn start() -> Result<PgCluster, String> {
        let began = Instant::now();
        let bin = server_bin_dir()?;
        let owner = if is_root() {
            Some((postgres_id("-u")?, postgres_id("-g")?))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in("/tmp")
            .map_err(|e| format!("cannot make a directory for the Postgres test cluster: {e}"))?
            .keep();
        let mut cluster = PgCluster {
            dir,
            port: 0,
            pid: 0,
            bin,
            started_in: Duration::ZERO,
            owner,
        };
        match cluster.init_and_start() {
            Ok(()) => {
                cluster.started_in = began.elapsed();
                // SAFETY: `teardown` is a plain `extern "C" fn` that never unwinds.
                if unsafe { libc::atexit(teardown) } != 0 {
                    cluster.stop();
                    return Err("atexit refused the Postgres cluster's teardown hook".into());
                }
                Ok(cluster)
            }
            Err(message) => {
                cluster.stop();
                Err(message)
            }
        }
    }

    fn init_and_start(&mut self) -> Result<(), String> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {} to postgres: {e}", self.dir.display()))?;
        }
        let data = self.data_dir();
        let mut initdb = self.as_owner(&self.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            // The C collation compares bytes, as SQLite's BINARY does: the same ORDER BY on both.
            .args([
                "--auth=trust",
                "-U",
                ROLE,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]);
        let output = run(initdb, "initdb", COMMAND_TIMEOUT)?;
        if !output.status.success() {
            return Err(format!(
                "initdb failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let mut tries = 0;
        loop {
            tries += 1;
            self.port = free_port()?;
            match self.pg_ctl_start() {
                Ok(()) => break,
                // Someone took the port between our probe and the server's bind: another one.
                Err(message) if tries < START_TRIES_MAX && message.contains("could not bind") => {}
                Err(message) => return Err(message),
            }
        }
        let pid_file = data.join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("{}: {e}", pid_file.display()))?;
        self.pid = pid
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| format!("{} does not start with a pid", pid_file.display()))?;
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections={CONNECTIONS_MAX} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            port = self.port,
            dir = self.dir.display(),
        );
        let log = self.dir.join("log");
        let mut pg_ctl = self.as_owner(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t", PG_CTL_WAIT_SECONDS, "start"]);
        // pg_ctl's own wait (-t) bounds this; ours is a backstop.
        let output = run(pg_ctl, "pg_ctl start", COMMAND_TIMEOUT)?;
        if output.status.success() {
            return Ok(());
        }
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        // A failed start may still leave a server behind (a timed-out wait): stop it.
        self.pg_ctl_stop();
        Err(format!(
            "pg_ctl start failed ({}): {} {}; server log: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
            server_log.trim()
        ))
    }

    /// Stops the server as an operator's restart does (`pg_ctl -m fast stop`: sessions are
    /// ended with 57P01), keeping the cluster; `start_server` brings it back on the same port.
    /// For a test binary of its own: every test of the binary shares the cluster.
    pub fn stop_server(&self) {
        let mut pg_ctl = self.as_owner(&self.bin.join("pg_ctl"));
        pg_ctl.arg("-D").arg(self.data_dir()).args([
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_WAIT_SECONDS,
            "stop",
        ]);
        let output = run(pg_ctl, "pg_ctl stop", COMMAND_TIMEOUT).expect("pg_ctl stop runs");
        assert!(output.status.success(), "pg_ctl stop: {output:?}");
    }

    pub fn start_server(&self) {
        self.pg_ctl_start().expect("the server starts again");
    }

    /// `pg_ctl -m immediate stop` (waits for the exit); a server that outlives it gets SIGKILL.
    /// No unwinding and no threads: this also runs inside the atexit hook.
    fn pg_ctl_stop(&self) {
        let data = self.data_dir();
        if !data.join("postmaster.pid").exists() {
            return;
        }
        let mut pg_ctl = self.as_owner(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "-t", PG_CTL_WAIT_SECONDS, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let stopped = pg_ctl.status().is_ok_and(|status| status.success());
        if !stopped && self.pid > 0 {
            // SAFETY: kill(2) with a pid read from this cluster's own postmaster.pid.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }

    /// Stops the server and removes the directory.
    fn stop(&self) {
        self.pg_ctl_stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// `program` run as the cluster's owner: through `runuser -u postgres` when we are root.
    /// In the cluster's directory, which that user can read (it may not read our own).
    fn as_owner(&self, program: &Path) -> Command {
        let mut command = if self.owner.is_some() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(&self.dir);
        command
    }
}

/// The atexit hook: stops this binary's cluster and removes its directory.
extern "C" fn teardown() {
    // Never unwind out of an `extern "C"` fn: a panic here would abort the exit.
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(cluster)) = CLUSTER.get() {
            cluster.stop();
        }
    });
}

/// The highest version's `bin` directory under /usr/lib/postgresql with initdb, pg_ctl and psql.
fn server_bin_dir() -> Result<PathBuf, String> {
    let absent = || {
        format!(
            "Postgres tests need Debian's postgresql: run .ci/run (it installs it); \
             no {DEBIAN_POSTGRES_DIR}/*/bin/initdb was found"
        )
    };
    let entries = std::fs::read_dir(DEBIAN_POSTGRES_DIR).map_err(|_| absent())?;
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            // "15", "9.6": compared as numbers, so 10 is above 9.6.
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "psql"]
                .iter()
                .all(|name| bin.join(name).is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(absent)
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// `id -u postgres` or `id -g postgres`.
fn postgres_id(flag: &str) -> Result<u32, String> {
    let output = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .map_err(|e| format!("id {flag} postgres: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!(
                "the tests run as root, so the Postgres cluster runs as the postgres user, \
                 but `id {flag} postgres` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}

/// Runs `command` to its end with its output captured; kills it after `timeout`.
fn run(mut command: Command, what: &str, timeout: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what} did not start: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
