//! Kill -9 at random moments under load: every acknowledged event is still delivered to every
//! subscribed endpoint, with the same id and the same body bytes.

mod util;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use util::{ADMIN_TOKEN, Backend, Receiver, Service, client, eventually, local_flags, rand_u64};

const CLIENTS: usize = 4;
const KILLS: usize = 5;

fn sigkill_under_load_loses_no_acknowledged_event(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok();
    let mut service = Service::start_backend(
        backend,
        dir.path(),
        &local_flags("200ms,200ms,200ms,200ms,200ms"),
    );
    service.create_endpoint(&format!("{}/a", receiver.url), &["*"], None);
    service.create_endpoint(&format!("{}/b", receiver.url), &["project.created"], None);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();

    for cycle in 0..=KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (base, stop, acknowledged) =
                (service.base.clone(), stop.clone(), acknowledged.clone());
            clients.push(std::thread::spawn(move || {
                let agent = client();
                let body = json!({"type": "project.created", "data": {"id": "p", "name": "load", "created_by": "u"}}).to_string();
                while !stop.load(Ordering::SeqCst) {
                    let response = agent
                        .post(&format!("{base}/v1/events"))
                        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes());
                    match response {
                        Ok(mut response) if response.status() == 202 => {
                            let value: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
                            acknowledged.lock().unwrap().push(value["id"].as_str().unwrap().to_string());
                        }
                        Ok(response) => panic!("unexpected status {}", response.status()),
                        Err(_) => return, // the service was killed under us
                    }
                }
            }));
        }
        if cycle == KILLS {
            // Last round: run clean for a moment, then stop the clients.
            eventually(
                "some events acknowledged in the last round",
                Duration::from_secs(10),
                || {
                    let count = acknowledged.lock().unwrap().len();
                    if count > 0 {
                        Ok(())
                    } else {
                        Err(format!("{count}"))
                    }
                },
            );
            stop.store(true, Ordering::SeqCst);
            for client in clients {
                client.join().unwrap();
            }
            break;
        }
        // Fault injection: a random moment 100–500 ms into the load, not a wait for a state.
        std::thread::sleep(Duration::from_millis(100 + rand_u64() % 400));
        service.kill();
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().unwrap();
        }
        service = Service::start_db(
            dir.path(),
            &service.db_arg,
            &local_flags("200ms,200ms,200ms,200ms,200ms"),
        );
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "the load was real: {} events",
        acknowledged.len()
    );
    let received = eventually(
        "every acknowledged event at both endpoints",
        Duration::from_secs(60),
        || {
            let received = receiver.received();
            let mut seen: HashMap<(&str, String), usize> = HashMap::new();
            for request in &received {
                *seen
                    .entry((
                        request.path.as_str(),
                        request.header("x-clockeye-event-id").unwrap().to_string(),
                    ))
                    .or_default() += 1;
            }
            let missing = acknowledged
                .iter()
                .flat_map(|id| ["/a", "/b"].map(|path| (path, id.clone())))
                .filter(|key| !seen.contains_key(key))
                .count();
            if missing == 0 {
                Ok(received.clone())
            } else {
                Err(format!(
                    "{missing} of {} deliveries missing",
                    2 * acknowledged.len()
                ))
            }
        },
    );
    let mut bodies: HashMap<(String, String), Vec<u8>> = HashMap::new();
    let mut duplicates = 0;
    for request in &received {
        let key = (
            request.path.clone(),
            request.header("x-clockeye-event-id").unwrap().to_string(),
        );
        match bodies.get(&key) {
            Some(body) => {
                duplicates += 1;
                assert_eq!(body, &request.body, "a redelivery carries the same bytes");
            }
            None => {
                bodies.insert(key, request.body.clone());
            }
        }
    }
    eprintln!(
        "{} events acknowledged across {KILLS} kills; {} requests received, {duplicates} duplicates",
        acknowledged.len(),
        received.len()
    );
}

both_backends!(sigkill_under_load_loses_no_acknowledged_event);
