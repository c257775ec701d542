//! The commands that talk to a running service through its HTTP API: `send`, `endpoints …`,
//! `deliveries …`, `recover`. Human tables on stdout by default, the API's JSON with `--json`;
//! progress of bulk work on stderr; one line on stderr when something fails.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Failure, Outcome, Parsed, failed, usage};
use crate::catalog;
use crate::time::{format_rfc3339_seconds, now_ms, parse_duration, parse_rfc3339};

/// The service's address when neither `--server` nor `CLOCKEYE_SERVER` is given.
pub const SERVER_DEFAULT: &str = "http://127.0.0.1:7740";
/// The whole of one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest API answer read (a page of 500 deliveries is about 200 KiB).
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Rows per page the API gives at most.
const PAGE_LIMIT_MAX: usize = 500;
/// Rows `--all` collects at most; narrow the listing with filters beyond that.
const LIST_ROWS_MAX: usize = 200_000;
/// How long `endpoints test --wait` waits for the first attempt's result.
const TEST_WAIT_MAX: Duration = Duration::from_secs(60);
/// Ids `deliveries retry -` reads from stdin at most.
const RETRY_IDS_MAX: usize = LIST_ROWS_MAX;
/// Calls `recover` makes at most (the server requeues up to 10,000 per call).
const RECOVER_CALLS_MAX: usize = 100;
/// Largest `--data @FILE`: the largest event the service may accept.
const DATA_BYTES_MAX: u64 = crate::config::EVENT_BYTES_LIMIT_MAX as u64;

struct Client {
    agent: ureq::Agent,
    server: String,
    token: String,
}

impl Client {
    fn new(parsed: &Parsed) -> Result<Client, Failure> {
        let server = parsed
            .get_or_env("server", "CLOCKEYE_SERVER")
            .unwrap_or_else(|| SERVER_DEFAULT.to_string());
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(usage(format!(
                "--server: \"{server}\" is not an http:// or https:// URL (example: {SERVER_DEFAULT})"
            )));
        }
        let token = parsed
            .get_or_env("token", "CLOCKEYE_TOKEN")
            .ok_or_else(|| {
                usage(
                    "no token: pass --token or set CLOCKEYE_TOKEN (the admin token shown at the \
                 service's first start, or a workspace token)",
                )
            })?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            // The API drops connections idle for 5 s; reuse one only well before that.
            .max_idle_age(Duration::from_secs(2))
            // The public web's roots, as the service's own attempts use.
            .tls_config(crate::engine::worker::tls_config(&[]))
            .build()
            .into();
        Ok(Client {
            agent,
            server: server.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// One API call; the answer's JSON (`Null` for 204), or a one-line failure.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.server);
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token));
        let request = match body {
            Some(body) => builder
                .header("Content-Type", "application/json")
                .body(body.to_string().into_bytes()),
            None => builder.body(Vec::new()),
        }
        .map_err(|e| usage(format!("cannot make a request to {url}: {e}")))?;
        let mut response = self.agent.run(request).map_err(|error| match error {
            ureq::Error::Timeout(_) => Failure::Stop(format!(
                "{method} {path}: no answer from the server at {} within {}s",
                self.server,
                REQUEST_TIMEOUT.as_secs()
            )),
            error => Failure::Stop(format!(
                "cannot reach the server at {}: {error} (is clockeye-webhooks serve running \
                 there? set --server or CLOCKEYE_SERVER)",
                self.server
            )),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_string()
            .map_err(|e| failed(format!("{method} {path}: reading the answer failed: {e}")))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        match status {
            200..=299 => Ok(value),
            401 => Err(Failure::Stop(api_error(status, &value))),
            _ => Err(failed(api_error(status, &value))),
        }
    }
}

/// `401 unauthorized: the bearer token is not valid (…)`: status, code, message, field.
fn api_error(status: u16, value: &Value) -> String {
    let error = &value["error"];
    let mut line = match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("server answered {status} {code}: {message}"),
        _ => {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            // One line, whatever the server sent.
            let excerpt: String = text
                .chars()
                .take(200)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("server answered {status}: {excerpt}")
        }
    };
    if let Some(field) = error["field"].as_str() {
        line.push_str(&format!(" (field: {field})"));
    }
    if status == 401 {
        line.push_str("; check --token or CLOCKEYE_TOKEN");
    }
    if status == 404
        && error["code"] == "not_found"
        && error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no route"))
    {
        line.push_str("; this server may be older than this command");
    }
    line
}

pub fn main(name: &str, parsed: &Parsed) -> Outcome {
    let client = Client::new(parsed)?;
    let json = parsed.has("json");
    match name {
        "send" => send(&client, parsed, json),
        "endpoints list" => endpoints_list(&client, parsed, json),
        "endpoints show" => {
            let id = one_id(parsed, "endpoints show", "ID")?;
            let endpoint = client.call("GET", &format!("/v1/endpoints/{}", segment(&id)), None)?;
            print_value(json, &endpoint, || endpoint_text(&endpoint))
        }
        "endpoints add" => endpoints_add(&client, parsed, json),
        "endpoints update" => endpoints_update(&client, parsed, json),
        "endpoints remove" => {
            let ids = ids(parsed, "endpoints remove")?;
            bulk(&ids, "removed", json, |id| {
                client
                    .call("DELETE", &format!("/v1/endpoints/{}", segment(id)), None)
                    .map(|_| json!({"id": id, "removed": true}))
            })
        }
        "endpoints rotate" => endpoints_rotate(&client, parsed, json),
        "endpoints test" => endpoints_test(&client, parsed, json),
        "endpoints secret" => {
            let id = one_id(parsed, "endpoints secret", "ID")?;
            let secrets = client.call(
                "GET",
                &format!("/v1/endpoints/{}/secret", segment(&id)),
                None,
            )?;
            // The secret alone on stdout, so `$(… endpoints secret ID)` captures just it.
            if let (false, Some(until)) = (json, secrets["previous_secret_expires_at"].as_str()) {
                eprintln!("the previous secret also signs until {until}");
            }
            print_value(json, &secrets, || {
                format!("{}\n", text_of(&secrets["secret"]))
            })
        }
        "deliveries list" => deliveries_list(&client, parsed, json),
        "deliveries show" => {
            let id = one_id(parsed, "deliveries show", "ID")?;
            let delivery = client.call("GET", &format!("/v1/deliveries/{}", segment(&id)), None)?;
            print_value(json, &delivery, || delivery_text(&delivery))
        }
        "deliveries retry" => {
            let ids = ids(parsed, "deliveries retry")?;
            bulk(&ids, "retried", json, |id| {
                client.call(
                    "POST",
                    &format!("/v1/deliveries/{}/retry", segment(id)),
                    None,
                )
            })
        }
        "recover" => recover(&client, parsed, json),
        _ => unreachable!("every remote command is dispatched"),
    }
}

fn print_value(json: bool, value: &Value, text: impl FnOnce() -> String) -> Outcome {
    if json {
        println!("{}", pretty(value));
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a Value serializes")
}

fn one_id(parsed: &Parsed, command: &str, what: &str) -> Result<String, Failure> {
    match parsed.positionals.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(usage(format!("{command} needs {what}"))),
        _ => Err(usage(format!("{command} takes one {what}"))),
    }
}

/// The ids given as arguments, or read from stdin for `-` (whitespace-separated).
fn ids(parsed: &Parsed, command: &str) -> Result<Vec<String>, Failure> {
    let mut ids = Vec::new();
    let mut from_stdin = false;
    for arg in &parsed.positionals {
        if arg == "-" {
            from_stdin = true;
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| failed(format!("reading ids from stdin: {e}")))?;
                ids.extend(line.split_whitespace().map(str::to_string));
                if ids.len() > RETRY_IDS_MAX {
                    return Err(usage(format!("more than {RETRY_IDS_MAX} ids")));
                }
            }
        } else {
            ids.push(arg.clone());
        }
    }
    // `… --ids | … retry -` with nothing to do is not a mistake: zero ids, done.
    if ids.is_empty() && !from_stdin {
        return Err(usage(format!(
            "{command} needs one or more ids (or - to read them from stdin)"
        )));
    }
    Ok(ids)
}

/// Percent-encodes one path segment or query value.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Progress of bulk work on stderr: rewritten in place on a terminal, else a line a second.
struct Progress {
    label: &'static str,
    terminal: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(label: &'static str) -> Progress {
        Progress {
            label,
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, text: &str, done: bool) {
        let due = self
            .last
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(1));
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r{} {text}", self.label);
            if done {
                let _ = writeln!(stderr);
            }
        } else if done || due {
            let _ = writeln!(stderr, "{} {text}", self.label);
        }
        if due {
            self.last = Some(Instant::now());
        }
    }
}

/// Runs `call` for each id with progress (when more than one); prints a table of outcomes, or
/// a JSON array. Fails (exit 1) when any one failed, after trying all.
fn bulk(
    ids: &[String],
    verb: &'static str,
    json: bool,
    call: impl Fn(&str) -> Result<Value, Failure>,
) -> Outcome {
    if ids.is_empty() {
        // `- ` with nothing on stdin: nothing to do is not a failure.
        if json {
            println!("[]");
        } else {
            eprintln!("no ids on stdin: nothing {verb}");
        }
        return Ok(());
    }
    let mut progress = (ids.len() > 1).then(|| Progress::new(verb));
    let mut results = Vec::new();
    let mut failures = 0;
    for (index, id) in ids.iter().enumerate() {
        let result = call(id);
        if let Err(Failure::Stop(message)) = result {
            if progress.as_ref().is_some_and(|p| p.terminal) {
                eprintln!();
            }
            return Err(Failure::Stop(format!(
                "{message}; stopped after {index} of {}",
                ids.len()
            )));
        }
        if result.is_err() {
            failures += 1;
        }
        results.push((id, result));
        if let Some(progress) = &mut progress {
            let done = index + 1 == ids.len();
            let failed_note = if failures > 0 {
                format!(", {failures} failed")
            } else {
                String::new()
            };
            progress.show(&format!("{}/{}{failed_note}", index + 1, ids.len()), done);
        }
    }
    if json {
        let items: Vec<Value> = results
            .iter()
            .map(|(id, result)| match result {
                Ok(value) => json!({"id": id, "ok": true, "result": value}),
                Err(
                    Failure::Failed(message) | Failure::Usage(message) | Failure::Stop(message),
                ) => {
                    json!({"id": id, "ok": false, "error": message})
                }
            })
            .collect();
        println!("{}", pretty(&Value::Array(items)));
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|(id, result)| {
                let outcome = match result {
                    Ok(value) => match value["status"].as_str() {
                        Some(status) => format!("{verb}: now {status}"),
                        None => verb.to_string(),
                    },
                    Err(
                        Failure::Failed(message) | Failure::Usage(message) | Failure::Stop(message),
                    ) => format!("failed: {message}"),
                };
                vec![id.to_string(), outcome]
            })
            .collect();
        print!("{}", table(&["ID", "RESULT"], &rows));
    }
    if failures > 0 {
        return Err(failed(format!("{failures} of {} failed", ids.len())));
    }
    Ok(())
}

/// Columns aligned by characters; the last column is not padded.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[index] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// A value as one table cell. Text from others (descriptions, reasons, URLs) is shown with
/// its control characters as `?`, so it cannot move the cursor, recolour the terminal or
/// break the table.
fn text_of(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) if text.is_empty() => "-".to_string(),
        Value::String(text) => text
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `since`/`until` as RFC 3339, from RFC 3339 or a duration ago (`2h`).
fn time_arg(flag: &str, text: &str) -> Result<String, Failure> {
    if parse_rfc3339(text).is_some() {
        return Ok(text.to_string());
    }
    match parse_duration(text) {
        Ok(ago) => Ok(format_rfc3339_seconds(crate::time::before_ms(
            now_ms(),
            ago,
        ))),
        Err(_) => Err(usage(format!(
            "--{flag}: \"{text}\" is neither an RFC 3339 time (2024-01-15T10:00:00Z) nor a duration ago (2h)"
        ))),
    }
}

/// Follows `next` cursors until `want` rows (or all, with `None`); progress on stderr when
/// more than one page is fetched.
fn list_pages(
    client: &Client,
    path: &str,
    filters: &[(&str, Option<&str>)],
    want: Option<usize>,
    what: &'static str,
) -> Result<Value, Failure> {
    let mut rows: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    let mut progress: Option<Progress> = None;
    let mut pages = 0;
    let cap = want.unwrap_or(LIST_ROWS_MAX);
    loop {
        let limit = (cap - rows.len()).clamp(1, PAGE_LIMIT_MAX).to_string();
        let mut pairs = filters.to_vec();
        pairs.push(("limit", Some(&limit)));
        pairs.push(("after", after.as_deref()));
        let page = client.call("GET", &format!("{path}{}", query(&pairs)), None)?;
        pages += 1;
        if let Some(data) = page["data"].as_array() {
            rows.extend(data.iter().cloned());
        }
        after = page["next"].as_str().map(str::to_string);
        let finished = after.is_none() || rows.len() >= cap;
        if pages > 1 || !finished {
            progress
                .get_or_insert_with(|| Progress::new("fetched"))
                .show(&format!("{} {what} ({pages} pages)", rows.len()), finished);
        }
        if finished {
            if want.is_none() && after.is_some() {
                eprintln!("stopped at {LIST_ROWS_MAX} {what}; narrow the listing with its filters");
            } else if after.is_some() {
                eprintln!(
                    "{} {what} shown; there are more (--limit N or --all)",
                    rows.len()
                );
            }
            return Ok(json!({"data": rows, "next": after}));
        }
    }
}

fn rows_wanted(parsed: &Parsed) -> Result<Option<usize>, Failure> {
    if parsed.has("all") {
        if parsed.has("limit") {
            return Err(usage("--all and --limit do not go together"));
        }
        return Ok(None);
    }
    match parsed.get("limit") {
        None => Ok(Some(50)),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=LIST_ROWS_MAX).contains(&n) => Ok(Some(n)),
            _ => Err(usage(format!(
                "--limit: \"{text}\" is not a whole number from 1 to {LIST_ROWS_MAX}"
            ))),
        },
    }
}

fn send(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    let event_type = one_id(
        parsed,
        "send",
        "TYPE (an event type, e.g. time_entry.created)",
    )?;
    let data = match parsed.get("data") {
        Some(text) => read_data(text)?,
        None => catalog::sample(&event_type).ok_or_else(|| {
            let known: Vec<&str> = catalog::EVENT_TYPES.iter().map(|t| t.name).collect();
            usage(format!(
                "\"{event_type}\" is not an event type this command knows a sample for (known: {}); \
                 give --data to send it anyway",
                known.join(", ")
            ))
        })?,
    };
    let mut body = json!({"type": event_type, "data": data});
    if let Some(workspace) = parsed.get("workspace") {
        body["workspace_id"] = workspace.into();
    }
    if let Some(id) = parsed.get("id") {
        body["id"] = id.into();
    }
    let answer = client.call("POST", "/v1/events", Some(&body))?;
    print_value(json, &answer, || {
        let deliveries = answer["deliveries"].as_array().cloned().unwrap_or_default();
        let mut text = format!(
            "sent {} ({}, workspace {}) to {} endpoint{}\n",
            text_of(&answer["id"]),
            text_of(&answer["type"]),
            text_of(&answer["workspace_id"]),
            deliveries.len(),
            if deliveries.len() == 1 { "" } else { "s" },
        );
        if !deliveries.is_empty() {
            let rows: Vec<Vec<String>> = deliveries
                .iter()
                .map(|d| vec![text_of(&d["id"]), text_of(&d["endpoint_id"])])
                .collect();
            text.push_str(&table(&["DELIVERY", "ENDPOINT"], &rows));
        }
        text
    })
}

/// `--data`: JSON text, `@FILE`, or `@-` for stdin.
fn read_data(text: &str) -> Result<Value, Failure> {
    use std::io::Read;
    let (source, raw) = match text.strip_prefix('@') {
        Some(path) => {
            let mut raw = String::new();
            let read = if path == "-" {
                std::io::stdin()
                    .lock()
                    .take(DATA_BYTES_MAX)
                    .read_to_string(&mut raw)
            } else {
                std::fs::File::open(path)
                    .and_then(|file| file.take(DATA_BYTES_MAX).read_to_string(&mut raw))
            };
            read.map_err(|e| usage(format!("--data: cannot read {path}: {e}")))?;
            (path.to_string(), raw)
        }
        None => ("--data".to_string(), text.to_string()),
    };
    serde_json::from_str(&raw).map_err(|e| usage(format!("--data: {source} is not JSON: {e}")))
}

fn endpoints_list(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    if !parsed.positionals.is_empty() {
        return Err(usage("endpoints list takes no arguments, only flags"));
    }
    let page = list_pages(
        client,
        "/v1/endpoints",
        &[("workspace_id", parsed.get("workspace"))],
        rows_wanted(parsed)?,
        "endpoints",
    )?;
    print_value(json, &page, || {
        let rows: Vec<Vec<String>> = page["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                vec![
                    text_of(&e["id"]),
                    text_of(&e["url"]),
                    text_of(&e["events"]),
                    if e["enabled"] == true { "yes" } else { "no" }.to_string(),
                    text_of(&e["workspace_id"]),
                    text_of(&e["description"]),
                ]
            })
            .collect();
        table(
            &["ID", "URL", "EVENTS", "ENABLED", "WORKSPACE", "DESCRIPTION"],
            &rows,
        )
    })
}

fn endpoint_text(endpoint: &Value) -> String {
    let mut text = String::new();
    let Some(fields) = endpoint.as_object() else {
        return text;
    };
    let width = fields.keys().map(|k| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        let shown = match value {
            Value::Object(map) if map.is_empty() => "-".to_string(),
            Value::Object(_) => value.to_string(),
            other => text_of(other),
        };
        text.push_str(&format!("{key:<width$}  {shown}\n"));
    }
    text
}

/// `--events a,b` → `["a","b"]`.
fn event_types(text: &str) -> Value {
    Value::Array(
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Value::from)
            .collect(),
    )
}

/// `--header 'Name: value'` (repeatable) → `{"Name": "value"}`.
fn headers(values: &[&str]) -> Result<Value, Failure> {
    let mut map = Map::new();
    for value in values {
        let (name, text) = value.split_once(':').ok_or_else(|| {
            usage(format!(
                "--header: \"{value}\" is not NAME: VALUE (example: 'Authorization: Bearer x')"
            ))
        })?;
        map.insert(name.trim().to_string(), Value::from(text.trim()));
    }
    Ok(Value::Object(map))
}

/// `--rate-limit N|none` and `--ordering none|subject` into an endpoint body; the API checks
/// the ranges and names the field if they are wrong.
fn flow_fields(parsed: &Parsed, body: &mut Value) -> Result<(), Failure> {
    if let Some(rate_limit) = parsed.get("rate-limit") {
        body["rate_limit"] = match rate_limit {
            "none" => Value::Null,
            text => text.parse::<u64>().map(Value::from).map_err(|_| {
                usage(format!(
                    "--rate-limit: \"{text}\" is not a whole number of deliveries per second (or none)"
                ))
            })?,
        };
    }
    if let Some(ordering) = parsed.get("ordering") {
        body["ordering"] = ordering.into();
    }
    Ok(())
}

fn endpoints_add(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    let url = one_id(parsed, "endpoints add", "URL")?;
    let mut body = json!({"url": url, "events": event_types(parsed.get("events").unwrap_or("*"))});
    if let Some(description) = parsed.get("description") {
        body["description"] = description.into();
    }
    if let Some(workspace) = parsed.get("workspace") {
        body["workspace_id"] = workspace.into();
    }
    let header_values = parsed.all("header");
    if !header_values.is_empty() {
        body["headers"] = headers(&header_values)?;
    }
    flow_fields(parsed, &mut body)?;
    let endpoint = client.call("POST", "/v1/endpoints", Some(&body))?;
    print_value(json, &endpoint, || {
        format!(
            "created {} for {} ({})\nsecret: {}\n(the receiver verifies signatures with it; keep it secret)\n",
            text_of(&endpoint["id"]),
            text_of(&endpoint["url"]),
            text_of(&endpoint["events"]),
            text_of(&endpoint["secret"]),
        )
    })
}

fn endpoints_update(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    let id = one_id(parsed, "endpoints update", "ID")?;
    let mut body = json!({});
    if let Some(url) = parsed.get("url") {
        body["url"] = url.into();
    }
    if let Some(events) = parsed.get("events") {
        body["events"] = event_types(events);
    }
    if let Some(description) = parsed.get("description") {
        body["description"] = description.into();
    }
    let header_values = parsed.all("header");
    if !header_values.is_empty() {
        body["headers"] = headers(&header_values)?;
    }
    flow_fields(parsed, &mut body)?;
    match (parsed.has("enable"), parsed.has("disable")) {
        (true, true) => return Err(usage("--enable and --disable do not go together")),
        (true, false) => body["enabled"] = true.into(),
        (false, true) => body["enabled"] = false.into(),
        (false, false) => {}
    }
    if body.as_object().is_some_and(Map::is_empty) {
        return Err(usage(
            "endpoints update needs something to change: --url, --events, --description, --header, --rate-limit, --ordering, --enable or --disable",
        ));
    }
    let endpoint = client.call(
        "PATCH",
        &format!("/v1/endpoints/{}", segment(&id)),
        Some(&body),
    )?;
    print_value(json, &endpoint, || {
        format!("updated {}\n{}", id, endpoint_text(&endpoint))
    })
}

fn endpoints_rotate(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    let id = one_id(parsed, "endpoints rotate", "ID")?;
    let mut body = json!({});
    if let Some(overlap) = parsed.get("overlap") {
        parse_duration(overlap).map_err(|e| usage(format!("--overlap: {e}")))?;
        body["overlap"] = overlap.into();
    }
    let endpoint = client.call(
        "POST",
        &format!("/v1/endpoints/{}/rotate-secret", segment(&id)),
        Some(&body),
    )?;
    print_value(json, &endpoint, || {
        let previous = match endpoint["previous_secret_expires_at"].as_str() {
            Some(until) => format!("the previous secret stays valid until {until}"),
            None => "the previous secret no longer signs".to_string(),
        };
        format!(
            "rotated the secret of {id}\nnew secret: {}\n{previous}\n",
            text_of(&endpoint["secret"])
        )
    })
}

fn endpoints_test(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    let id = one_id(parsed, "endpoints test", "ID")?;
    let mut body = json!({});
    if let Some(event_type) = parsed.get("type") {
        body["type"] = event_type.into();
    }
    let event = client.call(
        "POST",
        &format!("/v1/endpoints/{}/test", segment(&id)),
        Some(&body),
    )?;
    let delivery_id = event["deliveries"][0]["id"].as_str().map(str::to_string);
    if !parsed.has("wait") {
        return print_value(json, &event, || {
            format!(
                "sent test event {} ({}) to {id}: delivery {}\n",
                text_of(&event["id"]),
                text_of(&event["type"]),
                delivery_id.as_deref().unwrap_or("-"),
            )
        });
    }
    let Some(delivery_id) = delivery_id else {
        return Err(failed(format!(
            "the server queued no delivery for the test event: {event}"
        )));
    };
    let deadline = Instant::now() + TEST_WAIT_MAX;
    let delivery = loop {
        let delivery = client.call(
            "GET",
            &format!("/v1/deliveries/{}", segment(&delivery_id)),
            None,
        )?;
        let attempted = delivery["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        // Settled: finished, or waiting for a scheduled retry. Not an attempt about to go out
        // again at once (after a refused signature during a rotation, or while in flight).
        let retry_later = delivery["next_attempt_at"]
            .as_str()
            .and_then(parse_rfc3339)
            .is_some_and(|at| at > now_ms() + 1000);
        let settled = matches!(delivery["status"].as_str(), Some("succeeded" | "failed"))
            || (delivery["status"] == "pending" && retry_later);
        if (attempted && settled) || Instant::now() >= deadline {
            break delivery;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let attempt = delivery["attempts"]
        .as_array()
        .and_then(|a| a.last())
        .cloned();
    if json {
        println!("{}", pretty(&json!({"event": event, "delivery": delivery})));
    } else {
        println!(
            "sent test event {} ({}) to {id}: delivery {delivery_id}",
            text_of(&event["id"]),
            text_of(&event["type"]),
        );
        match &attempt {
            Some(attempt) => println!("{}", attempt_line(attempt)),
            None => println!(
                "no attempt within {}s (status {})",
                TEST_WAIT_MAX.as_secs(),
                text_of(&delivery["status"])
            ),
        }
    }
    match attempt {
        Some(attempt)
            if attempt["error_class"].is_null()
                && attempt["status_code"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s)) =>
        {
            Ok(())
        }
        _ => Err(failed("the test delivery did not succeed")),
    }
}

fn attempt_line(attempt: &Value) -> String {
    let result = match (
        attempt["status_code"].as_u64(),
        attempt["error_class"].as_str(),
    ) {
        (Some(status), _) if (200..300).contains(&status) => format!("succeeded: {status}"),
        (Some(status), _) => format!("failed: {status}"),
        (None, Some(class)) => format!("failed: {class} ({})", text_of(&attempt["error"])),
        (None, None) => "unknown".to_string(),
    };
    format!(
        "attempt {} at {}: {result} in {} ms",
        text_of(&attempt["number"]),
        text_of(&attempt["started_at"]),
        text_of(&attempt["duration_ms"]),
    )
}

fn deliveries_list(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    if !parsed.positionals.is_empty() {
        return Err(usage("deliveries list takes no arguments, only flags"));
    }
    if let Some(status) = parsed.get("status")
        && !crate::model::DELIVERY_STATUSES.contains(&status)
    {
        return Err(usage(format!(
            "--status: \"{status}\" is not pending, delivering, succeeded or failed"
        )));
    }
    let page = list_pages(
        client,
        "/v1/deliveries",
        &[
            ("endpoint_id", parsed.get("endpoint")),
            ("event_id", parsed.get("event")),
            ("status", parsed.get("status")),
            ("workspace_id", parsed.get("workspace")),
        ],
        rows_wanted(parsed)?,
        "deliveries",
    )?;
    let rows = page["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if parsed.has("ids") {
        for delivery in rows {
            println!("{}", text_of(&delivery["id"]));
        }
        return Ok(());
    }
    print_value(json, &page, || {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|d| {
                vec![
                    text_of(&d["id"]),
                    text_of(&d["status"]),
                    text_of(&d["attempts_made"]),
                    text_of(&d["event_type"]),
                    text_of(&d["event_id"]),
                    text_of(&d["endpoint_id"]),
                    text_of(&d["created_at"]),
                ]
            })
            .collect();
        table(
            &[
                "ID", "STATUS", "ATTEMPTS", "TYPE", "EVENT", "ENDPOINT", "CREATED",
            ],
            &rows,
        )
    })
}

fn delivery_text(delivery: &Value) -> String {
    let mut text = String::new();
    for key in [
        "id",
        "status",
        "event_type",
        "event_id",
        "endpoint_id",
        "workspace_id",
        "attempts_made",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ] {
        text.push_str(&format!("{key:<16} {}\n", text_of(&delivery[key])));
    }
    let attempts = delivery["attempts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if attempts.is_empty() {
        text.push_str("\nno attempts yet\n");
        return text;
    }
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|a| {
            let excerpt: String = text_of(&a["response_excerpt"])
                .chars()
                .take(60)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            vec![
                text_of(&a["number"]),
                text_of(&a["started_at"]),
                format!("{} ms", text_of(&a["duration_ms"])),
                text_of(&a["status_code"]),
                text_of(&a["error_class"]),
                excerpt,
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(
        &["#", "STARTED", "DURATION", "STATUS", "ERROR", "RESPONSE"],
        &rows,
    ));
    text
}

fn recover(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
    let endpoint = one_id(parsed, "recover", "ENDPOINT (an endpoint id)")?;
    let since = time_arg("since", parsed.required("since", "recover")?)?;
    // A fixed end, so deliveries that fail again while this runs are not taken twice.
    let until = match parsed.get("until") {
        Some(until) => time_arg("until", until)?,
        None => format_rfc3339_seconds(now_ms() + 1000),
    };
    let mut body = json!({"since": since, "until": until});
    let path = format!("/v1/endpoints/{}/recover", segment(&endpoint));
    // The server requeues a bounded number per call and says when there are more.
    let mut requeued = 0;
    let mut calls = 0;
    let mut progress: Option<Progress> = None;
    let answer = loop {
        let answer = client.call("POST", &path, Some(&body))?;
        calls += 1;
        requeued += answer["requeued"].as_u64().unwrap_or(0);
        let more = answer["more"] == true && calls < RECOVER_CALLS_MAX;
        // Go on after the last one taken: those re-queued are not taken again.
        body["after"] = answer["next"].clone();
        if calls > 1 || more {
            progress
                .get_or_insert_with(|| Progress::new("requeued"))
                .show(&format!("{requeued} deliveries"), !more);
        }
        if !more {
            break answer;
        }
    };
    if answer["more"] == true {
        eprintln!(
            "stopped after {calls} calls ({requeued} deliveries); more are failed in the window: run again later"
        );
    }
    let total =
        json!({"requeued": requeued, "more": answer["more"], "since": since, "until": until});
    print_value(json, &total, || {
        format!(
            "requeued {requeued} failed deliveries of {endpoint} created from {since} to {until}\n"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_by_characters() {
        let text = table(
            &["ID", "URL", "NOTE"],
            &[
                vec!["ep_1".into(), "https://a.example/é".into(), "x".into()],
                vec!["ep_22".into(), "https://b".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "ID     URL                  NOTE\n\
             ep_1   https://a.example/é  x\n\
             ep_22  https://b\n"
        );
    }

    #[test]
    fn api_errors_read_as_one_line_with_the_field() {
        let value = json!({"error": {"code": "invalid_field", "message": "data.user_id is required", "field": "data.user_id"}});
        assert_eq!(
            api_error(422, &value),
            "server answered 422 invalid_field: data.user_id is required (field: data.user_id)"
        );
        let unauthorized =
            json!({"error": {"code": "unauthorized", "message": "the bearer token is not valid"}});
        assert!(api_error(401, &unauthorized).ends_with("check --token or CLOCKEYE_TOKEN"));
        assert_eq!(
            api_error(502, &Value::String("bad gateway".into())),
            "server answered 502: bad gateway"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("since", Some("2024-01-15T10:00:00+01:00")), ("x", None)]),
            "?since=2024-01-15T10%3A00%3A00%2B01%3A00"
        );
        assert_eq!(query(&[("x", None)]), "");
    }
}
