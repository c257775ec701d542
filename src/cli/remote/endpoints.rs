//! `endpoints …`: list, show, add, update, remove, rotate, secret, test.

use super::*;

pub(super) fn endpoints_list(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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

pub(super) fn endpoint_text(endpoint: &Value) -> String {
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
pub(super) fn event_types(text: &str) -> Value {
    Value::Array(
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Value::from)
            .collect(),
    )
}

/// `--header 'Name: value'` (repeatable) → `{"Name": "value"}`.
pub(super) fn headers(values: &[&str]) -> Result<Value, Failure> {
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
pub(super) fn flow_fields(parsed: &Parsed, body: &mut Value) -> Result<(), Failure> {
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

pub(super) fn endpoints_add(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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

pub(super) fn endpoints_update(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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

pub(super) fn endpoints_rotate(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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

pub(super) fn endpoints_test(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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

pub(super) fn attempt_line(attempt: &Value) -> String {
    let result = match (
        attempt["status_code"].as_u64(),
        attempt["error_class"].as_str(),
    ) {
        (Some(status), _) if (200..300).contains(&status) => format!("succeeded: {status}"),
        (Some(status), _) => format!("failed: {status}"),
        (None, Some(class)) => format!("failed: {class} ({})", text_of(&attempt["error"])),
        (None, None) => "unknown".to_string(),
    };
    let mut line = format!(
        "attempt {} at {}: {result} in {} ms",
        text_of(&attempt["number"]),
        text_of(&attempt["started_at"]),
        text_of(&attempt["duration_ms"]),
    );
    // What the receiver said back, when it failed: often the reason in its own words.
    if attempt["status_code"]
        .as_u64()
        .is_some_and(|s| !(200..300).contains(&s))
        && let Some(excerpt) = attempt["response_excerpt"].as_str()
    {
        line.push_str(&format!(
            "; response: {}",
            one_line(excerpt, RESPONSE_SHOWN_CHARS)
        ));
    }
    line
}

/// How much of a response excerpt a line shows.
const RESPONSE_SHOWN_CHARS: usize = 200;
