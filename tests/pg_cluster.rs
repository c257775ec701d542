//! The Postgres test harness itself (`util/pg.rs`): this test binary's private cluster starts,
//! gives each test its own database, listens on loopback only, is not the system cluster, and
//! is stopped and removed when the test binary exits. `both_backends!` names its tests after
//! the backend and hands each its own database; a service restarted on its `db_arg` finds its data.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::pg;
use util::{BIN, Backend, Receiver, Service, eventually, loopback_flags};

/// The line the first test prints; the teardown test reads it from a child test binary.
const CLUSTER_LINE: &str = "pg cluster:";

#[test]
fn the_cluster_starts_with_the_settings_the_tests_rely_on() {
    let cluster = pg::cluster();
    println!(
        "{CLUSTER_LINE} dir={} port={} pid={} bin={} started_in_ms={}",
        cluster.dir.display(),
        cluster.port,
        cluster.pid,
        cluster.bin.display(),
        cluster.started_in.as_millis()
    );
    let url = cluster.url("postgres");
    let version = pg::psql(&url, "SELECT version()");
    assert!(version.starts_with("PostgreSQL "), "version: {version}");
    let settings = pg::psql(
        &url,
        "SELECT current_user, current_setting('max_connections'), current_setting('fsync'), \
         current_setting('synchronous_commit'), current_setting('full_page_writes'), \
         datcollate, pg_encoding_to_char(encoding) \
         FROM pg_database WHERE datname = 'postgres'",
    );
    assert_eq!(settings, "clockeye|400|off|off|off|C|UTF8");
}

#[test]
fn each_database_call_gives_a_distinct_database_that_exists() {
    pg::cluster();
    let began = Instant::now();
    let first = pg::database();
    let second = pg::database();
    println!("two databases made in {} ms", began.elapsed().as_millis());
    assert_ne!(first, second);
    let port = pg::cluster().port;
    for url in [&first, &second] {
        let name = url
            .strip_prefix(&format!("postgres://clockeye@127.0.0.1:{port}/"))
            .unwrap_or_else(|| panic!("unexpected URL {url}"));
        assert!(
            name.len() == 18
                && name.starts_with("t_")
                && name[2..].bytes().all(|b| b.is_ascii_hexdigit()),
            "database name {name}"
        );
        assert_eq!(pg::psql(url, "SELECT 1"), "1");
        assert_eq!(pg::psql(url, "SELECT current_database()"), name);
        // Fresh: nothing of another test's in it.
        assert_eq!(
            pg::psql(
                url,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ),
            "0"
        );
    }
    // What one test writes, the other's database does not see.
    pg::psql(&first, "CREATE TABLE mine (id integer)");
    assert_eq!(pg::psql(&second, "SELECT to_regclass('mine') IS NULL"), "t");
}

#[test]
fn the_server_listens_on_loopback_only() {
    let cluster = pg::cluster();
    let url = cluster.url("postgres");
    assert_eq!(pg::psql(&url, "SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(pg::psql(&url, "SELECT inet_server_addr()"), "127.0.0.1");
    // Every listening TCP socket on the cluster's port, as the kernel lists them.
    let listening = listening_addresses(cluster.port);
    assert_eq!(
        listening,
        vec!["0100007F".to_string()],
        "sockets listening on port {} (hex addresses from /proc/net/tcp and tcp6)",
        cluster.port
    );
}

#[test]
fn it_is_a_private_cluster_in_a_temp_dir_not_the_system_one() {
    let cluster = pg::cluster();
    assert!(
        cluster.dir.starts_with("/tmp")
            && cluster
                .dir
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(pg::DIR_PREFIX)),
        "cluster dir {}",
        cluster.dir.display()
    );
    let url = cluster.url("postgres");
    assert_eq!(
        PathBuf::from(pg::psql(&url, "SHOW data_directory")),
        cluster.data_dir()
    );
    assert_eq!(pg::psql(&url, "SHOW port"), cluster.port.to_string());
    assert_eq!(
        pg::psql(&url, "SHOW unix_socket_directories"),
        cluster.dir.display().to_string()
    );
    // The postmaster we talk to is the one this harness started.
    let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
    assert_eq!(
        pid_file.lines().next(),
        Some(cluster.pid.to_string().as_str())
    );
    assert!(Path::new(&format!("/proc/{}", cluster.pid)).exists());
}

#[test]
fn the_cluster_is_stopped_and_removed_when_the_test_binary_exits() {
    // A child run of this test binary starts its own cluster in one test, then exits.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_cluster_starts_with_the_settings_the_tests_rely_on",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child test binary: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // libtest writes the test's name first, on the same line.
    let line = stdout
        .lines()
        .find_map(|line| line.find(CLUSTER_LINE).map(|at| &line[at..]))
        .unwrap_or_else(|| panic!("no {CLUSTER_LINE:?} line in {stdout}"));
    let field = |name: &str| {
        line.split(' ')
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
            .to_string()
    };
    let dir = PathBuf::from(field("dir"));
    let pid = field("pid");
    assert!(
        dir.starts_with("/tmp") && !dir.exists(),
        "{} is still there after the test binary exited",
        dir.display()
    );
    // The postmaster was stopped before exit() returned; once gone, at most a zombie waits.
    let state = process_state(&pid);
    assert!(
        state.is_none() || state == Some('Z'),
        "postmaster {pid} is still running (state {state:?})"
    );
}

#[test]
fn both_backends_makes_a_test_per_backend_named_after_it() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--list", "each_backend_gets_a_database_of_its_own"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut tests: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test").map(str::to_string))
        .collect();
    tests.sort();
    assert_eq!(
        tests,
        [
            "each_backend_gets_a_database_of_its_own_postgres",
            "each_backend_gets_a_database_of_its_own_sqlite",
        ]
    );
}

fn each_backend_gets_a_database_of_its_own(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let first = backend.db_arg(dir.path());
    match backend {
        Backend::Sqlite => assert_eq!(PathBuf::from(&first), dir.path().join("webhooks.db")),
        Backend::Postgres => {
            assert!(
                first.starts_with("postgres://clockeye@127.0.0.1:"),
                "{first}"
            );
            assert_eq!(pg::psql(&first, "SELECT 1"), "1");
            assert_ne!(backend.db_arg(dir.path()), first);
        }
    }
}
both_backends!(each_backend_gets_a_database_of_its_own);

// SQLite only until the Postgres backend lands; then `both_backends!` on it.
#[test]
fn a_service_restarted_on_its_db_arg_finds_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let flags = loopback_flags("1s");
    let mut first = Service::start_backend(Backend::Sqlite, dir.path(), &flags);
    assert_eq!(first.db, dir.path().join("webhooks.db"));
    assert_eq!(PathBuf::from(&first.db_arg), first.db);
    let (endpoint_id, _) = first.create_endpoint(&receiver.url, &["user.invited"], None);
    first.kill();
    let second = Service::start_db(dir.path(), &first.db_arg, &flags);
    let (status, endpoint) = second.get(&format!("/v1/endpoints/{endpoint_id}"));
    assert_eq!(status, 200, "{endpoint}");
}

/// A Postgres URL that does not parse is a usage error (exit 2), one that cannot be reached
/// stops the start (exit 1); neither line shows the password.
#[test]
fn a_bad_or_unreachable_postgres_url_is_refused_without_echoing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |url: &str| -> (Option<i32>, String) {
        let stderr_path = dir.path().join(format!("stderr-{}.log", util::rand_u64()));
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", url])
            .args(["--admin-token", util::ADMIN_TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let status = eventually("the service to exit", Duration::from_secs(30), || {
            child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_string())
        });
        (
            status.code(),
            std::fs::read_to_string(&stderr_path).unwrap(),
        )
    };
    let (code, stderr) = run("postgres://clockeye:sekrit-pw@127.0.0.1:notaport/hooks");
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("--db"), "stderr: {stderr}");
    assert!(!stderr.contains("sekrit-pw"), "stderr: {stderr}");
    // Port 1 on loopback: nothing listens there.
    let (code, stderr) = run("postgres://clockeye:sekrit-pw@127.0.0.1:1/hooks");
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot connect to postgres://clockeye:***@127.0.0.1:1/hooks"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("sekrit-pw"), "stderr: {stderr}");
}

/// Hex local addresses of the TCP sockets in LISTEN state on `port`, from /proc/net/tcp{,6}.
fn listening_addresses(port: u16) -> Vec<String> {
    let port_hex = format!("{port:04X}");
    let mut addresses = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st …; "0A" is LISTEN.
            let Some((address, local_port)) = fields.get(1).and_then(|f| f.split_once(':')) else {
                continue;
            };
            if local_port == port_hex && fields.get(3) == Some(&"0A") {
                addresses.push(address.to_string());
            }
        }
    }
    addresses
}

/// The state letter in /proc/PID/stat (R, S, Z, …), or None when there is no such process.
fn process_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S …": the comm may hold spaces and parentheses, the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}
