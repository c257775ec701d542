//! Several instances on one Postgres database (SPEC "Beyond one machine"): three services share
//! a fresh database of the test binary's cluster. Load through all three arrives exactly once
//! per attempt; a SIGKILLed instance's claims come back and every acknowledged event arrives;
//! an endpoint changed through one instance is obeyed by the others at once; a rate limit is
//! split so that all three together keep it; instances starting together keep one admin token.

mod util;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{ADMIN_TOKEN, BIN, Received, Receiver, Reply, Service, eventually, loopback_flags, pg};

/// Per instance: loopback receivers, attempts that time out after 1 s (a lease of 6 s).
fn flags(schedule: &'static str) -> Vec<&'static str> {
    let mut flags = loopback_flags(schedule);
    flags.extend(["--attempt-timeout", "1s", "--workers", "8"]);
    flags
}

/// Three services on one new database.
fn three(dir: &std::path::Path, schedule: &'static str) -> Vec<Service> {
    three_with(dir, schedule, &[])
}

fn three_with(dir: &std::path::Path, schedule: &'static str, extra: &[&str]) -> Vec<Service> {
    let url = pg::database();
    let mut flags = flags(schedule);
    flags.extend(extra);
    (0..3)
        .map(|_| Service::start_db(dir, &url, &flags))
        .collect()
}

fn project(id: &str) -> Value {
    json!({"id": id, "type": "project.created",
           "data": {"id": id, "name": "n", "created_by": "u"}})
}

/// POST /v1/events to `base`; None when the service is gone (connection refused or reset).
fn try_send(agent: &ureq::Agent, base: &str, event: &Value) -> Option<u16> {
    let response = agent
        .post(&format!("{base}/v1/events"))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .header("Content-Type", "application/json")
        .send(event.to_string().as_bytes());
    response.ok().map(|response| response.status().as_u16())
}

/// What a receiver got, counted: each event's arrivals, and arrivals of an attempt (delivery
/// id, attempt number) seen before (one attempt sent twice: by two instances, or again after
/// its instance died before recording it).
struct Tally {
    events: HashMap<String, usize>,
    duplicates: usize,
}

fn tally(received: &[Received]) -> Tally {
    let mut attempts = HashSet::new();
    let mut events: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    for request in received {
        let event = request.header("x-clockeye-event-id").unwrap().to_string();
        let attempt = (
            request.header("x-clockeye-delivery").unwrap().to_string(),
            request.header("x-clockeye-attempt").unwrap().to_string(),
        );
        if !attempts.insert(attempt) {
            duplicates += 1;
        }
        *events.entry(event).or_default() += 1;
    }
    Tally { events, duplicates }
}

/// Clients post up to `events` events round-robin through `bases` from `clients` threads (each
/// event to the next service, past any that is gone), until `stop` is set. Answers the ids
/// acknowledged (202, or 200 for one a dying instance stored before it could answer).
fn load(
    bases: Vec<String>,
    prefix: &str,
    events: usize,
    clients: usize,
    gone: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (bases, acknowledged, gone) = (bases.clone(), acknowledged.clone(), gone.clone());
            let stop = stop.clone();
            let prefix = prefix.to_string();
            thread::spawn(move || {
                let agent = util::client();
                for index in (client..events).step_by(clients) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let id = format!("{prefix}_{index}");
                    for turn in 0..bases.len() {
                        let base = &bases[(index + turn) % bases.len()];
                        if gone.lock().unwrap().contains(base) {
                            continue;
                        }
                        match try_send(&agent, base, &project(&id)) {
                            // 200: a try that got no answer had stored it (the
                            // dying instance committed it); known ids answer the original.
                            Some(200 | 202) => {
                                acknowledged.lock().unwrap().push(id.clone());
                                break;
                            }
                            Some(status) => panic!("{id} through {base}: {status}"),
                            // Gone mid-request: unacknowledged; the next instance takes it.
                            None => {}
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    acknowledged.lock().unwrap().clone()
}

fn wait_for_events(receiver: &Receiver, ids: &[String], timeout: Duration) -> Tally {
    eventually(
        &format!("{} events at {}", ids.len(), receiver.url),
        timeout,
        || {
            let tally = tally(&receiver.received());
            let missing = ids
                .iter()
                .filter(|id| !tally.events.contains_key(*id))
                .count();
            if missing == 0 {
                Ok(tally)
            } else {
                Err(format!("{missing} of {} missing", ids.len()))
            }
        },
    )
}

fn listed(service: &Service, status: &str) -> usize {
    let (code, page) = service.get(&format!("/v1/deliveries?status={status}&limit=500"));
    assert_eq!(code, 200, "{page}");
    page["data"].as_array().unwrap().len()
}

#[test]
fn load_through_three_instances_arrives_once_and_a_killed_ones_claims_come_back() {
    let dir = tempfile::tempdir().unwrap();
    // A little slow, so that attempts are in flight when an instance dies.
    let receiver = || {
        Receiver::start(|_| Reply {
            delay: Duration::from_millis(20),
            ..Reply::status(200)
        })
    };
    let (first, second) = (receiver(), receiver());
    let mut services = three(dir.path(), "2s");
    services[0].create_endpoint(&format!("{}/a", first.url), &["*"], None);
    services[1].create_endpoint(&format!("{}/b", second.url), &["*"], None);
    let bases: Vec<String> = services.iter().map(|s| s.base.clone()).collect();

    // (1) 600 events through all three: each arrives at both endpoints, and no attempt twice.
    let gone = Arc::new(Mutex::new(HashSet::new()));
    let never = Arc::new(AtomicBool::new(false));
    let acknowledged = load(bases.clone(), "steady", 600, 4, gone.clone(), never);
    assert_eq!(acknowledged.len(), 600);
    for receiver in [&first, &second] {
        let tally = wait_for_events(receiver, &acknowledged, Duration::from_secs(60));
        let extra: usize = tally.events.values().map(|n| n - 1).sum();
        println!(
            "instances: steady load: {} received at {}, {} attempts twice, {extra} retried",
            tally.events.len(),
            receiver.url,
            tally.duplicates
        );
        assert_eq!(tally.duplicates, 0, "an attempt was sent twice");
    }

    // (2) Again, and B is SIGKILLed 300-800 ms in; the clients go on through A and C for 1 s.
    let kill_after = Duration::from_millis(300 + util::rand_u64() % 501);
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let (bases, gone, stop) = (bases.clone(), gone.clone(), stop.clone());
        thread::spawn(move || load(bases, "killed", 100_000, 4, gone, stop))
    };
    thread::sleep(kill_after);
    gone.lock().unwrap().insert(services[1].base.clone());
    services[1].kill();
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = loader.join().unwrap();
    assert!(
        acknowledged.len() >= 100,
        "{} acknowledged",
        acknowledged.len()
    );
    for receiver in [&first, &second] {
        wait_for_events(receiver, &acknowledged, Duration::from_secs(60));
    }
    // Nothing is left unfinished: all succeeded, none waits or is held by the dead instance.
    let a = &services[0];
    eventually(
        "no pending or delivering deliveries",
        Duration::from_secs(30),
        || match (listed(a, "pending"), listed(a, "delivering")) {
            (0, 0) => Ok(()),
            seen => Err(format!("{seen:?} (pending, delivering)")),
        },
    );
    // Counted once nothing is left: B's claims came back when their lease ended, and what it
    // had sent without recording was sent again (at least once).
    let mut received = 0;
    let mut duplicates = 0;
    for receiver in [&first, &second] {
        let tally = tally(&receiver.received());
        received += acknowledged
            .iter()
            .filter(|id| tally.events.contains_key(*id))
            .count();
        duplicates += tally.duplicates;
    }
    let returned: usize = [&services[0], &services[2]]
        .iter()
        .flat_map(|service| {
            service
                .stderr()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let (count, _) = line.split_once(" deliveries whose lease ran out")?;
            count.rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum();
    println!(
        "instances: {} acknowledged, {received} received, {duplicates} duplicates \
         (B killed after {kill_after:?}; {returned} of its claims came back by their lease)",
        acknowledged.len()
    );
}

#[test]
fn an_endpoint_changed_through_one_instance_is_obeyed_by_the_others_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let services = three(dir.path(), "2s");
    let (a, b, c) = (&services[0], &services[1], &services[2]);
    let (endpoint_id, _) = a.create_endpoint(&receiver.url, &["project.created"], None);

    // Made through A, an event through B arrives.
    let (status, _) = b.post("/v1/events", &project("cross_1"));
    assert_eq!(status, 202);
    receiver.wait_for(1, Duration::from_secs(10));

    // Disabled through A: events through C get nothing.
    let (status, patched) = a.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"enabled": false}),
    );
    assert_eq!(status, 200, "{patched}");
    for index in 0..5 {
        let (status, _) = c.post("/v1/events", &project(&format!("cross_off_{index}")));
        assert_eq!(status, 202);
    }
    let quiet_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        assert_eq!(receiver.received().len(), 1, "sent while disabled");
        thread::sleep(Duration::from_millis(50));
    }

    // Enabled through B: they arrive, well before any instance's 1 s poll would matter much.
    let (status, patched) = b.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"enabled": true}),
    );
    assert_eq!(status, 200, "{patched}");
    receiver.wait_for(6, Duration::from_secs(10));

    // 20 events through B arrive with little latency (each is claimed by B's own round).
    let mut latencies = Vec::new();
    for index in 0..20 {
        let before = receiver.received().len();
        let sent = Instant::now();
        let (status, _) = b.post("/v1/events", &project(&format!("cross_fast_{index}")));
        assert_eq!(status, 202);
        let arrived = receiver.wait_for(before + 1, Duration::from_secs(10));
        latencies.push(arrived.last().unwrap().at.saturating_duration_since(sent));
    }
    let worst = latencies.iter().max().unwrap();
    println!("instances: 20 events through B, worst latency {worst:?}");
    assert!(*worst < Duration::from_millis(1000), "{latencies:?}");
}

#[test]
fn an_endpoint_moved_through_one_instance_is_taken_back_from_the_others_queues() {
    const EVENTS: usize = 40;
    const WINDOW: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let slow = || {
        Receiver::start(|_| Reply {
            delay: Duration::from_millis(300),
            ..Reply::status(200)
        })
    };
    let (old, new) = (slow(), slow());
    // Windows of 2: each instance holds up to 32 claimed jobs while 2 run.
    let services = three_with(dir.path(), "2s", &["--endpoint-concurrency", "2"]);
    let (a, b) = (&services[0], &services[1]);
    let (endpoint_id, _) = a.create_endpoint(&old.url, &["project.created"], None);
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("moved_{i}")).collect();
    let (status, answer) = a.post(
        "/v1/events/batch",
        &json!({"events": ids.iter().map(|id| project(id)).collect::<Vec<_>>()}),
    );
    assert_eq!(status, 202, "{answer}");
    old.wait_for(2, Duration::from_secs(10));
    // Moved through B: every instance takes back what it holds for the old URL (A by B's
    // notification); only attempts already running still reach it.
    let (status, patched) = b.patch(
        &format!("/v1/endpoints/{endpoint_id}"),
        &json!({"url": new.url}),
    );
    assert_eq!(status, 200, "{patched}");
    let at_move = old.received().len();
    eventually(
        "every event at one URL or the other",
        Duration::from_secs(30),
        || {
            let arrived: HashSet<String> = old
                .received()
                .iter()
                .chain(new.received().iter())
                .map(|r| r.header("x-clockeye-event-id").unwrap().to_string())
                .collect();
            match EVENTS - arrived.len() {
                0 => Ok(()),
                missing => Err(format!("{missing} missing")),
            }
        },
    );
    let at_old = old.received().len();
    println!(
        "instances: {at_move} at the old URL when moved, {at_old} in the end, {} at the new",
        new.received().len()
    );
    // Running then: at most a window per instance, and one more each for the count's race.
    assert!(
        at_old <= at_move + 3 * (WINDOW + 1),
        "{at_old} reached the old URL, {at_move} when it moved"
    );
}

/// No `rate + 1` arrivals within one second (less 50 ms of loopback jitter).
fn assert_rate_kept(received: &[Received], rate: usize) {
    let mut arrivals: Vec<Instant> = received.iter().map(|r| r.at).collect();
    arrivals.sort();
    for span in arrivals.windows(rate + 1) {
        let apart = span[rate] - span[0];
        assert!(
            apart >= Duration::from_millis(950),
            "{} arrivals within {apart:?}",
            rate + 1
        );
    }
}

#[test]
fn a_rate_limit_is_split_so_the_three_instances_together_keep_it() {
    // 10/s splits 4 + 3 + 3; 2/s splits 1 + 1 + 0 (the third claims none of it).
    const EVENTS: usize = 60;
    const FEW: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let (ten, two) = (Receiver::ok(), Receiver::ok());
    let services = three(dir.path(), "2s");
    for (receiver, rate, event_type) in [(&ten, 10, "project.created"), (&two, 2, "user.activated")]
    {
        let (status, endpoint) = services[0].post(
            "/v1/endpoints",
            &json!({"url": receiver.url, "events": [event_type], "rate_limit": rate}),
        );
        assert_eq!(status, 201, "{endpoint}");
    }
    // Each instance takes no share in its first 3 s (the others may not count it yet).
    let began = Instant::now();
    let activated = clockeye_webhooks::catalog::sample("user.activated").unwrap();
    for index in 0..EVENTS {
        let (status, _) =
            services[index % 3].post("/v1/events", &project(&format!("rated_{index}")));
        assert_eq!(status, 202);
        if index < FEW {
            let event =
                json!({"id": format!("few_{index}"), "type": "user.activated", "data": activated});
            let (status, _) = services[(index + 1) % 3].post("/v1/events", &event);
            assert_eq!(status, 202);
        }
    }
    let received = ten.wait_for(EVENTS, Duration::from_secs(60));
    let elapsed = began.elapsed();
    let few = two.wait_for(FEW, Duration::from_secs(60));
    let few_elapsed = began.elapsed();
    println!(
        "instances: {EVENTS} events at 10/s took {elapsed:?}, {FEW} at 2/s {few_elapsed:?} (3 instances)"
    );
    assert_rate_kept(&received, 10);
    assert_rate_kept(&few, 2);
    // The whole limit is used, not a share of it: 60 at 10/s take 6 s plus the start-up,
    // 12 at 2/s 6 s.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert!(few_elapsed < Duration::from_secs(20), "{few_elapsed:?}");
}

#[test]
fn instances_started_together_on_an_empty_database_keep_one_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = pg::database();
    let start = || {
        let stderr = std::fs::File::create(
            dir.path()
                .join(format!("stderr-{:016x}.log", util::rand_u64())),
        )
        .unwrap();
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    let mut children = [start(), start()];
    // Each one's first two lines: where it listens, and the admin token line.
    let heads: Vec<(String, String)> = children
        .iter_mut()
        .map(|child| {
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let listening = lines.next().unwrap().unwrap();
            let token_line = lines.next().unwrap().unwrap();
            (
                listening.strip_prefix("listening on ").unwrap().to_string(),
                token_line,
            )
        })
        .collect();
    let tokens: Vec<&str> = heads
        .iter()
        .filter_map(|(_, line)| line.strip_prefix("admin token: cew_admin_"))
        .collect();
    assert_eq!(tokens.len(), 1, "exactly one shows a new token: {heads:?}");
    let token = format!("cew_admin_{}", tokens[0]);
    let hashes = pg::psql(
        &url,
        "SELECT count(*) FROM meta WHERE key = 'admin_token_sha256'",
    );
    assert_eq!(hashes, "1");
    let agent = util::client();
    for (base, _) in &heads {
        let response = agent
            .get(&format!("{base}/v1/endpoints"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "the token works at {base}");
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn the_live_instances_are_counted_and_a_stopped_one_leaves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut services = three(dir.path(), "2s");
    let url = services[0].db_arg.clone();
    let live = || pg::psql(&url, "SELECT count(*) FROM instances");
    eventually(
        "three heartbeats",
        Duration::from_secs(10),
        || match live().as_str() {
            "3" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    let gauge = |service: &Service| -> String {
        let response = util::client()
            .get(&format!("{}/metrics", service.base))
            .call()
            .unwrap();
        let page = response.into_body().read_to_string().unwrap();
        page.lines()
            .find_map(|line| line.strip_prefix("clockeye_instances "))
            .unwrap_or_else(|| panic!("no clockeye_instances in {page}"))
            .to_string()
    };
    assert_eq!(gauge(&services[0]), "3");
    let status = services[2].terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(live(), "2", "a clean stop removes its row");
    assert_eq!(gauge(&services[1]), "2");
    // A killed one stays listed until its heartbeat is 5 s old, then no longer counts.
    services[1].kill();
    eventually(
        "the killed instance to stop counting",
        Duration::from_secs(10),
        || match gauge(&services[0]).as_str() {
            "1" => Ok(()),
            other => Err(other.to_string()),
        },
    );
}

#[test]
fn the_listen_thread_connects_again_after_its_connection_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start_db(dir.path(), &pg::database(), &flags("2s"));
    let url = service.db_arg.clone();
    let connected = || service.stderr().matches("listen: waiting for").count();
    eventually(
        "the listen connection",
        Duration::from_secs(10),
        || match connected() {
            1 => Ok(()),
            seen => Err(format!("{seen} connections")),
        },
    );
    let cut = pg::psql(
        &url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'clockeye-listen' AND datname = current_database()",
    );
    assert_eq!(cut, "1", "one listen connection per instance");
    eventually(
        "a new listen connection",
        Duration::from_secs(10),
        || match (
            connected(),
            service
                .stderr()
                .contains("listen: no notification connection"),
        ) {
            (2, true) => Ok(()),
            seen => Err(format!("{seen:?} (connections, the loss logged)")),
        },
    );
    let listening = pg::psql(
        &url,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'clockeye-listen' AND datname = current_database()",
    );
    assert_eq!(listening, "1");
}
