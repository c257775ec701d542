//! Reading a request: its body (bounded, under a deadline), its query string, and the JSON
//! object shapes every resource shares.

#[allow(unused_imports)]
use super::prelude::*;

/// Largest body of any request but events: endpoint JSON and the like.
pub(crate) const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Longest a request body may take to arrive when the API thread reads it.
pub(crate) const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest body of `POST /v1/events/batch`.
pub(crate) const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Items per list page when `?limit=` is not given, and the most it may ask for.
pub(crate) const PAGE_LIMIT_DEFAULT: usize = 50;

pub(crate) const PAGE_LIMIT_MAX: usize = 500;

/// Longest endpoint description.
pub(crate) const DESCRIPTION_CHARS_MAX: usize = 1000;

/// Reads a request body up to `limit` bytes as UTF-8; more is 413.
pub(crate) fn read_body(request: &mut Request, limit: usize) -> Result<String, Problem> {
    let too_large = || {
        Problem::new(
            413,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    if request.body_length().is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    // Bodies up to 1 MiB were read by the connection's thread already; a larger one is read
    // here, in chunks, under a deadline, so a trickling sender cannot keep this thread.
    let deadline = std::time::Instant::now() + BODY_READ_TIMEOUT;
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut reader = request.as_reader().take(limit as u64 + 1);
    loop {
        let read = reader.read(&mut chunk).map_err(|error| {
            Problem::new(
                400,
                "unreadable_body",
                format!("could not read the request body: {error}"),
            )
        })?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
        if std::time::Instant::now() > deadline {
            return Err(Problem::new(
                408,
                "request_timeout",
                format!(
                    "the request body took longer than {}s to arrive",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ));
        }
    }
    if body.len() > limit {
        return Err(too_large());
    }
    String::from_utf8(body)
        .map_err(|_| Problem::new(400, "invalid_json", "request body is not UTF-8"))
}

/// `?a=b&c=d`, percent-decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(text: &str) -> Query {
        Query(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    /// The pairs as given (percent-decoded).
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` and the `after` cursor: (page size, seq below which the page starts).
    pub(crate) fn page(&self) -> Result<(usize, i64), Problem> {
        let limit = match self.get("limit") {
            None => PAGE_LIMIT_DEFAULT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => n,
                _ => {
                    return Err(Problem::new(
                        400,
                        "invalid_query",
                        format!("limit must be a whole number from 1 to {PAGE_LIMIT_MAX}"),
                    )
                    .at("limit"));
                }
            },
        };
        let before = match self.get("after") {
            // `?after=` with nothing: the first page, as with no cursor.
            None | Some("") => i64::MAX,
            Some(text) => text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Problem::new(
                    400,
                    "invalid_query",
                    "after must be the `next` cursor of a previous page",
                )
                .at("after")
            })?,
        };
        Ok((limit, before))
    }
}

pub(crate) fn percent_decode(text: &str) -> String {
    let hex_value = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) =
                (hex_value(bytes[index + 1]), hex_value(bytes[index + 2]))
        {
            out.push(high * 16 + low);
            index += 3;
            continue;
        }
        out.push(if byte == b'+' { b' ' } else { byte });
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_object(body: &str) -> Result<serde_json::Map<String, Value>, Problem> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::new(
            422,
            "invalid_body",
            "request body must be a JSON object",
        )),
        Err(error) => Err(json_problem(&error, "")),
    }
}

/// A body that may be empty (all fields optional) or a JSON object.
pub(crate) fn parse_optional_object(body: &str) -> Result<serde_json::Map<String, Value>, Problem> {
    if body.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    parse_object(body)
}

/// A NUL character (`\u0000` in JSON, `%00` in a URL) is refused wherever text reaches the
/// database: Postgres' TEXT cannot hold it, and both backends answer alike.
pub(crate) fn check_no_nul(text: &str, field: &str) -> Result<(), Problem> {
    if text.contains('\0') {
        return Err(Problem::field(
            field,
            format!("{field} must not contain a NUL character (\\u0000)"),
        ));
    }
    Ok(())
}

/// Path segments and query parameters with a NUL character (`%00`): 400 naming where.
pub(crate) fn refuse_nul(params: &[(&'static str, String)], query: &Query) -> Result<(), Problem> {
    if let Some((name, _)) = params.iter().find(|(_, value)| value.contains('\0')) {
        return Err(Problem::new(
            400,
            "invalid_path",
            format!("path segment {{{name}}} must not contain a NUL character (%00)"),
        ));
    }
    if let Some((key, _)) = query
        .pairs()
        .iter()
        .find(|(key, value)| key.contains('\0') || value.contains('\0'))
    {
        return Err(Problem::new(
            400,
            "invalid_query",
            format!(
                "query parameter {:?} must not contain a NUL character (%00)",
                key.replace('\0', "")
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_description(value: &Value) -> Result<String, Problem> {
    let text = value
        .as_str()
        .ok_or_else(|| Problem::field("description", "description must be a string"))?;
    check_no_nul(text, "description")?;
    if text.chars().count() > DESCRIPTION_CHARS_MAX {
        return Err(Problem::field(
            "description",
            format!("description is longer than {DESCRIPTION_CHARS_MAX} characters"),
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_junk() {
        assert_eq!(
            percent_decode("2024-01-15T10%3A30%3A00Z"),
            "2024-01-15T10:30:00Z"
        );
        assert_eq!(percent_decode("a+b%20c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
