//! From request JSON to a stored-ready `NewEvent`: parse, check against the catalog, build the
//! body bytes that every attempt will send; errors name the field. Stored by the scheduler's
//! round (SQLite), or on Postgres by the API thread itself (`commit`).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::catalog;
use crate::error::Error;
use crate::http::problem::{Problem, json_problem};
use crate::ids::new_id;
use crate::model::{NewEvent, StoredEvent};
use crate::store::{self, Db};
use crate::time::format_rfc3339_seconds;

/// Most events in one `POST /v1/events/batch`.
pub(crate) const BATCH_EVENTS_MAX: usize = 1000;
/// Longest workspace id or client-given event id.
pub(crate) const ID_CHARS_MAX: usize = 128;
/// The workspace of an event or endpoint that names none.
pub(crate) const DEFAULT_WORKSPACE: &str = "default";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventInput {
    #[serde(rename = "type")]
    event_type: Option<Value>,
    data: Option<Box<RawValue>>,
    workspace_id: Option<Value>,
    id: Option<Value>,
    subject: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchInput {
    events: Option<Vec<Box<RawValue>>>,
}

/// Checks an id-like value (`workspace_id`, a client-given event `id`): letters, digits, `_-.:`.
pub(crate) fn check_id(value: Option<&Value>, field: &str) -> Result<Option<String>, Problem> {
    let Some(value) = value else { return Ok(None) };
    let text = value
        .as_str()
        .ok_or_else(|| Problem::field(field, format!("{field} must be a string")))?;
    let fine = !text.is_empty()
        && text.len() <= ID_CHARS_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if !fine {
        return Err(Problem::field(
            field,
            format!("{field} must be 1 to {ID_CHARS_MAX} letters, digits or _-.: characters"),
        ));
    }
    Ok(Some(text.to_string()))
}

/// 422 `unknown_event_type` for `name`, given in `field`, listing the known types.
pub(crate) fn unknown_event_type(name: &str, field: &str) -> Problem {
    let known: Vec<&str> = catalog::EVENT_TYPES.iter().map(|t| t.name).collect();
    Problem::new(
        422,
        "unknown_event_type",
        format!(
            "\"{name}\" is not an event type; known types: {}",
            known.join(", ")
        ),
    )
    .at(field)
}

/// One event from its JSON text. `prefix` is put before field names (`events[3].`);
/// `default_workspace` is the workspace of an event that names none.
pub(crate) fn parse_event(
    json: &str,
    prefix: &str,
    max_event_bytes: usize,
    now_ms: i64,
    default_workspace: &str,
) -> Result<NewEvent, Problem> {
    let input: EventInput = serde_json::from_str(json).map_err(|e| json_problem(&e, prefix))?;
    let field = |name: &str| format!("{prefix}{name}");
    let type_name = match &input.event_type {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => {
            return Err(Problem::field(
                field("type"),
                format!("{} must be a string", field("type")),
            ));
        }
        None => {
            return Err(Problem::field(
                field("type"),
                format!("{} is required", field("type")),
            ));
        }
    };
    let Some(event_type) = catalog::find(type_name) else {
        return Err(unknown_event_type(type_name, &field("type")));
    };
    let Some(raw_data) = input.data else {
        return Err(Problem::field(
            field("data"),
            format!("{} is required", field("data")),
        ));
    };
    let data = parse_data(raw_data.get(), &field("data"), prefix)?;
    catalog::validate(event_type, &data).map_err(|problem| {
        Problem::field(
            format!("{prefix}{}", problem.field),
            format!("{prefix}{}", problem.message),
        )
    })?;
    let workspace_id = check_id(input.workspace_id.as_ref(), &field("workspace_id"))?
        .unwrap_or_else(|| default_workspace.to_string());
    let id = check_id(input.id.as_ref(), &field("id"))?.unwrap_or_else(|| new_id("evt"));
    let subject = match &input.subject {
        None | Some(Value::Null) => default_subject(event_type.name, &data),
        Some(Value::String(text))
            if !text.is_empty() && text.chars().count() <= SUBJECT_CHARS_MAX =>
        {
            crate::http::request::check_no_nul(text, &field("subject"))?;
            Some(text.clone())
        }
        Some(_) => {
            return Err(Problem::field(
                field("subject"),
                format!(
                    "{} must be a string of 1 to {SUBJECT_CHARS_MAX} characters",
                    field("subject")
                ),
            ));
        }
    };
    let body = envelope(&id, event_type.name, now_ms, raw_data.get());
    if body.len() > max_event_bytes {
        return Err(Problem::new(
            413,
            "payload_too_large",
            format!("the event is {} bytes, more than the limit of {max_event_bytes} (--max-event-bytes)", body.len()),
        )
        .at(field("data")));
    }
    Ok(NewEvent {
        id,
        workspace_id,
        event_type: event_type.name.to_string(),
        created_at_ms: now_ms,
        body: body.into_bytes(),
        test_endpoint_seq: None,
        subject,
    })
}

/// `data` as a `Value`, refusing an object with a key given twice (400 naming it): `data` is
/// forwarded as the client's bytes, and a receiver whose parser keeps the first value would
/// see one that was never checked (serde_json keeps the last).
fn parse_data(text: &str, path: &str, prefix: &str) -> Result<Value, Problem> {
    use serde::de::DeserializeSeed;
    let repeated = std::cell::RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seed = UniqueKeys {
        path: path.to_string(),
        repeated: &repeated,
    };
    match seed.deserialize(&mut deserializer) {
        Ok(value) => Ok(value),
        Err(error) => match repeated.into_inner() {
            Some(key_path) => Err(Problem::new(
                400,
                "repeated_key",
                format!("{key_path} is given more than once; give each key once"),
            )
            .at(key_path)),
            None => Err(json_problem(&error, prefix)),
        },
    }
}

/// Builds a `Value` like serde_json does, but fails on an object key given twice and notes
/// its path (`data.user.id`) in `repeated`.
struct UniqueKeys<'a> {
    path: String,
    repeated: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeys {
            path: format!("{}[{}]", self.path, items.len()),
            repeated: self.repeated,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{key}", self.path);
            if object.contains_key(&key) {
                *self.repeated.borrow_mut() = Some(path.clone());
                return Err(serde::de::Error::custom(format!("{path} is repeated")));
            }
            let value = map.next_value_seed(UniqueKeys {
                path,
                repeated: self.repeated,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Longest `subject` given at ingest, in characters.
pub(crate) const SUBJECT_CHARS_MAX: usize = 200;

/// An event's subject when none is given: `<type before the dot>:<data.id>`
/// (`time_entry:te_1`); a non-string id is used as its JSON text. None without `data.id`.
pub(crate) fn default_subject(event_type: &str, data: &Value) -> Option<String> {
    let object = event_type.split('.').next().unwrap_or(event_type);
    let id = match data.get("id")? {
        Value::String(id) => id.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    let subject = format!("{object}:{id}");
    // A very long id still gives a bounded subject (the index holds it).
    // A NUL in data.id cannot be stored in Postgres' TEXT: it becomes U+FFFD on both backends
    // (the payload itself keeps it).
    Some(
        subject
            .chars()
            .take(SUBJECT_CHARS_MAX)
            .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
            .collect(),
    )
}

/// The body of every attempt: exactly `id`, `type`, `created_at`, `data`, in that order, with
/// `data` as the client sent it.
pub(crate) fn envelope(id: &str, event_type: &str, created_at_ms: i64, data_json: &str) -> String {
    format!(
        "{{\"id\":{},\"type\":{},\"created_at\":\"{}\",\"data\":{}}}",
        Value::from(id),
        Value::from(event_type),
        format_rfc3339_seconds(created_at_ms),
        data_json
    )
}

/// A batch, all or nothing: the first bad event rejects the whole batch.
pub(crate) fn parse_batch(
    json: &str,
    max_event_bytes: usize,
    now_ms: i64,
    default_workspace: &str,
) -> Result<Vec<NewEvent>, Problem> {
    let input: BatchInput = serde_json::from_str(json).map_err(|e| json_problem(&e, ""))?;
    let events = input
        .events
        .ok_or_else(|| Problem::field("events", "events is required: a list of events"))?;
    if events.is_empty() {
        return Err(Problem::field(
            "events",
            "events must hold at least one event",
        ));
    }
    if events.len() > BATCH_EVENTS_MAX {
        return Err(Problem::new(
            413,
            "batch_too_large",
            format!(
                "a batch holds at most {BATCH_EVENTS_MAX} events; this one has {}",
                events.len()
            ),
        )
        .at("events"));
    }
    events
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            parse_event(
                raw.get(),
                &format!("events[{index}]."),
                max_event_bytes,
                now_ms,
                default_workspace,
            )
        })
        .collect()
}

/// Stores events and their deliveries in a transaction of their own on `db` (Postgres, where
/// API threads write their own; see `Api::ingest`), run again if it loses a race with another
/// (`store::retry_lost_races`).
pub(crate) fn commit(db: &Db, events: &[NewEvent], now_ms: i64) -> Result<Vec<StoredEvent>, Error> {
    let events: Vec<&NewEvent> = events.iter().collect();
    store::retry_lost_races("ingest", || {
        let tx = db.begin()?;
        let stored = store::insert_events(&tx, &events, now_ms)?;
        tx.commit()?;
        Ok(stored)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_705_314_600_000;

    #[test]
    fn builds_the_envelope_with_data_untouched() {
        let json = r#"{"type":"project.created","id":"evt_1","data":{"name":"X","id":"p1","created_by":"u1","extra":[1, 2.50]}}"#;
        let event = parse_event(json, "", 262_144, NOW_MS, DEFAULT_WORKSPACE).unwrap();
        assert_eq!(
            String::from_utf8(event.body).unwrap(),
            r#"{"id":"evt_1","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{"name":"X","id":"p1","created_by":"u1","extra":[1, 2.50]}}"#
        );
        assert_eq!(event.workspace_id, "default");
    }

    #[test]
    fn a_key_given_twice_in_data_is_refused_naming_it() {
        for (data, path) in [
            (
                r#"{"id":"p","name":"n","created_by":"u","name":"m"}"#,
                "data.name",
            ),
            (
                r#"{"id":"p","name":"n","created_by":"u","x":[{"a":1,"a":2}]}"#,
                "data.x[0].a",
            ),
        ] {
            let json = format!(r#"{{"type":"project.created","data":{data}}}"#);
            let problem = parse_event(&json, "", 1 << 20, 0, "default").unwrap_err();
            assert_eq!(problem.status, 400, "{problem:?}");
            assert_eq!(problem.code, "repeated_key");
            assert_eq!(problem.field.as_deref(), Some(path), "{problem:?}");
            assert!(problem.message.contains(path), "{problem:?}");
        }
        let json = r#"{"type":"project.created","data":{"id":"p","name":"n","created_by":"u","o":{"a":1},"p":{"a":2}}}"#;
        assert!(parse_event(json, "", 1 << 20, 0, "default").is_ok());
    }

    #[test]
    fn bad_events_are_refused_with_the_field_named() {
        let cases = [
            ("{", 400, "invalid_json", None),
            (
                r#"{"type":"nope","data":{}}"#,
                422,
                "unknown_event_type",
                Some("type"),
            ),
            (r#"{"data":{}}"#, 422, "invalid_field", Some("type")),
            (
                r#"{"type":"project.created"}"#,
                422,
                "invalid_field",
                Some("data"),
            ),
            (
                r#"{"type":"project.created","data":{"id":"p","name":"n"}}"#,
                422,
                "invalid_field",
                Some("data.created_by"),
            ),
            (
                r#"{"type":"project.created","data":{},"color":1}"#,
                422,
                "invalid_field",
                Some("color"),
            ),
            (
                r#"{"type":"project.created","data":{"id":"p","name":"n","created_by":"u"},"workspace_id":"a b"}"#,
                422,
                "invalid_field",
                Some("workspace_id"),
            ),
            (
                r#"{"type":"project.created","data":{"id":"p","name":"n","created_by":"u"},"id":7}"#,
                422,
                "invalid_field",
                Some("id"),
            ),
        ];
        for (json, status, code, field) in cases {
            let problem = parse_event(json, "", 262_144, NOW_MS, DEFAULT_WORKSPACE).unwrap_err();
            assert_eq!(
                (problem.status, problem.code, problem.field.as_deref()),
                (status, code, field),
                "{json}: {}",
                problem.message
            );
        }
        let big = format!(
            r#"{{"type":"project.created","data":{{"id":"p","name":"{}","created_by":"u"}}}}"#,
            "x".repeat(300)
        );
        assert_eq!(
            parse_event(&big, "", 256, NOW_MS, DEFAULT_WORKSPACE)
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn a_batch_is_all_or_nothing_and_names_the_bad_event() {
        let good = r#"{"type":"project.created","data":{"id":"p","name":"n","created_by":"u"}}"#;
        let bad = r#"{"type":"project.created","data":{"id":"p","name":"n"}}"#;
        let json = format!(r#"{{"events":[{good},{good},{bad}]}}"#);
        let problem = parse_batch(&json, 262_144, NOW_MS, DEFAULT_WORKSPACE).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("events[2].data.created_by"));
        assert_eq!(
            parse_batch(
                &format!(r#"{{"events":[{good},{good}]}}"#),
                262_144,
                NOW_MS,
                DEFAULT_WORKSPACE
            )
            .unwrap()
            .len(),
            2
        );
        assert_eq!(
            parse_batch(r#"{"events":[]}"#, 262_144, NOW_MS, DEFAULT_WORKSPACE)
                .unwrap_err()
                .field
                .as_deref(),
            Some("events")
        );
    }
}
