//! The event catalog from the customer-facing reference: every type, what it means, its required
//! `data` fields with their kinds, and a sample. `validate` is the one check an event's data passes
//! before it is stored; extra fields pass through untouched.

use serde_json::{Value, json};

use crate::time::{parse_date, parse_rfc3339};

/// What a required field must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A non-empty string.
    Text,
    /// An email address (a string with one `@` between non-empty parts).
    Email,
    /// An RFC 3339 date-time string.
    DateTime,
    /// A `YYYY-MM-DD` date string.
    Date,
    /// A whole number ≥ 0.
    Seconds,
    /// A number ≥ 0.
    NonNegative,
    /// A number from 0 to 100.
    Percent,
    /// A JSON object.
    Object,
}

impl Kind {
    /// `an integer …`, `an RFC 3339 …`, `a date …`: the description after "must be".
    pub fn with_article(self) -> String {
        let text = self.describe();
        let vowel = text.starts_with(['a', 'e', 'i', 'o', 'u']) || text.starts_with("RFC");
        format!("{} {text}", if vowel { "an" } else { "a" })
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Email => "email address",
            Kind::DateTime => "RFC 3339 date-time",
            Kind::Date => "date (YYYY-MM-DD)",
            Kind::Seconds => "integer seconds >= 0",
            Kind::NonNegative => "number >= 0",
            Kind::Percent => "number from 0 to 100",
            Kind::Object => "object",
        }
    }
}

pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    pub fields: &'static [(&'static str, Kind)],
}

pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        name: "time_entry.created",
        description: "Fired when a new time entry is created",
        fields: &[
            ("id", Kind::Text),
            ("user_id", Kind::Text),
            ("project_id", Kind::Text),
            ("start_time", Kind::DateTime),
            ("duration", Kind::Seconds),
        ],
    },
    EventType {
        name: "time_entry.updated",
        description: "Fired when a time entry is modified",
        fields: &[
            ("id", Kind::Text),
            ("changes", Kind::Object),
            ("updated_at", Kind::DateTime),
        ],
    },
    EventType {
        name: "time_entry.deleted",
        description: "Fired when a time entry is deleted",
        fields: &[("id", Kind::Text), ("deleted_at", Kind::DateTime)],
    },
    EventType {
        name: "screenshot.captured",
        description: "Fired when a screenshot is captured and uploaded",
        fields: &[
            ("id", Kind::Text),
            ("user_id", Kind::Text),
            ("time_entry_id", Kind::Text),
            ("url", Kind::Text),
            ("activity_level", Kind::Percent),
        ],
    },
    EventType {
        name: "user.invited",
        description: "Fired when a new user is invited to the workspace",
        fields: &[
            ("id", Kind::Text),
            ("email", Kind::Email),
            ("role", Kind::Text),
            ("invited_by", Kind::Text),
        ],
    },
    EventType {
        name: "user.activated",
        description: "Fired when an invited user accepts and activates their account",
        fields: &[
            ("id", Kind::Text),
            ("email", Kind::Email),
            ("activated_at", Kind::DateTime),
        ],
    },
    EventType {
        name: "project.created",
        description: "Fired when a new project is created",
        fields: &[
            ("id", Kind::Text),
            ("name", Kind::Text),
            ("created_by", Kind::Text),
        ],
    },
    EventType {
        name: "timesheet.submitted",
        description: "Fired when a user submits their timesheet for approval",
        fields: &[
            ("id", Kind::Text),
            ("user_id", Kind::Text),
            ("period_start", Kind::Date),
            ("period_end", Kind::Date),
            ("total_hours", Kind::NonNegative),
        ],
    },
    EventType {
        name: "timesheet.approved",
        description: "Fired when a timesheet is approved",
        fields: &[
            ("id", Kind::Text),
            ("approved_by", Kind::Text),
            ("approved_at", Kind::DateTime),
        ],
    },
];

pub fn find(name: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|t| t.name == name)
}

/// A valid example of each type's `data`, for the catalog and test events.
pub fn sample(name: &str) -> Option<Value> {
    let data = match name {
        "time_entry.created" => {
            json!({"id": "te_def456", "user_id": "usr_xyz789", "project_id": "prj_abc123",
            "start_time": "2024-01-15T09:00:00Z", "duration": 3600, "description": "Working on feature X"})
        }
        "time_entry.updated" => {
            json!({"id": "te_def456", "changes": {"duration": {"from": 3600, "to": 5400}},
            "updated_at": "2024-01-15T11:00:00Z"})
        }
        "time_entry.deleted" => json!({"id": "te_def456", "deleted_at": "2024-01-15T12:00:00Z"}),
        "screenshot.captured" => {
            json!({"id": "scr_123abc", "user_id": "usr_xyz789", "time_entry_id": "te_def456",
            "url": "https://screenshots.clockeye.example/scr_123abc.png", "activity_level": 87})
        }
        "user.invited" => json!({"id": "usr_new001", "email": "sam@example.com", "role": "member",
            "invited_by": "usr_xyz789"}),
        "user.activated" => json!({"id": "usr_new001", "email": "sam@example.com",
            "activated_at": "2024-01-16T08:00:00Z"}),
        "project.created" => {
            json!({"id": "prj_abc123", "name": "Website redesign", "created_by": "usr_xyz789"})
        }
        "timesheet.submitted" => {
            json!({"id": "ts_2024w03", "user_id": "usr_xyz789", "period_start": "2024-01-15",
            "period_end": "2024-01-21", "total_hours": 38.5})
        }
        "timesheet.approved" => json!({"id": "ts_2024w03", "approved_by": "usr_mgr001",
            "approved_at": "2024-01-22T09:00:00Z"}),
        _ => return None,
    };
    Some(data)
}

/// A problem with an event's data: the field's path below `data` and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// Checks `data` against its type's required fields.
pub fn validate(event_type: &EventType, data: &Value) -> Result<(), FieldProblem> {
    let Some(object) = data.as_object() else {
        return Err(FieldProblem {
            field: "data".into(),
            message: "data must be a JSON object".into(),
        });
    };
    for (name, kind) in event_type.fields {
        let field = format!("data.{name}");
        let Some(value) = object.get(*name) else {
            return Err(FieldProblem {
                message: format!(
                    "{field} is required for {} ({})",
                    event_type.name,
                    kind.describe()
                ),
                field,
            });
        };
        if !fits(*kind, value) {
            return Err(FieldProblem {
                message: format!(
                    "{field} must be {}, got {}",
                    kind.with_article(),
                    shorten(value)
                ),
                field,
            });
        }
    }
    if let (Some(start), Some(end)) = (object.get("period_start"), object.get("period_end")) {
        let (start, end) = (
            start.as_str().and_then(parse_date),
            end.as_str().and_then(parse_date),
        );
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            return Err(FieldProblem {
                field: "data.period_end".into(),
                message: "data.period_end must not be before data.period_start".into(),
            });
        }
    }
    Ok(())
}

fn fits(kind: Kind, value: &Value) -> bool {
    match kind {
        Kind::Text => value.as_str().is_some_and(|s| !s.is_empty()),
        Kind::Email => value.as_str().is_some_and(|s| {
            matches!(s.split_once('@'), Some((user, domain)) if !user.is_empty() && !domain.is_empty() && !domain.contains('@'))
        }),
        Kind::DateTime => value.as_str().and_then(parse_rfc3339).is_some(),
        Kind::Date => value.as_str().and_then(parse_date).is_some(),
        Kind::Seconds => value.as_u64().is_some(),
        Kind::NonNegative => value.as_f64().is_some_and(|n| n >= 0.0),
        Kind::Percent => value.as_f64().is_some_and(|n| (0.0..=100.0).contains(&n)),
        Kind::Object => value.is_object(),
    }
}

fn shorten(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// The catalog as `GET /v1/event-types` answers it.
pub fn to_json() -> Value {
    let types: Vec<Value> = EVENT_TYPES
        .iter()
        .map(|t| {
            let fields: Vec<Value> =
                t.fields.iter().map(|(name, kind)| json!({"name": name, "kind": kind.describe(), "required": true})).collect();
            json!({"type": t.name, "description": t.description, "fields": fields, "sample": sample(t.name)})
        })
        .collect();
    json!({ "data": types, "next": null })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_valid_for_its_type() {
        for event_type in EVENT_TYPES {
            let data = sample(event_type.name).expect("every type has a sample");
            assert_eq!(validate(event_type, &data), Ok(()), "{}", event_type.name);
        }
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let created = find("time_entry.created").unwrap();
        let mut data = sample("time_entry.created").unwrap();
        data.as_object_mut().unwrap().remove("user_id");
        assert_eq!(validate(created, &data).unwrap_err().field, "data.user_id");

        let cases = [
            ("time_entry.created", "duration", json!(-5)),
            ("time_entry.created", "duration", json!(1.5)),
            ("time_entry.created", "start_time", json!("yesterday")),
            ("time_entry.updated", "changes", json!("x")),
            ("screenshot.captured", "activity_level", json!(101)),
            ("user.invited", "email", json!("nobody")),
            ("timesheet.submitted", "period_start", json!("2024-02-30")),
            ("timesheet.submitted", "total_hours", json!("8")),
            ("project.created", "name", json!("")),
        ];
        for (name, field, value) in cases {
            let mut data = sample(name).unwrap();
            data[field] = value;
            let problem = validate(find(name).unwrap(), &data).unwrap_err();
            assert_eq!(
                problem.field,
                format!("data.{field}"),
                "{name}: {}",
                problem.message
            );
        }
        assert_eq!(validate(created, &json!([1])).unwrap_err().field, "data");
    }

    #[test]
    fn a_period_may_not_end_before_it_starts() {
        let mut data = sample("timesheet.submitted").unwrap();
        data["period_end"] = json!("2024-01-01");
        assert_eq!(
            validate(find("timesheet.submitted").unwrap(), &data)
                .unwrap_err()
                .field,
            "data.period_end"
        );
    }
}
