//! The HTTP error: `Problem` (status, code, sentence, field) and the shapes handlers answer.

#[allow(unused_imports)]
use super::prelude::*;

/// A rejected input: status, code, sentence, and the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
}

impl Problem {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn at(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    /// A field that is missing or of the wrong kind: 422 `invalid_field`.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(422, "invalid_field", message).at(field)
    }
}

/// A serde_json error as a `Problem`: malformed JSON is 400, well-formed but wrong shape 422.
pub(crate) fn json_problem(error: &serde_json::Error, prefix: &str) -> Problem {
    match error.classify() {
        serde_json::error::Category::Data => {
            let message = format!("{prefix}{error}");
            let field = message
                .split('`')
                .nth(1)
                .map(|name| format!("{prefix}{name}"));
            Problem {
                status: 422,
                code: "invalid_field",
                message,
                field,
            }
        }
        _ => Problem::new(
            400,
            "invalid_json",
            format!("request body is not valid JSON: {error}"),
        ),
    }
}

/// What a JSON handler answers: status and body, or a problem.
pub(crate) type Answer = Result<(u16, Value), Problem>;

/// What a handler that writes its body itself answers: status and body bytes, or a problem.
pub(crate) type BytesAnswer = Result<(u16, Vec<u8>), Problem>;

pub(crate) fn not_found(what: &str, id: &str) -> Problem {
    Problem::new(404, "not_found", format!("no {what} with id \"{id}\""))
}

pub(crate) fn internal(error: Error) -> Problem {
    if error.is_unavailable() {
        log::error!("api: database unavailable: {error}");
        return Problem::new(503, "unavailable", format!("{error}; try again shortly"));
    }
    log::error!("api: internal error: {error}");
    Problem::new(
        500,
        "internal",
        "internal error; the server log has the details",
    )
}
