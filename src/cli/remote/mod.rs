//! The commands that talk to a running service through its HTTP API: `send`, `endpoints …`,
//! `deliveries …`, `recover`. Human tables on stdout by default, the API's JSON with `--json`;
//! progress of bulk work on stderr; one line on stderr when something fails.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

mod deliveries;
mod endpoints;
mod output;
mod send;

use deliveries::*;
use endpoints::*;
use output::*;
pub(super) use output::{bulk, print_value, segment, table, text_of};
use send::*;

use super::{Failure, Outcome, Parsed, failed, usage};
use crate::catalog;
use crate::time::{format_rfc3339_seconds, now_ms, parse_duration, parse_rfc3339};

/// The service's address when neither `--server` nor `CLOCKEYE_SERVER` is given.
pub(crate) const SERVER_DEFAULT: &str = "http://127.0.0.1:7740";
/// The whole of one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest API answer read (a page of 500 deliveries is about 200 KiB).
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Rows per page the API gives at most.
const PAGE_LIMIT_MAX: usize = 500;
/// Rows `--all` collects at most; narrow the listing with filters beyond that.
const LIST_ROWS_MAX: usize = 200_000;
/// How long `endpoints test --wait` waits for the first attempt's result.
const TEST_WAIT_MAX: Duration = Duration::from_secs(60);
/// Ids `deliveries retry -` reads from stdin at most.
const RETRY_IDS_MAX: usize = LIST_ROWS_MAX;
/// Calls `recover` makes at most (the server requeues up to 10,000 per call).
const RECOVER_CALLS_MAX: usize = 100;
/// Largest `--data @FILE`: the largest event the service may accept.
const DATA_BYTES_MAX: u64 = crate::config::EVENT_BYTES_LIMIT_MAX as u64;

pub(super) struct Client {
    agent: ureq::Agent,
    pub(in crate::cli) server: String,
    token: String,
}

impl Client {
    pub(super) fn new(parsed: &Parsed) -> Result<Client, Failure> {
        let server = parsed
            .get_or_env("server", "CLOCKEYE_SERVER")
            .unwrap_or_else(|| SERVER_DEFAULT.to_string());
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(usage(format!(
                "--server: \"{server}\" is not an http:// or https:// URL (example: {SERVER_DEFAULT})"
            )));
        }
        let token = parsed
            .get_or_env("token", "CLOCKEYE_TOKEN")
            .ok_or_else(|| {
                usage(
                    "no token: pass --token or set CLOCKEYE_TOKEN (the admin token shown at the \
                 service's first start, or a workspace token)",
                )
            })?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            // The API drops connections idle for 5 s; reuse one only well before that.
            .max_idle_age(Duration::from_secs(2))
            // The public web's roots, as the service's own attempts use.
            .tls_config(crate::engine::worker::tls_config(&[]))
            .build()
            .into();
        Ok(Client {
            agent,
            server: server.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// One API call; the answer's JSON (`Null` for 204), or a one-line failure.
    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.server);
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token));
        let request = match body {
            Some(body) => builder
                .header("Content-Type", "application/json")
                .body(body.to_string().into_bytes()),
            None => builder.body(Vec::new()),
        }
        .map_err(|e| usage(format!("cannot make a request to {url}: {e}")))?;
        let mut response = self.agent.run(request).map_err(|error| match error {
            ureq::Error::Timeout(_) => Failure::Stop(format!(
                "{method} {path}: no answer from the server at {} within {}s",
                self.server,
                REQUEST_TIMEOUT.as_secs()
            )),
            error => Failure::Stop(format!(
                "cannot reach the server at {}: {error} (is clockeye-webhooks serve running \
                 there? set --server or CLOCKEYE_SERVER)",
                self.server
            )),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_string()
            .map_err(|e| failed(format!("{method} {path}: reading the answer failed: {e}")))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        match status {
            200..=299 => Ok(value),
            401 => Err(Failure::Stop(api_error(status, &value))),
            _ => Err(failed(api_error(status, &value))),
        }
    }
}

/// `401 unauthorized: the bearer token is not valid (…)`: status, code, message, field.
fn api_error(status: u16, value: &Value) -> String {
    let error = &value["error"];
    let mut line = match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("server answered {status} {code}: {message}"),
        _ => {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            // One line, whatever the server sent.
            let excerpt: String = text
                .chars()
                .take(200)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("server answered {status}: {excerpt}")
        }
    };
    if let Some(field) = error["field"].as_str() {
        line.push_str(&format!(" (field: {field})"));
    }
    if status == 401 {
        line.push_str("; check --token or CLOCKEYE_TOKEN");
    }
    if status == 404
        && error["code"] == "not_found"
        && error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no route"))
    {
        line.push_str("; this server may be older than this command");
    }
    line
}

pub(crate) fn main(name: &str, parsed: &Parsed) -> Outcome {
    let client = Client::new(parsed)?;
    let json = parsed.has("json");
    match name {
        "send" => send(&client, parsed, json),
        "endpoints list" => endpoints_list(&client, parsed, json),
        "endpoints show" => {
            let id = one_id(parsed, "endpoints show", "ID")?;
            let endpoint = client.call("GET", &format!("/v1/endpoints/{}", segment(&id)), None)?;
            print_value(json, &endpoint, || endpoint_text(&endpoint))
        }
        "endpoints add" => endpoints_add(&client, parsed, json),
        "endpoints update" => endpoints_update(&client, parsed, json),
        "endpoints remove" => {
            let ids = ids(parsed, "endpoints remove")?;
            bulk(&ids, "removed", json, |id| {
                client
                    .call("DELETE", &format!("/v1/endpoints/{}", segment(id)), None)
                    .map(|_| json!({"id": id, "removed": true}))
            })
        }
        "endpoints rotate" => endpoints_rotate(&client, parsed, json),
        "endpoints test" => endpoints_test(&client, parsed, json),
        "endpoints secret" => {
            let id = one_id(parsed, "endpoints secret", "ID")?;
            let secrets = client.call(
                "GET",
                &format!("/v1/endpoints/{}/secret", segment(&id)),
                None,
            )?;
            // The secret alone on stdout, so `$(… endpoints secret ID)` captures just it.
            if let (false, Some(until)) = (json, secrets["previous_secret_expires_at"].as_str()) {
                eprintln!("the previous secret also signs until {until}");
            }
            print_value(json, &secrets, || {
                format!("{}\n", text_of(&secrets["secret"]))
            })
        }
        "deliveries list" => deliveries_list(&client, parsed, json),
        "deliveries show" => {
            let id = one_id(parsed, "deliveries show", "ID")?;
            if let Some(number) = parsed.get("request") {
                return super::request::show(&client, &id, number, json);
            }
            let delivery = client.call("GET", &format!("/v1/deliveries/{}", segment(&id)), None)?;
            print_value(json, &delivery, || delivery_text(&delivery))
        }
        "deliveries retry" => {
            let ids = ids(parsed, "deliveries retry")?;
            bulk(&ids, "retried", json, |id| {
                client.call(
                    "POST",
                    &format!("/v1/deliveries/{}/retry", segment(id)),
                    None,
                )
            })
        }
        "recover" => recover(&client, parsed, json),
        _ => unreachable!("every remote command is dispatched"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_by_characters() {
        let text = table(
            &["ID", "URL", "NOTE"],
            &[
                vec!["ep_1".into(), "https://a.example/é".into(), "x".into()],
                vec!["ep_22".into(), "https://b".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "ID     URL                  NOTE\n\
             ep_1   https://a.example/é  x\n\
             ep_22  https://b\n"
        );
    }

    #[test]
    fn api_errors_read_as_one_line_with_the_field() {
        let value = json!({"error": {"code": "invalid_field", "message": "data.user_id is required", "field": "data.user_id"}});
        assert_eq!(
            api_error(422, &value),
            "server answered 422 invalid_field: data.user_id is required (field: data.user_id)"
        );
        let unauthorized =
            json!({"error": {"code": "unauthorized", "message": "the bearer token is not valid"}});
        assert!(api_error(401, &unauthorized).ends_with("check --token or CLOCKEYE_TOKEN"));
        assert_eq!(
            api_error(502, &Value::String("bad gateway".into())),
            "server answered 502: bad gateway"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("since", Some("2024-01-15T10:00:00+01:00")), ("x", None)]),
            "?since=2024-01-15T10%3A00%3A00%2B01%3A00"
        );
        assert_eq!(query(&[("x", None)]), "");
    }
}
