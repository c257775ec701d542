//! `listen`: a local receiver on 127.0.0.1 for people building one. Prints a line per webhook
//! (type, event id, attempt, whether the signature verified) and answers, or forwards the request
//! (same body bytes and headers) and relays the answer. Runs until interrupted. With
//! `--register` it first adds a temporary endpoint pointing at itself (as `stripe listen` does),
//! verifies with that endpoint's secret, and removes the endpoint when interrupted.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::verify::BODY_BYTES_MAX;
use super::{Outcome, Parsed, failed, usage};
use crate::time::{format_rfc3339_millis, now_ms};
use crate::verify::{Check, Scheme, TOLERANCE_DEFAULT, diagnose};

/// The port `listen` takes when none is given (the service's API is on 7740).
pub(crate) const PORT_DEFAULT: u16 = 7741;
/// Threads answering requests; a slow forward target holds one each.
const THREADS: usize = 4;
/// The whole forwarded request: connect, send, wait, read.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of a forward target's answer relayed back.
const FORWARD_RESPONSE_BYTES_MAX: u64 = 1024 * 1024;
/// Headers not passed on when forwarding: they describe this connection, not the webhook.
const HOP_BY_HOP_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
    "proxy-authorization",
];

struct Settings {
    secret: Option<String>,
    forward_to: Option<String>,
    status: u16,
    json: bool,
    agent: ureq::Agent,
}

pub(crate) fn main(parsed: &Parsed) -> Outcome {
    if !parsed.positionals.is_empty() {
        return Err(usage("listen takes no arguments, only flags"));
    }
    let port = match parsed.get("port") {
        Some(text) => text
            .parse::<u16>()
            .map_err(|_| usage(format!("--port: \"{text}\" is not a port (0 to 65535)")))?,
        None => PORT_DEFAULT,
    };
    let status = match parsed.get("status") {
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|code| (200..=599).contains(code))
            .ok_or_else(|| {
                usage(format!(
                    "--status: \"{text}\" is not an HTTP status from 200 to 599"
                ))
            })?,
        None => 200,
    };
    let forward_to = parsed.get("forward-to").map(str::to_string);
    if let Some(url) = &forward_to
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(usage(format!(
            "--forward-to: \"{url}\" is not an http:// or https:// URL"
        )));
    }
    if forward_to.is_some() && parsed.has("status") {
        return Err(usage(
            "--status and --forward-to do not go together: a forwarded webhook gets the target's answer",
        ));
    }
    if parsed.has("register") && parsed.has("secret") {
        return Err(usage(
            "--register and --secret do not go together: the registered endpoint's own secret is used",
        ));
    }
    let addr = format!("127.0.0.1:{port}");
    let listener = TcpListener::bind(&addr).map_err(|e| {
        failed(format!(
            "cannot listen on {addr}: {e} (pick another port with --port, or 0 for any free one)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| failed(format!("cannot listen on {addr}: {e}")))?;
    // The signals are caught before the endpoint exists, so a Ctrl-C at any moment after it
    // was added still removes it.
    let registered = if parsed.has("register") {
        let signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .map_err(|e| failed(format!("cannot watch for Ctrl-C: {e}")))?;
        Some((register(parsed, bound.port())?, signals))
    } else {
        None
    };
    let secret = match &registered {
        Some((registered, _)) => Some(registered.secret.clone()),
        None => parsed.get_or_env("secret", "CLOCKEYE_SECRET"),
    };
    let settings = Arc::new(Settings {
        secret,
        forward_to,
        status,
        json: parsed.has("json"),
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(FORWARD_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            // The public web's roots, as the service's own attempts use.
            .tls_config(crate::engine::worker::tls_config(&[]))
            .build()
            .into(),
    });

    let server = Arc::new(
        tiny_http::Server::from_listener(listener, None)
            .map_err(|e| failed(format!("cannot listen on {addr}: {e}")))?,
    );
    println!("listening on http://{bound}");
    if let Some(url) = &settings.forward_to {
        eprintln!("forwarding each webhook to {url}");
    }
    if let Some((registered, signals)) = registered {
        eprintln!(
            "registered endpoint {} for http://{bound}/ (its secret verifies each webhook); it is removed when listen stops",
            registered.id
        );
        remove_on_signal(registered, signals)?;
    } else if settings.secret.is_none() {
        eprintln!("no --secret: signatures are not checked");
    }
    let mut threads = Vec::new();
    for index in 0..THREADS {
        let (server, settings) = (server.clone(), settings.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("listen-{index}"))
                .spawn(move || {
                    while let Ok(request) = server.recv() {
                        handle(request, &settings);
                    }
                })
                .expect("the OS can start a thread"),
        );
    }
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

fn handle(mut request: tiny_http::Request, settings: &Settings) {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_string(), h.value.to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(BODY_BYTES_MAX as u64 + 1)
        .read_to_end(&mut body);
    let answer = if read.is_err() {
        Answer::refused(400, "the request body could not be read")
    } else if body.len() > BODY_BYTES_MAX {
        Answer::refused(413, "the request body is larger than any event")
    } else if let Some(url) = &settings.forward_to {
        forward(settings, url, request.method().as_str(), &headers, &body)
    } else {
        Answer {
            status: settings.status,
            body: b"ok".to_vec(),
            content_type: None,
            problem: None,
        }
    };
    let verdict = settings
        .secret
        .as_deref()
        .map(|secret| signature_verdict(secret, &header, &body));

    let event_type = header("X-ClockEye-Event");
    if settings.json {
        let line = json!({
            "received_at": format_rfc3339_millis(now_ms()),
            "method": request.method().as_str(),
            "path": request.url(),
            "type": event_type,
            "id": header("X-ClockEye-Event-Id").or(header("webhook-id")),
            "delivery": header("X-ClockEye-Delivery"),
            "attempt": header("X-ClockEye-Attempt").and_then(|a| a.parse::<u64>().ok()),
            "verified": verdict.as_ref().map(|v| v.is_ok()),
            "signature": verdict.as_ref().map(|v| match v { Ok(text) | Err(text) => text.clone() }),
            "status": answer.status,
            "forwarded": settings.forward_to.is_some() && answer.problem.is_none(),
            "error": answer.problem,
            "headers": headers.iter().map(|(name, value)| json!([name, value])).collect::<Vec<_>>(),
            // The body as received; JSON events are UTF-8 (anything else is shown lossily).
            "body": String::from_utf8_lossy(&body),
        });
        println!("{line}");
    } else {
        let time = &format_rfc3339_millis(now_ms())[11..19];
        let what = match event_type {
            Some(event_type) => format!(
                "{event_type} {} attempt {} ({})",
                header("X-ClockEye-Event-Id").unwrap_or("?"),
                header("X-ClockEye-Attempt").unwrap_or("?"),
                header("X-ClockEye-Delivery").unwrap_or("?"),
            ),
            None => format!(
                "{} {} (no X-ClockEye-Event header: not a ClockEye webhook?)",
                request.method(),
                request.url()
            ),
        };
        let signature = match &verdict {
            None => "signature not checked (no --secret)".to_string(),
            Some(Ok(how)) => format!("signature verified ({how})"),
            Some(Err(why)) => format!("signature NOT verified: {why}"),
        };
        let status = answer.status;
        let answered = match (&settings.forward_to, &answer.problem) {
            (_, Some(problem)) => format!("{problem} → {status}"),
            (Some(_), None) => format!("forwarded → {status}"),
            (None, None) => format!("→ {status}"),
        };
        println!("{time} {what}: {signature}; {answered}");
    }

    let mut response = tiny_http::Response::from_data(answer.body).with_status_code(answer.status);
    if let Some(content_type) = answer.content_type
        && let Ok(header) = tiny_http::Header::from_bytes("Content-Type", content_type)
    {
        response.add_header(header);
    }
    let _ = request.respond(response);
}

/// `Ok(which headers verified)` or `Err(why not)`, with the same words as `verify`.
fn signature_verdict<'a>(
    secret: &str,
    header: &dyn Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<String, String> {
    let now_s = now_ms().div_euclid(1000);
    let check = |signature: &str| {
        diagnose(&Check {
            secret,
            previous_secret: None,
            signature,
            webhook_id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            body,
            now_s,
            tolerance: TOLERANCE_DEFAULT,
        })
    };
    let results: Vec<_> = ["X-ClockEye-Signature", "webhook-signature"]
        .into_iter()
        .filter_map(header)
        .map(check)
        .collect();
    let verified: Vec<&str> = results
        .iter()
        .filter_map(|result| result.as_ref().ok().map(|scheme| Scheme::header(*scheme)))
        .collect();
    if !verified.is_empty() {
        return Ok(verified.join(", "));
    }
    match results.into_iter().find_map(Result::err) {
        Some(diagnosis) => Err(diagnosis.to_string()),
        None => Err("no X-ClockEye-Signature or webhook-signature header".into()),
    }
}

/// What `listen` answers a request with.
struct Answer {
    status: u16,
    body: Vec<u8>,
    content_type: Option<String>,
    /// Why the request was not answered as usual (refused, or the forward failed).
    problem: Option<String>,
}

impl Answer {
    fn refused(status: u16, problem: &str) -> Answer {
        Answer {
            status,
            body: problem.as_bytes().to_vec(),
            content_type: None,
            problem: Some(problem.to_string()),
        }
    }
}

/// Sends the webhook on and relays the target's status, body and content type; 502 when the
/// target cannot be reached.
fn forward(
    settings: &Settings,
    url: &str,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Answer {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        if !HOP_BY_HOP_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let request = match builder.body(body.to_vec()) {
        Ok(request) => request,
        Err(error) => {
            return Answer::refused(
                502,
                &format!("forward failed: cannot build the request: {error}"),
            );
        }
    };
    match settings.agent.run(request) {
        Ok(mut response) => Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: response
                .body_mut()
                .with_config()
                .limit(FORWARD_RESPONSE_BYTES_MAX)
                .read_to_vec()
                .unwrap_or_default(),
            problem: None,
        },
        Err(error) => Answer::refused(502, &format!("forward failed: {url}: {error}")),
    }
}

/// The temporary endpoint of `listen --register`.
struct Registered {
    client: super::remote::Client,
    id: String,
    secret: String,
}

/// Adds an endpoint for `http://127.0.0.1:PORT/` (all event types unless `--events`).
fn register(parsed: &Parsed, port: u16) -> Result<Registered, super::Failure> {
    let client = super::remote::Client::new(parsed)?;
    let url = format!("http://127.0.0.1:{port}/");
    let events: Vec<&str> = match parsed.get("events") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect(),
        None => vec!["*"],
    };
    if events.is_empty() {
        return Err(usage(
            "--events: name at least one event type, or leave it out for all",
        ));
    }
    let mut body = json!({
        "url": url,
        "events": events,
        "description": "clockeye-webhooks listen (temporary: removed when it stops)",
    });
    if let Some(workspace) = parsed.get("workspace") {
        body["workspace_id"] = workspace.into();
    }
    let endpoint = client
        .call("POST", "/v1/endpoints", Some(&body))
        .map_err(|failure| match failure {
            super::Failure::Failed(message) if message.contains("field: url") => failed(format!(
                "{message}; --register needs a development server that delivers to this machine: \
             clockeye-webhooks serve --allow-http --allow-network 127.0.0.0/8"
            )),
            other => other,
        })?;
    match (endpoint["id"].as_str(), endpoint["secret"].as_str()) {
        (Some(id), Some(secret)) => Ok(Registered {
            id: id.to_string(),
            secret: secret.to_string(),
            client,
        }),
        _ => Err(failed(format!(
            "the server answered no endpoint id and secret: {endpoint}"
        ))),
    }
}

/// On SIGINT or SIGTERM: removes the registered endpoint, then ends the process (exit 0, or 1
/// when the endpoint could not be removed, saying which to remove by hand).
fn remove_on_signal(
    registered: Registered,
    mut signals: signal_hook::iterator::Signals,
) -> Outcome {
    std::thread::Builder::new()
        .name("listen-signals".into())
        .spawn(move || {
            if signals.forever().next().is_none() {
                return;
            }
            let path = format!("/v1/endpoints/{}", super::remote::segment(&registered.id));
            match registered.client.call("DELETE", &path, None) {
                Ok(_) => {
                    eprintln!("removed endpoint {}", registered.id);
                    std::process::exit(0);
                }
                Err(super::Failure::Failed(message) | super::Failure::Stop(message) | super::Failure::Usage(message)) => {
                    eprintln!(
                        "clockeye-webhooks: could not remove endpoint {}: {message} (remove it with: clockeye-webhooks endpoints remove {})",
                        registered.id, registered.id
                    );
                    std::process::exit(1);
                }
            }
        })
        .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
    Ok(())
}
