//! `DELETE /v1/endpoints/{id}` answers at once (SPEC, the endpoints row of the API table): the
//! endpoint is gone from the API, gets nothing more, and its history goes in the background in
//! batches while ingest for other endpoints keeps going. (The benchmark reports the ingest
//! answer times during such a DELETE; this test asserts correctness only.)

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Value, json};
use util::{ADMIN_TOKEN, Receiver, Reply, Service, eventually, local_flags};

const WAIT: Duration = Duration::from_secs(60);
/// Finished deliveries (each with one attempt) of the endpoint that is deleted.
const HISTORY: i64 = 100_000;
/// Twenty quick retries: a delivery that were still sent would reach its receiver for seconds.
const SCHEDULE: &str = "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,\
                        200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms";

/// Gives the endpoint `HISTORY` finished deliveries, each with its event and one attempt, as
/// months of traffic would (written directly: sending them would take minutes).
fn seed_history(db: &std::path::Path, endpoint_id: &str) {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let now = clockeye_webhooks::test_support::now_ms();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let endpoint_seq: i64 = conn
        .query_row(
            "SELECT seq FROM endpoints WHERE id = ?1",
            [endpoint_id],
            |row| row.get(0),
        )
        .unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
         INSERT INTO events (id, workspace_id, type, created_at_ms, body)
         SELECT 'evt_old_' || i, 'ws_deleted', 'user.invited', ?1, x'7b7d' FROM n",
        [now, HISTORY],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO deliveries (id, event_seq, endpoint_seq, status, attempts_made, created_at_ms, updated_at_ms)
         SELECT 'dlv_old_' || seq, seq, ?1, 'succeeded', 1, ?2, ?2 FROM events WHERE id LIKE 'evt_old_%'",
        [endpoint_seq, now],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO attempts (delivery_seq, number, started_at_ms, duration_ms, status_code)
         SELECT seq, 1, ?1, 5, 200 FROM deliveries WHERE endpoint_seq = ?2",
        [now, endpoint_seq],
    )
    .unwrap();
    conn.execute_batch("COMMIT").unwrap();
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn a_deleted_endpoint_goes_at_once_and_its_history_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    // The endpoint to delete refuses everything, so its live deliveries keep retrying.
    let deleted_receiver = Receiver::start(|_| Reply::status(503));
    let kept_receiver = Receiver::ok();
    let flags = local_flags(SCHEDULE);
    let mut service = Service::start(dir.path(), &flags);
    let (deleted, _) = service.create_endpoint(
        &format!("{}/deleted", deleted_receiver.url),
        &["*"],
        Some("ws_deleted"),
    );
    service.create_endpoint(
        &format!("{}/kept", kept_receiver.url),
        &["*"],
        Some("ws_kept"),
    );
    assert!(service.terminate(WAIT).success());
    seed_history(&service.db, &deleted);
    let service = Service::start(dir.path(), &flags);
    let db = Connection::open(&service.db).unwrap();
    let deleted_seq: i64 = db
        .query_row(
            "SELECT seq FROM endpoints WHERE id = ?1",
            [&deleted],
            |row| row.get(0),
        )
        .unwrap();

    // Live deliveries of the endpoint, retrying when it is deleted.
    for _ in 0..5 {
        service.send_sample("user.invited", json!({"workspace_id": "ws_deleted"}));
    }
    deleted_receiver.wait_for(5, WAIT);

    // Ingest for another workspace's endpoint goes on throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let ingest = {
        let (stop, accepted, base) = (stop.clone(), accepted.clone(), service.base.clone());
        std::thread::spawn(move || {
            let agent = util::client();
            let data = clockeye_webhooks::catalog::sample("user.invited").unwrap();
            let body = json!({"type": "user.invited", "workspace_id": "ws_kept", "data": data})
                .to_string();
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut response = agent
                    .post(format!("{base}/v1/events"))
                    .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
                    .unwrap();
                slowest = slowest.max(started.elapsed());
                let answer: Value =
                    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
                assert_eq!(response.status().as_u16(), 202, "{answer}");
                accepted
                    .lock()
                    .unwrap()
                    .push(answer["id"].as_str().unwrap().to_string());
            }
            slowest
        })
    };
    eventually("ingest to be under way", WAIT, || {
        let n = accepted.lock().unwrap().len();
        if n >= 20 {
            Ok(())
        } else {
            Err(format!("{n} accepted"))
        }
    });

    let started = Instant::now();
    let (status, answer) = service.request(
        "DELETE",
        &format!("/v1/endpoints/{deleted}"),
        Some(ADMIN_TOKEN),
        None,
    );
    let delete_took = started.elapsed();
    let deleted_at = Instant::now();
    assert_eq!(status, 204, "{answer}");

    // Gone from the API at once, and nothing new is queued for it.
    let (status, _) = service.get(&format!("/v1/endpoints/{deleted}"));
    assert_eq!(status, 404);
    let (_, listed) = service.get("/v1/endpoints?workspace_id=ws_deleted");
    assert_eq!(listed["data"], json!([]), "{listed}");
    let (_, deliveries) = service.get(&format!("/v1/deliveries?endpoint_id={deleted}"));
    assert_eq!(deliveries["data"], json!([]), "{deliveries}");
    let after = service.send_sample("user.invited", json!({"workspace_id": "ws_deleted"}));
    assert_eq!(after["deliveries"], json!([]), "{after}");
    let (status, _) = service.request(
        "DELETE",
        &format!("/v1/endpoints/{deleted}"),
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(status, 404, "a second DELETE finds nothing");

    // The history goes in the background, all of it.
    eventually("the deleted endpoint's history to be purged", WAIT, || {
        let left = count(
            &db,
            &format!(
                "SELECT (SELECT COUNT(*) FROM deliveries WHERE endpoint_seq = {deleted_seq})
                      + (SELECT COUNT(*) FROM endpoints WHERE seq = {deleted_seq})"
            ),
        );
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} rows left"))
        }
    });
    let purged_after = deleted_at.elapsed();
    // Watch for late requests long enough for several retries of the live deliveries.
    eventually("3 s of ingest after the DELETE", WAIT, || {
        if deleted_at.elapsed() >= Duration::from_secs(3) {
            Ok(())
        } else {
            Err(format!("{:?}", deleted_at.elapsed()))
        }
    });
    stop.store(true, Ordering::Relaxed);
    let slowest = ingest.join().unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM attempts a LEFT JOIN deliveries d ON d.seq = a.delivery_seq WHERE d.seq IS NULL"
        ),
        0,
        "attempts went with their deliveries"
    );
    assert!(count(&db, "SELECT COUNT(*) FROM attempts") < HISTORY);

    // Every event for the other endpoint was delivered.
    let accepted = accepted.lock().unwrap().clone();
    let received = kept_receiver.wait_for(accepted.len(), WAIT);
    let mut delivered: Vec<String> = received
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    delivered.sort();
    delivered.dedup();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(delivered, expected);

    // Nothing reached the deleted endpoint after its DELETE. One attempt per delivery may have
    // been on the wire when it answered and land just after; any later one is a new claim.
    // (Retries come every 200 ms: a claim after the DELETE would show within the purge.)
    let received = deleted_receiver.received();
    let attempt = |r: &util::Received| -> (String, u32) {
        (
            r.header("x-clockeye-delivery").unwrap().to_string(),
            r.header("x-clockeye-attempt").unwrap().parse().unwrap(),
        )
    };
    let mut before = std::collections::HashMap::new();
    for r in received.iter().filter(|r| r.at <= deleted_at) {
        let (delivery, number) = attempt(r);
        let seen = before.entry(delivery).or_insert(0);
        *seen = number.max(*seen);
    }
    let late: Vec<(String, u32)> = received
        .iter()
        .filter(|r| r.at > deleted_at)
        .map(attempt)
        .filter(|(delivery, number)| *number > before.get(delivery).copied().unwrap_or(0) + 1)
        .collect();
    let after_grace = received
        .iter()
        .filter(|r| r.at > deleted_at + Duration::from_secs(1))
        .count();
    assert_eq!(
        (late, after_grace),
        (vec![], 0),
        "requests to the deleted endpoint after its DELETE"
    );
    assert!(
        kept_receiver.received().len() >= accepted.len(),
        "the other endpoint got its events"
    );
    eprintln!(
        "DELETE of {HISTORY} deliveries answered in {delete_took:?}; purged within {purged_after:?}; \
         {} events ingested meanwhile, slowest answer {slowest:?}",
        accepted.len()
    );
}
