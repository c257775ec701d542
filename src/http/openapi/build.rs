//! The small builders the OpenAPI document is written with: schemas, answers, parameters.

use serde_json::{Map, Value, json};

use crate::catalog;

pub(crate) fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

pub(crate) fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

pub(crate) fn with_description(schema: Value, description: &str) -> Value {
    let mut schema = schema;
    schema["description"] = Value::from(description);
    schema
}

pub(crate) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// An object schema: every listed property required, no others (the API writes exactly these).
pub(crate) fn object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .expect("properties are an object")
        .keys()
        .map(|key| Value::from(key.as_str()))
        .collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

pub(crate) fn list_of(item: &str) -> Value {
    object(json!({
        "data": {"type": "array", "items": reference(item)},
        "next": nullable(json!({"type": "string"})),
    }))
}

pub(crate) fn with(base: Value, extra: Value) -> Value {
    let mut base = base;
    for (key, value) in extra.as_object().expect("extra properties") {
        base["properties"][key] = value.clone();
        base["required"]
            .as_array_mut()
            .expect("an object schema")
            .push(Value::from(key.as_str()));
    }
    base
}

/// Ids given by clients (workspaces, event ids), as `ingest::check_id` accepts them.
pub(crate) fn client_id() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"})
}

/// A duration as `time::parse_duration` reads it.
pub(crate) fn duration() -> Value {
    json!({"type": "string", "pattern": "^[0-9]{1,9}(ms|s|m|h|d)$", "description": "at most 3650d"})
}

/// The JSON Schema of one catalog field kind.
pub(crate) fn kind_schema(kind: catalog::Kind) -> Value {
    use catalog::Kind;
    match kind {
        Kind::Text => json!({"type": "string", "minLength": 1}),
        Kind::Email => json!({"type": "string", "format": "email"}),
        Kind::DateTime => json!({"type": "string", "format": "date-time"}),
        Kind::Date => json!({"type": "string", "format": "date"}),
        Kind::Seconds => json!({"type": "integer", "minimum": 0}),
        Kind::NonNegative => json!({"type": "number", "minimum": 0}),
        Kind::Percent => json!({"type": "number", "minimum": 0, "maximum": 100}),
        Kind::Object => json!({"type": "object"}),
    }
}

/// A new event: one alternative per catalog type, its `data` with the required fields.
pub(crate) fn new_event() -> Value {
    let alternatives: Vec<Value> = catalog::EVENT_TYPES
        .iter()
        .map(|event_type| {
            let fields: Map<String, Value> = event_type
                .fields
                .iter()
                .map(|(name, kind)| (name.to_string(), kind_schema(*kind)))
                .collect();
            let required: Vec<&str> = event_type.fields.iter().map(|(name, _)| *name).collect();
            json!({
                "type": "object",
                "description": event_type.description,
                "properties": {
                    "type": {"const": event_type.name},
                    "data": {"type": "object", "properties": fields, "required": required},
                    "workspace_id": client_id(),
                    "id": client_id(),
                    "subject": {"type": "string", "minLength": 1, "maxLength": 200,
                                "description": "what the event is about, for ordering: \"subject\" endpoints; default <type before the dot>:<data.id>"},
                },
                "required": ["type", "data"],
                "additionalProperties": false,
            })
        })
        .collect();
    json!({ "oneOf": alternatives })
}

/// An endpoint's `rate_limit` (SPEC "Flow control").
pub(crate) fn rate_limit() -> Value {
    nullable(json!({"type": "integer", "minimum": 1, "maximum": 10000,
                    "description": "most attempt starts in any second; null: no limit"}))
}

/// An endpoint's `ordering` (SPEC "Flow control").
pub(crate) fn ordering() -> Value {
    json!({"type": "string", "enum": ["none", "subject"],
           "description": "subject: a delivery waits while an earlier one of the same subject to this endpoint is unfinished"})
}

/// The answers every authenticated route may give besides its own.
pub(crate) fn common_errors(responses: &mut Map<String, Value>) {
    for (status, why) in [
        (
            "400",
            "malformed JSON or query, or a key given twice in an event's data",
        ),
        ("401", "no token, or not a valid one"),
        ("403", "a workspace token acting outside its workspace"),
        ("404", "no such object (or not in the token's workspace)"),
        ("405", "method not allowed on this path"),
        ("408", "the request body did not arrive in time"),
        ("409", "conflict with the object's state"),
        ("411", "a body without a length"),
        ("413", "body too large"),
        ("415", "unsupported body encoding"),
        (
            "422",
            "a field is missing, unknown or invalid; `field` names it",
        ),
        ("431", "request head too large"),
        (
            "503",
            "the database cannot take writes now, or the service is stopping",
        ),
    ] {
        responses.entry(status).or_insert_with(|| {
            json!({"description": why, "content": {"application/json": {"schema": reference("Error")}}})
        });
    }
}

pub(crate) fn answer(description: &str, schema: Option<&str>) -> Value {
    match schema {
        Some(name) => {
            json!({"description": description, "content": {"application/json": {"schema": reference(name)}}})
        }
        None => json!({"description": description}),
    }
}

/// A static page of the dashboard, of this media type.
pub(crate) fn page(media_type: &str) -> Value {
    json!({"description": "the file", "content": {media_type: {"schema": {"type": "string"}}}})
}

/// Any of the dashboard's files.
pub(crate) fn page_file() -> Value {
    let content: Map<String, Value> = ["text/javascript", "text/css", "image/svg+xml"]
        .into_iter()
        .map(|media_type| {
            (
                media_type.to_string(),
                json!({"schema": {"type": "string"}}),
            )
        })
        .collect();
    json!({"description": "the file", "content": content})
}

pub(crate) fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

pub(crate) fn body(schema: Value) -> Option<Value> {
    Some(json!({"required": true, "content": {"application/json": {"schema": schema}}}))
}

pub(crate) fn optional_body(schema: Value) -> Option<Value> {
    Some(json!({"required": false, "content": {"application/json": {"schema": schema}}}))
}
