use super::prelude::*;
use crate::ids::sha256_hex;

use super::*;

/// The plan SQLite chooses for `sql`, one line per step.
fn query_plan(conn: &Connection, sql: &str, values: &[SqlValue]) -> Vec<String> {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(rusqlite::params_from_iter(values), |row| row.get(3))
        .unwrap()
        .collect::<rusqlite::Result<Vec<String>>>()
        .unwrap()
}

/// Every list a workspace can ask for searches an index: none reads a whole table (other
/// workspaces' rows included), whichever filters are given.
#[test]
fn every_workspace_list_uses_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("plans.db")).unwrap());
    let conn = db.sqlite().unwrap();
    let mut plans = Vec::new();
    let (sql, values) = endpoints_query(Some("ws"), i64::MAX, 51);
    plans.push((sql.clone(), query_plan(conn, &sql, &values)));
    for event_type in [None, Some("user.activated")] {
        for since_ms in [None, Some(1_000)] {
            let filter = EventFilter {
                workspace_id: Some("ws"),
                event_type,
                since_ms,
            };
            let (sql, values) = events_query(&filter, i64::MAX, 51);
            plans.push((sql.clone(), query_plan(conn, &sql, &values)));
        }
    }
    for endpoint_id in [None, Some("ep_1")] {
        for event_id in [None, Some("evt_1")] {
            for status in [None, Some("failed")] {
                let filter = DeliveryFilter {
                    workspace_id: Some("ws"),
                    endpoint_id,
                    event_id,
                    status,
                    ..DeliveryFilter::default()
                };
                let (sql, values) = deliveries_query(&filter, i64::MAX, 51);
                plans.push((sql.clone(), query_plan(conn, &sql, &values)));
            }
        }
    }
    // "SCAN t", or a walk of the whole key range "SEARCH t USING INTEGER PRIMARY KEY
    // (rowid<?)" (what `(?1 IS NULL OR workspace_id = ?1) AND seq < ?2` was planned as),
    // reads every workspace's rows.
    for (sql, plan) in plans {
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") && !step.ends_with("(rowid<?)")),
            "{sql}\n{}",
            plan.join("\n")
        );
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH")),
            "{sql}\n{}",
            plan.join("\n")
        );
    }
}

/// A database written by the previous release (schema version 3) opens, gains the new
/// columns and tables, and keeps its rows.
#[test]
fn a_version_3_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(include_str!("../../tests/fixtures/schema-v3.sql"))
            .unwrap();
        old.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
             INSERT INTO events (id, workspace_id, type, created_at_ms, body)
             VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');
             INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
             VALUES ('dlv_1', 1, 1, 'pending', 1, 1, 1);",
        )
        .unwrap();
    }
    let db = Db::Sqlite(open(&path).unwrap());
    let conn = db.sqlite().unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let jobs = claim_due(&db, 1, 10, 10, 1000).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].previous_secret, None);
    assert_eq!(jobs[0].schedule_step, 1);
    assert!(!events_by_id(&db, "evt_1", None, 2).unwrap()[0].test);
    assert!(token_by_hash(&db, "nothing", 0).unwrap().is_none());
}

/// A version 4 database (event ids unique overall) opens with ids unique per workspace,
/// keeps its rows and their links, and its indexes are on the rebuilt table.
#[test]
fn a_version_4_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(include_str!("../../tests/fixtures/schema-v4.sql"))
            .unwrap();
        old.execute_batch(
            "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
             VALUES ('ep_1', 'acme', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
             INSERT INTO events (id, workspace_id, type, created_at_ms, body)
             VALUES ('evt_1', 'acme', 'user.activated', 1, x'7b7d');
             INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
             VALUES ('dlv_1', 1, 1, 'pending', 1, 1, 1);
             INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms)
             VALUES (1, 1, 1, 1);",
        )
        .unwrap();
    }
    let db = Db::Sqlite(open(&path).unwrap());
    let conn = db.sqlite().unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM attempts"), 1);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'events' AND type = 'index' AND name LIKE 'events_by_%'"
        ),
        2
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_v4'"),
        0
    );
    let jobs = claim_due(&db, 1, 10, 10, 1000).unwrap();
    assert_eq!((jobs.len(), jobs[0].event_id.as_str()), (1, "evt_1"));
    // The same id in another workspace is another event; in the same one, the original.
    let new_event = |workspace_id: &str| NewEvent {
        id: "evt_1".into(),
        workspace_id: workspace_id.into(),
        event_type: "user.activated".into(),
        created_at_ms: 2,
        body: b"{}".to_vec(),
        test_endpoint_seq: None,
        subject: None,
    };
    assert!(insert_event(&db, &new_event("globex"), 2).unwrap().created);
    assert!(!insert_event(&db, &new_event("acme"), 2).unwrap().created);
    assert_eq!(events_by_id(&db, "evt_1", None, 10).unwrap().len(), 2);
    assert_eq!(
        events_by_id(&db, "evt_1", Some("acme"), 10).unwrap()[0].seq,
        1
    );
    // Deleting the event still cascades to its deliveries (the new table is referenced).
    conn.execute_batch("DELETE FROM events WHERE seq = 1")
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM deliveries"), 0);
}

/// A version 7 database (CHECKs with IN lists) opens with the ORed CHECKs, keeps its
/// deliveries and attempts with their links, and its indexes are on the rebuilt tables.
#[test]
fn a_version_7_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(include_str!("../../tests/fixtures/schema-v7.sql"))
            .unwrap();
        one_endpoint_and_event(&old);
        old.execute_batch(
            "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, next_attempt_at_ms,
                                     created_at_ms, updated_at_ms, claims, subject)
             VALUES ('dlv_1', 1, 1, 'pending', 1, 5, 1, 1, 1, 'user:1'),
                    ('dlv_2', 1, 1, 'failed', 1, NULL, 1, 1, 1, NULL);
             INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code,
                                   error_class, error_message)
             VALUES (1, 1, 1, 3, 500, 'http_status', 'HTTP 500'),
                    (2, 1, 1, 4, NULL, 'timeout', 'no answer');",
        )
        .unwrap();
    }
    let db = Db::Sqlite(open(&path).unwrap());
    let conn = db.sqlite().unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(count("PRAGMA user_version"), SCHEMA_VERSION);
    assert_eq!(count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v7'"),
        0
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'
             AND tbl_name IN ('deliveries', 'attempts') AND name NOT LIKE 'sqlite_%'"
        ),
        6
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'deliveries'
             AND sql LIKE '%status = ''pending'' OR%'"
        ),
        1
    );
    let attempts = attempts(&db, 1, 10).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error_message.as_deref(), Some("HTTP 500"));
    assert_eq!(delivery(&db, "dlv_2").unwrap().unwrap().status, "failed");
    // The CHECKs still refuse what they refused.
    assert!(
        conn.execute("UPDATE deliveries SET status = 'lost' WHERE seq = 2", [])
            .is_err()
    );
    assert!(
        conn.execute("UPDATE attempts SET error_class = 'oops' WHERE seq = 1", [])
            .is_err()
    );
    // The claim finds the pending one; deleting the event cascades through the new tables.
    assert_eq!(claim_due(&db, 1, 10, 10, 1000).unwrap().len(), 1);
    conn.execute_batch("DELETE FROM events WHERE seq = 1")
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM deliveries"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM attempts"), 0);
}

/// A deleted endpoint is gone at once for the API and for claims; its history goes in
/// batches of the given size, then its row.
#[test]
fn a_deleted_endpoint_is_purged_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("purge.db")).unwrap());
    let conn = db.sqlite().unwrap();
    one_endpoint_and_event(conn);
    for n in 0..5 {
        conn.execute(
            "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
             VALUES (?1, 1, 1, 'pending', 1, 1, 1)",
            [format!("dlv_{n}")],
        )
        .unwrap();
    }
    assert!(delete_endpoint(&db, 1, 5).unwrap());
    assert!(!delete_endpoint(&db, 1, 6).unwrap());
    assert!(endpoint(&db, "ep_1", 0).unwrap().is_none());
    assert!(pending_endpoints(&db).unwrap().is_empty());
    assert!(claim_due(&db, 1, 10, 10, 1000).unwrap().is_empty());
    assert!(delivery(&db, "dlv_0").unwrap().is_none());
    assert_eq!(purge_deleted_endpoint(&db, 2).unwrap(), 2);
    assert_eq!(purge_deleted_endpoint(&db, 2).unwrap(), 2);
    // The last delivery and the endpoint's row.
    assert_eq!(purge_deleted_endpoint(&db, 2).unwrap(), 2);
    assert_eq!(purge_deleted_endpoint(&db, 2).unwrap(), 0);
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM deliveries) + (SELECT COUNT(*) FROM endpoints)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    // The event stays (retention prunes it like any other).
    assert_eq!(events_by_id(&db, "evt_1", None, 2).unwrap().len(), 1);
}

/// Recover goes on from its cursor: a delivery it re-queued that failed again is not taken
/// a second time, and every failed one in the window is reached.
#[test]
fn recover_goes_on_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("recover.db")).unwrap());
    let conn = db.sqlite().unwrap();
    one_endpoint_and_event(conn);
    for n in 0..5 {
        conn.execute(
            "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, created_at_ms, updated_at_ms)
             VALUES (?1, 1, 1, 'failed', 5, 100, 100)",
            [format!("dlv_{n}")],
        )
        .unwrap();
    }
    let fail_pending_again = || {
        conn.execute_batch(
            "UPDATE deliveries SET status = 'failed', next_attempt_at_ms = NULL WHERE status = 'pending'",
        )
        .unwrap()
    };
    let (first, next) = recover_failed(&db, 1, (0, 1000), 0, 500, 2).unwrap();
    assert_eq!((first, next.is_some()), (2, true));
    fail_pending_again();
    let (second, next) = recover_failed(&db, 1, (0, 1000), next.unwrap(), 500, 2).unwrap();
    assert_eq!((second, next.is_some()), (2, true));
    fail_pending_again();
    let (third, next) = recover_failed(&db, 1, (0, 1000), next.unwrap(), 500, 2).unwrap();
    assert_eq!((third, next), (1, None));
    // Outside the window: nothing.
    assert_eq!(
        recover_failed(&db, 1, (200, 1000), 0, 500, 2).unwrap(),
        (0, None)
    );
}

/// A delivery with more attempts than asked lists its last ones, oldest first.
#[test]
fn attempts_lists_the_last_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("attempts.db")).unwrap());
    let conn = db.sqlite().unwrap();
    one_endpoint_and_event(conn);
    conn.execute_batch(
        "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, created_at_ms, updated_at_ms)
         VALUES ('dlv_1', 1, 1, 'failed', 7, 1, 1);",
    )
    .unwrap();
    for number in 1..=7 {
        conn.execute(
            "INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code)
             VALUES (1, ?1, ?1, 0, 500)",
            [number],
        )
        .unwrap();
    }
    let numbers = |limit| {
        attempts(&db, 1, limit)
            .unwrap()
            .iter()
            .map(|a| a.number)
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(3), [5, 6, 7]);
    assert_eq!(numbers(100), [1, 2, 3, 4, 5, 6, 7]);
}

/// A PATCH that read the endpoint before the scheduler disabled it writes only its own
/// fields: the endpoint stays disabled, with the scheduler's reason.
#[test]
fn an_update_writes_only_the_named_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("update.db")).unwrap());
    let conn = db.sqlite().unwrap();
    conn.execute_batch(
        "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
         VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);",
    )
    .unwrap();
    let mut stale = endpoint(&db, "ep_1", 0).unwrap().unwrap();
    conn.execute_batch(
        "UPDATE endpoints SET enabled = 0, disabled_reason = 'the receiver answered 410 Gone',
                              failing_since_ms = 5 WHERE id = 'ep_1'",
    )
    .unwrap();
    stale.description = "billing".into();
    assert!(update_endpoint(&db, &stale, &["description"]).unwrap());
    let now = endpoint(&db, "ep_1", 0).unwrap().unwrap();
    assert_eq!(now.description, "billing");
    assert!(!now.enabled);
    assert_eq!(
        now.disabled_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    assert_eq!(now.failing_since_ms, Some(5));
    // Disabling it again keeps the first reason; enabling starts afresh.
    stale.enabled = false;
    stale.disabled_reason = Some("disabled through the API".into());
    update_endpoint(&db, &stale, &["enabled"]).unwrap();
    let now = endpoint(&db, "ep_1", 0).unwrap().unwrap();
    assert_eq!(
        now.disabled_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    stale.enabled = true;
    update_endpoint(&db, &stale, &["enabled"]).unwrap();
    let now = endpoint(&db, "ep_1", 0).unwrap().unwrap();
    assert!(now.enabled);
    assert_eq!((now.disabled_reason, now.failing_since_ms), (None, None));
}

/// A refused attempt whose endpoint was deleted while it was in flight is dropped quietly:
/// it must not fail the scheduler's whole round.
#[test]
fn a_refused_attempt_of_a_deleted_endpoint_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("deleted.db")).unwrap());
    let conn = db.sqlite().unwrap();
    let result = AttemptResult {
        delivery_seq: 1,
        delivery_id: "dlv_1".into(),
        endpoint_seq: 1,
        attempt_number: 1,
        claim: 1,
        outcome: crate::model::Outcome {
            started_at_ms: 0,
            duration_ms: 1,
            status_code: Some(401),
            error_class: Some(crate::model::ErrorClass::HttpStatus),
            error_message: Some("401".into()),
            response_excerpt: None,
            retry_after_ms: None,
        },
        decision: Decision::RetryAt(10),
        rejected_secret_sha256: Some(sha256_hex("whsec_x")),
    };
    record_attempt(&db, &result, result.decision, 5).unwrap();
    let attempts: i64 = conn
        .query_row("SELECT COUNT(*) FROM attempts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(attempts, 0);
}

/// A lease that ran out goes back to `pending`, is claimed again, and the first claim's
/// late result then changes nothing: the newer claim is not clobbered. A renewal by the
/// lost claim fails; the newer claim's result is written.
#[test]
fn an_expired_lease_is_released_and_a_stale_result_does_not_clobber_the_new_claim() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("lease.db")).unwrap());
    let conn = db.sqlite().unwrap();
    one_endpoint_and_event(conn);
    conn.execute_batch(
        "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, next_attempt_at_ms, created_at_ms, updated_at_ms)
         VALUES ('dlv_1', 1, 1, 'pending', 1, 1, 1);",
    )
    .unwrap();
    let first = claim_due(&db, 1, 10, 10, 100).unwrap();
    assert_eq!(first[0].claim, 1);
    assert_eq!(
        release_expired_leases(&db, 100, 10).unwrap(),
        0,
        "not before its end"
    );
    assert!(renew_lease(&db, 1, 1, 150).unwrap());
    assert_eq!(release_expired_leases(&db, 151, 10).unwrap(), 1);
    let second = claim_due(&db, 1, 151, 10, 300).unwrap();
    assert_eq!((second.len(), second[0].claim), (1, 2));
    assert!(
        !renew_lease(&db, 1, 1, 400).unwrap(),
        "the lost claim renews nothing"
    );
    let result = |claim: i64, decision: Decision| AttemptResult {
        delivery_seq: 1,
        delivery_id: "dlv_1".into(),
        endpoint_seq: 1,
        attempt_number: 1,
        claim,
        outcome: crate::model::Outcome {
            started_at_ms: 0,
            duration_ms: 1,
            status_code: Some(500),
            error_class: Some(crate::model::ErrorClass::HttpStatus),
            error_message: Some("500".into()),
            response_excerpt: None,
            retry_after_ms: None,
        },
        decision,
        rejected_secret_sha256: None,
    };
    record_attempt(&db, &result(1, Decision::Failed), Decision::Failed, 200).unwrap();
    let status = |conn: &Connection| -> (String, Option<i64>, i64) {
        conn.query_row(
            "SELECT status, lease_expires_at_ms, (SELECT COUNT(*) FROM attempts) FROM deliveries",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!(status(conn), ("delivering".into(), Some(300), 0));
    record_attempt(
        &db,
        &result(2, Decision::RetryAt(500)),
        Decision::RetryAt(500),
        210,
    )
    .unwrap();
    assert_eq!(status(conn), ("pending".into(), None, 1));
}

#[test]
fn schema_sql_sets_the_version_the_migrations_reach() {
    let schema = include_str!("../../schema.sql");
    let line = format!("PRAGMA user_version = {SCHEMA_VERSION};");
    assert!(schema.contains(&line), "schema.sql lacks `{line}`");
    assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len() + 1);
}

/// The quoted words of the CHECK of `column` in schema.sql, written as
/// `CHECK (column = 'a' OR column = 'b' …)`.
fn schema_check_list(column: &str) -> Vec<String> {
    let schema = include_str!("../../schema.sql");
    let start = schema
        .find(&format!("CHECK ({column} = '"))
        .unwrap_or_else(|| panic!("schema.sql has no CHECK on {column}"));
    let list = &schema[start + "CHECK (".len()..];
    let list = &list[..list.find("),").unwrap()];
    list.split(" OR ")
        .map(|term| {
            let (name, word) = term.trim().split_once(" = ").expect("column = 'word'");
            assert_eq!(name, column, "a CHECK on {column} compares another column");
            word.trim_matches('\'').to_string()
        })
        .collect()
}

/// An `IN (…)` list of more than two values builds a temporary b-tree on every row written.
#[test]
fn no_check_in_schema_sql_uses_a_long_in_list() {
    let schema = include_str!("../../schema.sql");
    for (at, _) in schema.match_indices("CHECK (") {
        let check = &schema[at..];
        let check = &check[..check.find(')').unwrap()];
        if let Some(list) = check.split(" IN (").nth(1) {
            assert!(list.split(',').count() <= 2, "schema.sql: {check}");
        }
    }
}

#[test]
fn schema_checks_list_exactly_the_error_classes_and_statuses_of_the_code() {
    use crate::model::{DELIVERY_STATUSES, ErrorClass};
    assert_eq!(
        schema_check_list("error_class"),
        ErrorClass::ALL.map(ErrorClass::as_str)
    );
    assert_eq!(schema_check_list("status"), DELIVERY_STATUSES);
}

/// Endpoint `ep_1` (seq 1, workspace `default`, every type) and event `evt_1` (seq 1).
fn one_endpoint_and_event(conn: &Connection) {
    conn.execute_batch(
        "INSERT INTO endpoints (id, workspace_id, url, secret, event_types, created_at_ms, updated_at_ms)
         VALUES ('ep_1', 'default', 'https://example.test/', 'whsec_x', '[\"*\"]', 1, 1);
         INSERT INTO events (id, workspace_id, type, created_at_ms, body)
         VALUES ('evt_1', 'default', 'user.activated', 1, x'7b7d');",
    )
    .unwrap();
}

/// The first value stored under a key stays; a later one is not written, and each caller is
/// told the value kept (the admin token of instances starting together).
#[test]
fn set_meta_if_absent_keeps_the_first_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(open(&dir.path().join("meta.db")).unwrap());
    assert_eq!(
        set_meta_if_absent(&db, "k", "first").unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(
        set_meta_if_absent(&db, "k", "second").unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(meta(&db, "k").unwrap().as_deref(), Some("first"));
}
