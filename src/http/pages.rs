//! List pages bounded by bytes as well as by count, written straight as bytes: a stored event's
//! `data` goes out as the raw bytes it was stored as, never parsed into a tree again, so what a
//! list call holds in memory is bounded by `PAGE_BYTES_MAX` plus one fetch, whatever callers
//! stored. The routes and their access rules stay in the route table (`routes.rs`) and `events.rs`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store::EventRow;
use crate::time::format_rfc3339_seconds;

/// A page stops once its answer would pass this many bytes (it always holds at least one item);
/// a page cut short answers `next` like a full one.
pub(crate) const PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// An event as listed (the fields of `views::event_json`, `data` as stored).
#[derive(Serialize)]
struct ListedEvent<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created_at: String,
    workspace_id: &'a str,
    test: bool,
    subject: Option<&'a str>,
    data: Option<&'a RawValue>,
}

/// The one field of a stored body that a listing needs, borrowed from the body's bytes.
#[derive(Deserialize)]
struct StoredBody<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Appends one event as JSON to `out`.
fn write_event(out: &mut Vec<u8>, event: &EventRow) {
    let data = serde_json::from_slice::<StoredBody<'_>>(&event.body)
        .ok()
        .and_then(|body| body.data);
    let listed = ListedEvent {
        id: &event.id,
        event_type: &event.event_type,
        created_at: format_rfc3339_seconds(event.created_at_ms),
        workspace_id: &event.workspace_id,
        test: event.test,
        subject: event.subject.as_deref(),
        data,
    };
    serde_json::to_writer(out, &listed).expect("writing JSON to memory cannot fail");
}

/// `{"data":[…],"next":…}` of up to `limit` events below cursor `before`, newest first, cut at
/// `bytes_max`. `fetch(before, n)` answers up to `n` events below `before`; it is called with
/// `n` at most `fetch_max`, so one fetch holds at most `fetch_max` stored bodies.
pub(crate) fn event_page<E>(
    limit: usize,
    mut before: i64,
    bytes_max: usize,
    fetch_max: usize,
    mut fetch: impl FnMut(i64, usize) -> Result<Vec<EventRow>, E>,
) -> Result<Vec<u8>, E> {
    let mut out = b"{\"data\":[".to_vec();
    let mut count = 0;
    let mut cut_short = false;
    'fetching: while count < limit {
        let want = fetch_max.clamp(1, limit - count);
        let rows = fetch(before, want)?;
        let exhausted = rows.len() < want;
        for row in &rows {
            let mut item = Vec::with_capacity(row.body.len() + 256);
            write_event(&mut item, row);
            // +2: the comma before it and the `]` after.
            if count > 0
                && out.len() + item.len() + 2 + r#","next":"9223372036854775807"}"#.len()
                    > bytes_max
            {
                cut_short = true;
                break 'fetching;
            }
            if count > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item);
            count += 1;
            before = row.seq;
        }
        if exhausted {
            break;
        }
    }
    // A full page has a next one only if something is below it.
    let more = cut_short || (count == limit && !fetch(before, 1)?.is_empty());
    out.extend_from_slice(b"],\"next\":");
    if more {
        serde_json::to_writer(&mut out, &before.to_string()).expect("writing JSON to memory");
    } else {
        out.extend_from_slice(b"null");
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, data_bytes: usize) -> EventRow {
        EventRow {
            seq,
            id: format!("evt_{seq}"),
            workspace_id: "default".into(),
            event_type: "project.created".into(),
            created_at_ms: 0,
            body: format!(
                r#"{{"id":"evt_{seq}","type":"project.created","created_at":"x","data":{{"id":"p","pad":"{}","n":1.50}}}}"#,
                "a".repeat(data_bytes)
            )
            .into_bytes(),
            test: false,
            subject: None,
        }
    }

    /// A store of `count` events (seq 1..=count) with `data_bytes` each, newest first.
    fn fetcher(
        count: i64,
        data_bytes: usize,
    ) -> impl FnMut(i64, usize) -> Result<Vec<EventRow>, ()> {
        move |before, n| {
            Ok((1..=count.min(before - 1))
                .rev()
                .take(n)
                .map(|seq| row(seq, data_bytes))
                .collect())
        }
    }

    #[test]
    fn a_page_keeps_data_bytes_as_stored_and_answers_next_when_full() {
        let page = event_page(2, i64::MAX, PAGE_BYTES_MAX, 10, fetcher(3, 4)).unwrap();
        let text = String::from_utf8(page).unwrap();
        // `1.50` would become `1.5` through a parse into a tree.
        assert!(
            text.contains(r#""data":{"id":"p","pad":"aaaa","n":1.50}"#),
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data"].as_array().unwrap().len(), 2);
        assert_eq!(value["next"], "2");
        let last = event_page(2, 2, PAGE_BYTES_MAX, 10, fetcher(3, 4)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&last).unwrap();
        assert_eq!(value["data"].as_array().unwrap().len(), 1);
        assert_eq!(value["next"], serde_json::Value::Null);
    }

    #[test]
    fn a_page_stops_at_its_byte_bound_and_answers_next() {
        // 10 events of ~100 KiB under a 350 KiB bound: 3 fit.
        let page = event_page(10, i64::MAX, 350 * 1024, 4, fetcher(10, 100 * 1024)).unwrap();
        assert!(page.len() <= 350 * 1024);
        let value: serde_json::Value = serde_json::from_slice(&page).unwrap();
        assert_eq!(value["data"].as_array().unwrap().len(), 3);
        assert_eq!(value["next"], "8");
        // One event larger than the bound still makes a page of one.
        let page = event_page(10, i64::MAX, 1024, 4, fetcher(10, 100 * 1024)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&page).unwrap();
        assert_eq!(value["data"].as_array().unwrap().len(), 1);
        assert_eq!(value["next"], "10");
    }
}
