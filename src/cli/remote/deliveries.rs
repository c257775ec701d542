//! `deliveries …` and `recover`.

use super::*;

pub(super) fn deliveries_list(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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

pub(super) fn delivery_text(delivery: &Value) -> String {
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
            let excerpt = one_line(&text_of(&a["response_excerpt"]), 60);
            // The error class and its text (`connect: connection refused`), not the class alone.
            let error = match (a["error_class"].as_str(), a["error"].as_str()) {
                (Some(class), Some(error)) => one_line(&format!("{class}: {error}"), 60),
                (Some(class), None) => class.to_string(),
                _ => String::new(),
            };
            vec![
                text_of(&a["number"]),
                text_of(&a["started_at"]),
                format!("{} ms", text_of(&a["duration_ms"])),
                text_of(&a["status_code"]),
                error,
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

pub(super) fn recover(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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
