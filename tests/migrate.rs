//! `clockeye-webhooks migrate --from FILE --to postgres://…` (README, "Moving to Postgres:
//! migrate"): a stopped SQLite service's rows arrive in an empty Postgres database unchanged (seqs
//! and ids kept, in-flight deliveries pending again), the copy is all or nothing, and it refuses a
//! target that is not empty, a file a service still runs on, an old file, a bad URL (without
//! echoing its password). `backup` refuses a Postgres URL.

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use util::pg;
use util::{BIN, Receiver, Reply, Service, eventually, loopback_flags};

const WAIT: Duration = Duration::from_secs(20);

/// The tables `migrate` copies, in its order.
const TABLES: &[&str] = &[
    "meta",
    "endpoints",
    "events",
    "deliveries",
    "attempts",
    "tokens",
    "portal_codes",
];

fn migrate(from: &Path, to: &str) -> Output {
    Command::new(BIN)
        .args(["migrate", "--from"])
        .arg(from)
        .args(["--to", to])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// `url` with a password added: the cluster trusts loopback, so it is never checked, but it
/// must never be printed.
fn with_password(url: &str) -> String {
    url.replacen("clockeye@", "clockeye:sekrit-pw@", 1)
}

/// Runs `sql` on the SQLite file: rows as psql -At prints them (`|` between columns, NULL as
/// an empty field, blobs as upper-case hex).
fn sqlite_rows(file: &Path, sql: &str) -> String {
    let conn = rusqlite::Connection::open(file).unwrap();
    let mut statement = conn.prepare(sql).unwrap();
    let width = statement.column_count();
    let mut rows = statement.query([]).unwrap();
    let mut lines = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let fields: Vec<String> = (0..width)
            .map(|at| match row.get_ref(at).unwrap() {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Real(x) => x.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).to_string(),
                rusqlite::types::ValueRef::Blob(b) => {
                    b.iter().map(|byte| format!("{byte:02X}")).collect()
                }
            })
            .collect();
        lines.push(fields.join("|"));
    }
    lines.join("\n")
}

fn sqlite_count(file: &Path, table: &str) -> i64 {
    sqlite_rows(file, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

/// Each table's rows, column for column, as (SQLite query, Postgres query). Deliveries that
/// were in flight are expected pending; their times are compared apart.
fn comparisons(file: &Path) -> Vec<(String, String, String)> {
    TABLES
        .iter()
        .map(|table| {
            let columns: Vec<String> = sqlite_rows(
                file,
                &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            )
            .lines()
            .map(str::to_string)
            .collect();
            let pick = |sqlite: bool| {
                columns
                    .iter()
                    .filter(|column| {
                        *table != "deliveries"
                            || !["next_attempt_at_ms", "updated_at_ms", "lease_expires_at_ms"]
                                .contains(&column.as_str())
                    })
                    .map(|column| match (column.as_str(), sqlite) {
                        ("body", true) => "hex(body)".to_string(),
                        ("body", false) => "upper(encode(body, 'hex'))".to_string(),
                        ("status", true) if *table == "deliveries" => {
                            "CASE WHEN status = 'delivering' THEN 'pending' ELSE status END"
                                .to_string()
                        }
                        _ => column.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let order = if columns.iter().any(|c| c == "seq") {
                "seq".to_string()
            } else {
                columns[0].clone()
            };
            (
                table.to_string(),
                format!("SELECT {} FROM {table} ORDER BY {order}", pick(true)),
                format!("SELECT {} FROM {table} ORDER BY {order}", pick(false)),
            )
        })
        .collect()
}

/// `serve` on `db_arg` without `--admin-token` (the harness always gives one): the admin
/// token is the one in the database's `meta`, or one made now. Killed on drop.
struct PlainService {
    child: std::process::Child,
    base: String,
    /// The rest of its stdout, line by line.
    lines: std::sync::mpsc::Receiver<String>,
}

impl PlainService {
    fn start(dir: &Path, db_arg: &str, extra: &[&str]) -> PlainService {
        let log = dir.join(format!("plain-{:016x}.log", util::rand_u64()));
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db_arg])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let Ok(first) = lines.recv_timeout(WAIT) else {
            let _ = child.kill();
            panic!(
                "serve did not start; stderr: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {first:?}"))
            .to_string();
        PlainService { child, base, lines }
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json");
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let mut response = util::client()
            .run(request.body(body.into_bytes()).unwrap())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (response.status().as_u16(), value)
    }
}

impl Drop for PlainService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts serve on the file without `--admin-token`, so it makes one and keeps its hash in
/// `meta` (as a first start does); the token, then the service is stopped.
fn first_start_admin_token(dir: &Path, file: &Path) -> String {
    let service = PlainService::start(dir, file.to_str().unwrap(), &[]);
    let line = service
        .lines
        .recv_timeout(WAIT)
        .expect("the first start prints a token");
    line.strip_prefix("admin token: ")
        .unwrap_or_else(|| panic!("second line was {line:?}"))
        .to_string()
}

/// What the API lists (each fits in one page), without what is not stored (an endpoint's
/// adaptive window): the same before and after the move.
fn lists(get: impl Fn(&str) -> (u16, Value)) -> Vec<(&'static str, Vec<Value>)> {
    [
        "/v1/endpoints?limit=500",
        "/v1/events?limit=500",
        "/v1/deliveries?limit=500",
        "/v1/workspaces/acme/tokens",
    ]
    .into_iter()
    .map(|path| {
        let (status, page) = get(path);
        assert_eq!(status, 200, "{path}: {page}");
        let mut items = page["data"].as_array().cloned().unwrap_or_default();
        for item in &mut items {
            if let Some(object) = item.as_object_mut() {
                object.remove("window");
            }
        }
        (path, items)
    })
    .collect()
}

#[test]
fn a_stopped_sqlite_service_moves_into_an_empty_postgres_database_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.db");
    let admin_token = first_start_admin_token(dir.path(), &file);
    assert!(admin_token.starts_with("cew_admin"), "{admin_token}");

    let failing = Receiver::start(|_| Reply::status(500));
    // Holds its first attempt until the service is killed (that delivery stays `delivering`),
    // then answers at once.
    let answered = AtomicUsize::new(0);
    let slow = Receiver::start(move |_| match answered.fetch_add(1, Ordering::SeqCst) {
        0 => Reply {
            delay: Duration::from_secs(60),
            ..Reply::status(200)
        },
        _ => Reply::status(200),
    });
    let later = Receiver::ok();
    let mut flags = loopback_flags("100ms");
    flags.extend(["--attempt-timeout", "60s"]);
    let mut service = Service::start_db(dir.path(), file.to_str().unwrap(), &flags);

    // A: custom headers, a rate limit, a secret rotated with an overlap; its receiver fails.
    let (status, a) = service.post(
        "/v1/endpoints",
        &json!({"url": failing.url, "events": ["project.created"],
                "headers": {"X-Team": "hooks"}, "rate_limit": 50, "description": "failing"}),
    );
    assert_eq!(status, 201, "{a}");
    let a_id = a["id"].as_str().unwrap().to_string();
    let (status, rotated) = service.post(
        &format!("/v1/endpoints/{a_id}/rotate-secret"),
        &json!({"overlap": "1h"}),
    );
    assert_eq!(status, 200, "{rotated}");
    // B, in workspace acme: disabled, so its deliveries wait as pending.
    let (b_id, _) = service.create_endpoint(&later.url, &["*"], Some("acme"));
    let (status, disabled) = service.patch(
        &format!("/v1/endpoints/{b_id}"),
        &json!({"enabled": false, "ordering": "subject"}),
    );
    assert_eq!(status, 200, "{disabled}");
    // C: its one attempt is in flight when the service dies.
    let (c_id, _) = service.create_endpoint(&slow.url, &["user.invited"], None);
    let (status, token) = service.post(
        "/v1/workspaces/acme/tokens",
        &json!({"description": "acme portal"}),
    );
    assert_eq!(status, 201, "{token}");
    let workspace_token = token["token"].as_str().unwrap().to_string();
    let (status, link) = service.post("/v1/workspaces/acme/portal-links", &json!({}));
    assert_eq!(status, 201, "{link}");

    for _ in 0..2 {
        let accepted = service.send_sample("project.created", json!({}));
        service.first_delivery(&accepted, "failed", WAIT);
        service.send_sample("project.created", json!({"workspace_id": "acme"}));
    }
    let in_flight = service.send_sample("user.invited", json!({}));
    let in_flight_id = in_flight["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    slow.wait_for(1, WAIT);
    let before = lists(|path| service.get(path));
    service.kill();
    drop(failing);

    let in_flight_seq: i64 = sqlite_rows(
        &file,
        &format!(
            "SELECT seq FROM deliveries WHERE id = '{in_flight_id}' AND status = 'delivering'"
        ),
    )
    .parse()
    .expect("the killed service left its attempt in flight");
    let counts: Vec<i64> = TABLES.iter().map(|t| sqlite_count(&file, t)).collect();
    assert_eq!(counts, [1, 3, 5, 5, 4, 1, 1], "rows in {TABLES:?}");
    assert_eq!(
        sqlite_rows(
            &file,
            "SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status"
        ),
        "delivering|1\nfailed|2\npending|2"
    );

    let url = pg::database();
    let target = with_password(&url);

    // A NUL byte (which Postgres text cannot hold) in a response refuses the whole copy.
    let (attempt_seq, excerpt) = {
        let conn = rusqlite::Connection::open(&file).unwrap();
        let row: (i64, Option<String>) = conn
            .query_row(
                "SELECT seq, response_excerpt FROM attempts ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        conn.execute(
            "UPDATE attempts SET response_excerpt = 'a' || char(0) || 'b' WHERE seq = ?1",
            [row.0],
        )
        .unwrap();
        row
    };
    let refused = migrate(&file, &target);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("attempts seq {attempt_seq}")) && stderr.contains("NUL"),
        "{stderr}"
    );
    assert_eq!(
        pg::psql(&url, "SELECT count(*) FROM endpoints"),
        "0",
        "rolled back"
    );
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute(
            "UPDATE attempts SET response_excerpt = ?1 WHERE seq = ?2",
            rusqlite::params![excerpt, attempt_seq],
        )
        .unwrap();

    let before_ms = now_ms();
    let copied = migrate(&file, &target);
    let after_ms = now_ms();
    let stdout = text(&copied.stdout);
    assert!(copied.status.success(), "{}{stdout}", text(&copied.stderr));
    let expected: Vec<String> = TABLES
        .iter()
        .zip(&counts)
        .map(|(table, count)| match *table {
            "deliveries" => format!("{table}: {count} copied (1 in flight made pending)"),
            _ => format!("{table}: {count} copied"),
        })
        .collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
    assert!(!stdout.contains("sekrit-pw"));

    // Row for row, column for column.
    for (table, sqlite_sql, postgres_sql) in comparisons(&file) {
        let source = sqlite_rows(&file, &sqlite_sql);
        assert!(!source.is_empty(), "{table} has rows to compare");
        assert_eq!(pg::psql(&url, &postgres_sql), source, "{table}");
    }
    let times = "SELECT seq, next_attempt_at_ms, updated_at_ms, lease_expires_at_ms \
                 FROM deliveries WHERE status <> 'delivering' ORDER BY seq";
    assert_eq!(
        pg::psql(
            &url,
            &format!(
                "SELECT seq, next_attempt_at_ms, updated_at_ms, lease_expires_at_ms \
                 FROM deliveries WHERE seq <> {in_flight_seq} ORDER BY seq"
            )
        ),
        sqlite_rows(&file, times)
    );
    // The delivery in flight is pending, due now, without a lease; its attempt count and
    // claim count are the file's.
    let row = pg::psql(
        &url,
        &format!(
            "SELECT status, next_attempt_at_ms, updated_at_ms, lease_expires_at_ms IS NULL, \
             attempts_made, claims FROM deliveries WHERE seq = {in_flight_seq}"
        ),
    );
    let fields: Vec<&str> = row.split('|').collect();
    assert_eq!(fields[0], "pending", "{row}");
    let due: i64 = fields[1].parse().unwrap();
    assert!((before_ms..=after_ms).contains(&due), "{row}");
    assert_eq!(fields[2], fields[1], "{row}");
    assert_eq!(fields[3], "t", "{row}");
    assert_eq!(
        fields[4..].join("|"),
        sqlite_rows(
            &file,
            &format!("SELECT attempts_made, claims FROM deliveries WHERE seq = {in_flight_seq}")
        )
    );
    // New rows get seqs after the copied ones.
    for table in ["endpoints", "events", "deliveries", "attempts", "tokens"] {
        let max: i64 = sqlite_rows(&file, &format!("SELECT max(seq) FROM {table}"))
            .parse()
            .unwrap();
        assert_eq!(
            pg::psql(
                &url,
                &format!("SELECT nextval(pg_get_serial_sequence('{table}', 'seq'))")
            ),
            (max + 1).to_string(),
            "{table}"
        );
    }

    // Again: the target is not empty now.
    let again = migrate(&file, &target);
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is not empty (1 meta, 3 endpoints, 5 events, 5 deliveries"),
        "{stderr}"
    );
    assert!(
        stderr.contains("postgres://clockeye:***@127.0.0.1:"),
        "{stderr}"
    );
    assert!(!stderr.contains("sekrit-pw"), "{stderr}");
    assert_eq!(pg::psql(&url, "SELECT count(*) FROM endpoints"), "3");

    // The service on Postgres: the lists are the file's (the endpoint and delivery whose
    // attempt was in flight aside: that one is sent again now), the admin token made at the
    // first start and the workspace token work, and what waited is sent.
    let moved = PlainService::start(dir.path(), &url, &flags);
    let admin = |path: &str| moved.call("GET", path, &admin_token, None);
    let after = lists(admin);
    for ((path, before), (_, after)) in before.iter().zip(&after) {
        let settled = |items: &Vec<Value>| -> Vec<Value> {
            items
                .iter()
                .filter(|item| item["id"] != c_id.as_str() && item["id"] != in_flight_id.as_str())
                .cloned()
                .collect()
        };
        assert!(!before.is_empty(), "{path}");
        assert_eq!(after.len(), before.len(), "{path}: {after:?}");
        assert_eq!(settled(after), settled(before), "{path}");
    }
    let (status, me) = moved.call("GET", "/v1/me", &workspace_token, None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me, json!({"role": "workspace", "workspace_id": "acme"}));
    let (status, theirs) = moved.call(
        "GET",
        &format!("/v1/endpoints/{a_id}"),
        &workspace_token,
        None,
    );
    assert_eq!(status, 404, "another workspace's endpoint: {theirs}");
    let (status, enabled) = moved.call(
        "PATCH",
        &format!("/v1/endpoints/{b_id}"),
        &admin_token,
        Some(json!({"enabled": true})),
    );
    assert_eq!(status, 200, "{enabled}");
    let arrived = later.wait_for(2, WAIT);
    assert!(
        arrived
            .iter()
            .all(|r| r.json()["type"] == "project.created"),
        "the two events of acme that waited: {arrived:?}"
    );
    eventually(
        "the in-flight delivery sent again from Postgres",
        WAIT,
        || {
            let (status, delivery) = admin(&format!("/v1/deliveries/{in_flight_id}"));
            match (status, delivery["status"].as_str()) {
                (200, Some("succeeded")) => Ok(()),
                _ => Err(delivery.to_string()),
            }
        },
    );
    assert_eq!(slow.received().len(), 2, "sent once more, once");
}

#[test]
fn migrate_refuses_a_file_that_a_running_service_owns() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &loopback_flags("1s"));
    let url = pg::database();
    let refused = migrate(&service.db, &url);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&service.db.display().to_string())
            && stderr.contains("stop the service first")
            && stderr.contains(&format!("pid {}", service.pid())),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
    // The target was not touched: not even the schema was made.
    assert_eq!(
        pg::psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    let (status, _) = service.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn bad_input_is_refused_with_one_line_and_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.db");
    let mut service = Service::start(dir.path(), &loopback_flags("1s"));
    service.kill();
    let url = pg::database();

    // Usage errors: exit 2.
    for (args, says) in [
        (vec!["--from", "x.db"], "needs --to"),
        (vec!["--to", url.as_str()], "needs --from"),
        (
            vec![
                "--from",
                "x.db",
                "--to",
                "postgres://clockeye:sekrit-pw@127.0.0.1:notaport/d",
            ],
            "--to: postgres://clockeye:***@127.0.0.1:notaport/d is not a Postgres URL",
        ),
        (
            vec!["--from", "x.db", "--to", "mysql://clockeye:sekrit-pw@h/d"],
            "--to: mysql://clockeye:***@h/d is not a Postgres URL",
        ),
        (
            vec![
                "--from",
                "postgres://clockeye:sekrit-pw@h/d",
                "--to",
                url.as_str(),
            ],
            "--from: takes the SQLite file to copy; the Postgres URL goes to --to",
        ),
    ] {
        let output = Command::new(BIN)
            .arg("migrate")
            .args(&args)
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("sekrit-pw"), "{args:?}: {stderr}");
    }

    // Refusals: exit 1.
    let old = dir.path().join("old.db");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch(include_str!("fixtures/schema-v7.sql"))
        .unwrap();
    let missing = dir.path().join("missing.db");
    for (from, to, says) in [
        (
            file.as_path(),
            "postgres://clockeye:sekrit-pw@127.0.0.1:1/hooks".to_string(),
            "cannot connect to postgres://clockeye:***@127.0.0.1:1/hooks".to_string(),
        ),
        (
            missing.as_path(),
            with_password(&url),
            format!("no database at {}", missing.display()),
        ),
        (
            old.as_path(),
            with_password(&url),
            "has schema version 7, this build writes 8: start serve once with this build"
                .to_string(),
        ),
    ] {
        let output = migrate(from, &to);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{from:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{from:?}: {stderr}");
        assert!(stderr.contains(&says), "{from:?}: {stderr}");
        assert!(!stderr.contains("sekrit-pw"), "{from:?}: {stderr}");
    }
    assert!(!missing.exists(), "a missing file is not made");
    assert_eq!(
        pg::psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0",
        "nothing was made in the target"
    );

    // backup copies SQLite files only.
    let output = Command::new(BIN)
        .args([
            "backup",
            "copy.db",
            "--db",
            "postgres://clockeye:sekrit-pw@h/d",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("backup is for SQLite files; for Postgres use pg_dump"),
        "{stderr}"
    );
    assert!(!stderr.contains("sekrit-pw"), "{stderr}");
    assert!(!dir.path().join("copy.db").exists());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
