//! `send TYPE`: an event from the command line.

use super::*;

pub(super) fn send(client: &Client, parsed: &Parsed, json: bool) -> Outcome {
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
pub(super) fn read_data(text: &str) -> Result<Value, Failure> {
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
