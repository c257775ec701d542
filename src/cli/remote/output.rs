//! Printing what the API answered: JSON or text, tables, progress of bulk work, pages.

use super::*;

pub(in crate::cli) fn print_value(
    json: bool,
    value: &Value,
    text: impl FnOnce() -> String,
) -> Outcome {
    if json {
        println!("{}", pretty(value));
    } else {
        print!("{}", text());
    }
    Ok(())
}

pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a Value serializes")
}

pub(super) fn one_id(parsed: &Parsed, command: &str, what: &str) -> Result<String, Failure> {
    match parsed.positionals.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(usage(format!("{command} needs {what}"))),
        _ => Err(usage(format!("{command} takes one {what}"))),
    }
}

/// The ids given as arguments, or read from stdin for `-` (whitespace-separated).
pub(super) fn ids(parsed: &Parsed, command: &str) -> Result<Vec<String>, Failure> {
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
pub(in crate::cli) fn segment(text: &str) -> String {
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

pub(super) fn query(pairs: &[(&str, Option<&str>)]) -> String {
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
pub(super) struct Progress {
    label: &'static str,
    terminal: bool,
    last: Option<Instant>,
}

impl Progress {
    pub(super) fn new(label: &'static str) -> Progress {
        Progress {
            label,
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    pub(super) fn show(&mut self, text: &str, done: bool) {
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
pub(in crate::cli) fn bulk(
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
pub(in crate::cli) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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
pub(in crate::cli) fn text_of(value: &Value) -> String {
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
/// `text` on one line (control characters as spaces), cut to `max` characters with `…`.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let mut line: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        line.push('…');
    }
    line
}

pub(super) fn time_arg(flag: &str, text: &str) -> Result<String, Failure> {
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
pub(super) fn list_pages(
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
                let shown = match (rows.len(), what) {
                    (1, "deliveries") => "delivery",
                    (1, what) => what.strip_suffix('s').unwrap_or(what),
                    (_, what) => what,
                };
                eprintln!(
                    "{} {shown} shown; there are more (--limit N or --all)",
                    rows.len()
                );
            }
            return Ok(json!({"data": rows, "next": after}));
        }
    }
}

pub(super) fn rows_wanted(parsed: &Parsed) -> Result<Option<usize>, Failure> {
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
