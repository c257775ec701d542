//! `/v1/endpoints` and `/v1/endpoints/{id}`: create, list, show, change, delete; the checks of
//! every endpoint field.

#[allow(unused_imports)]
use super::prelude::*;

/// Most extra headers an endpoint may carry, and their longest value.
pub(crate) const ENDPOINT_HEADERS_MAX: usize = 20;

pub(crate) const HEADER_VALUE_BYTES_MAX: usize = 1024;

/// Headers an endpoint may not set: ours, and those that frame the request.
pub(crate) const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldSet {
    Create,
    Update,
}

/// A description: a string of at most `DESCRIPTION_CHARS_MAX` characters.
/// Most attempt starts in any second an endpoint may ask for.
pub(crate) const RATE_LIMIT_MAX: u32 = 10_000;

/// `rate_limit`: deliveries per second, 1 to 10000, or null for none.
pub(crate) fn check_rate_limit(value: &Value) -> Result<Option<u32>, Problem> {
    if value.is_null() {
        return Ok(None);
    }
    value
        .as_u64()
        .filter(|n| (1..=u64::from(RATE_LIMIT_MAX)).contains(n))
        .map(|n| Some(n as u32))
        .ok_or_else(|| {
            Problem::field(
                "rate_limit",
                format!("rate_limit must be a whole number of deliveries per second from 1 to {RATE_LIMIT_MAX}, or null for no limit"),
            )
        })
}

/// `ordering`: "none" or "subject".
pub(crate) fn check_ordering(value: &Value) -> Result<String, Problem> {
    match value.as_str() {
        Some(ordering @ ("none" | "subject")) => Ok(ordering.to_string()),
        _ => Err(Problem::field(
            "ordering",
            "ordering must be \"none\" or \"subject\" (one subject's events in order)",
        )),
    }
}

pub(crate) fn check_event_types(value: &Value) -> Result<Vec<String>, Problem> {
    let message = "events must be a non-empty list of event types, or [\"*\"] for all";
    let list = value
        .as_array()
        .filter(|list| !list.is_empty())
        .ok_or_else(|| Problem::field("events", message))?;
    let mut types: Vec<String> = Vec::new();
    for (index, item) in list.iter().enumerate() {
        let name = item
            .as_str()
            .ok_or_else(|| Problem::field(format!("events[{index}]"), message))?;
        if name != "*" && catalog::find(name).is_none() {
            return Err(Problem::new(
                422,
                "unknown_event_type",
                format!("\"{name}\" is not an event type (see GET /v1/event-types)"),
            )
            .at(format!("events[{index}]")));
        }
        if !types.iter().any(|t| t == name) {
            types.push(name.to_string());
        }
    }
    if types.iter().any(|t| t == "*") {
        types = vec!["*".to_string()];
    }
    Ok(types)
}

pub(crate) fn check_headers(value: &Value) -> Result<Vec<(String, String)>, Problem> {
    let map = value.as_object().ok_or_else(|| {
        Problem::field(
            "headers",
            "headers must be an object of name: value strings",
        )
    })?;
    if map.len() > ENDPOINT_HEADERS_MAX {
        return Err(Problem::field(
            "headers",
            format!("at most {ENDPOINT_HEADERS_MAX} headers"),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in map {
        let field = format!("headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(Problem::field(
                field,
                format!("\"{name}\" is not a valid header name"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-clockeye-") {
            return Err(Problem::field(
                field,
                format!("header {name} is set by the service and cannot be overridden"),
            ));
        }
        let text = value
            .as_str()
            .ok_or_else(|| Problem::field(field.clone(), format!("{field} must be a string")))?;
        if text.len() > HEADER_VALUE_BYTES_MAX
            || text.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err(Problem::field(
                field.clone(),
                format!(
                    "{field} must be at most {HEADER_VALUE_BYTES_MAX} bytes without control characters"
                ),
            ));
        }
        headers.push((name.clone(), text.to_string()));
    }
    Ok(headers)
}

impl Api {
    /// The endpoint with this id, if `access` may see it: another workspace's is "not found".
    pub(crate) fn find_endpoint(&self, access: &Access, id: &str) -> Result<EndpointRow, Problem> {
        store::endpoint(&self.conn, id, now_ms())
            .map_err(internal)?
            .filter(|endpoint| access.sees(&endpoint.workspace_id))
            .ok_or_else(|| not_found("endpoint", id))
    }

    pub(crate) fn create_endpoint(&self, access: &Access, body: &str) -> Answer {
        let input = parse_object(body)?;
        let now = now_ms();
        let mut endpoint = EndpointRow {
            seq: 0,
            id: new_id("ep"),
            workspace_id: access.workspace().unwrap_or(DEFAULT_WORKSPACE).to_string(),
            url: String::new(),
            event_types: Vec::new(),
            description: String::new(),
            headers: Vec::new(),
            enabled: true,
            disabled_reason: None,
            failing_since_ms: None,
            last_success_at_ms: None,
            previous_secret_expires_at_ms: None,
            created_at_ms: now,
            updated_at_ms: now,
            rate_limit: None,
            ordering: "none".to_string(),
        };
        if !input.contains_key("url") {
            return Err(Problem::field("url", "url is required"));
        }
        if !input.contains_key("events") {
            return Err(Problem::field(
                "events",
                "events is required: a list of event types, or [\"*\"] for all",
            ));
        }
        self.apply_endpoint_fields(&mut endpoint, &input, FieldSet::Create)?;
        access.check_workspace(&endpoint.workspace_id, "workspace_id")?;
        self.check_url(&endpoint)?;
        let secret = new_secret();
        store::insert_endpoint(&self.conn, &mut endpoint, &secret).map_err(internal)?;
        log::info!(
            "endpoint created: endpoint={} workspace={}",
            endpoint.id,
            endpoint.workspace_id
        );
        let mut value = endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq));
        value["secret"] = Value::from(secret);
        Ok((201, value))
    }

    pub(crate) fn update_endpoint(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_object(body)?;
        let mut endpoint = self.find_endpoint(access, id)?;
        self.apply_endpoint_fields(&mut endpoint, &input, FieldSet::Update)?;
        if input.contains_key("url") {
            self.check_url(&endpoint)?;
        }
        endpoint.updated_at_ms = now_ms();
        let fields: Vec<&str> = input.keys().map(String::as_str).collect();
        store::update_endpoint(&self.conn, &endpoint, &fields).map_err(internal)?;
        self.endpoint_changed(endpoint.seq);
        // Answer what is stored: the scheduler may have changed other fields meanwhile.
        let endpoint = self.find_endpoint(access, id)?;
        Ok((
            200,
            endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq)),
        ))
    }

    pub(crate) fn list_endpoints(&self, access: &Access, query: &Query) -> Answer {
        let (limit, before) = query.page()?;
        let workspace_id = access.narrow(query.get("workspace_id"))?;
        let rows = store::endpoints(&self.conn, workspace_id, before, limit + 1, now_ms())
            .map_err(internal)?;
        let dispatcher = &self.shared.dispatcher;
        Ok((
            200,
            page(
                rows,
                limit,
                |r| r.seq,
                |r| endpoint_json(r, dispatcher.window(r.seq)),
            ),
        ))
    }

    /// Tells the scheduler, so work claimed with the old settings is not sent with them (and a
    /// just-disabled endpoint gets nothing more). Blocking send: this must not be dropped.
    /// On Postgres the other instances are told too (`engine::wakeups`).
    pub(crate) fn endpoint_changed(&self, endpoint_seq: i64) {
        let _ = self
            .shared
            .commands
            .send(Command::EndpointChanged { endpoint_seq });
        self.tell_other_instances(&crate::engine::wakeups::endpoint_changed(
            endpoint_seq,
            &self.shared.instance_id,
        ));
    }

    /// Something due may have changed (a retry, a recover): this instance's scheduler and, on
    /// Postgres, the others look again now.
    pub(crate) fn wake_schedulers(&self) {
        let _ = self.shared.commands.try_send(Command::Wake);
        self.tell_other_instances(&crate::engine::wakeups::due(&self.shared.instance_id));
    }

    /// A failed notification costs the others at most their 1 s poll: logged, not answered.
    fn tell_other_instances(&self, payload: &str) {
        if store::shared(&self.conn)
            && let Err(error) = store::notify(&self.conn, payload)
        {
            log::warn!("api: waking the other instances failed: {error}");
        }
    }

    /// Checks an endpoint's url, looking its host up on its workspace's share of the lookup
    /// threads and within `net::DNS_LOOKUP_TIMEOUT`, so this API thread is held no longer.
    pub(crate) fn check_url(&self, endpoint: &EndpointRow) -> Result<(), Problem> {
        check_endpoint_url(
            &endpoint.url,
            self.shared.allow_http,
            &self.shared.policy,
            &endpoint.workspace_id,
        )
        .map_err(|message| Problem::new(422, "invalid_url", message).at("url"))
    }

    /// Checks each given field and writes it into `endpoint`.
    pub(crate) fn apply_endpoint_fields(
        &self,
        endpoint: &mut EndpointRow,
        input: &serde_json::Map<String, Value>,
        fields: FieldSet,
    ) -> Result<(), Problem> {
        for (key, value) in input {
            match key.as_str() {
                "url" => {
                    let url = value
                        .as_str()
                        .ok_or_else(|| Problem::field("url", "url must be a string"))?;
                    // Checked by `check_url` once the endpoint's workspace is known.
                    endpoint.url = url.to_string();
                }
                "events" => endpoint.event_types = check_event_types(value)?,
                "description" => endpoint.description = check_description(value)?,
                "headers" => endpoint.headers = check_headers(value)?,
                "workspace_id" if fields == FieldSet::Create => {
                    endpoint.workspace_id =
                        ingest::check_id(Some(value), "workspace_id")?.expect("given");
                }
                "enabled" if fields == FieldSet::Update => {
                    let enabled = value.as_bool().ok_or_else(|| {
                        Problem::field("enabled", "enabled must be true or false")
                    })?;
                    if enabled != endpoint.enabled {
                        endpoint.enabled = enabled;
                        endpoint.disabled_reason = if enabled {
                            None
                        } else {
                            Some("disabled through the API".to_string())
                        };
                        if enabled {
                            // A fresh start: the health record begins again (store does the same).
                            endpoint.failing_since_ms = None;
                        }
                    }
                }
                "rate_limit" => endpoint.rate_limit = check_rate_limit(value)?,
                "ordering" => endpoint.ordering = check_ordering(value)?,
                other => {
                    let allowed = match fields {
                        FieldSet::Create => {
                            "url, events, description, headers, workspace_id, rate_limit, ordering"
                        }
                        FieldSet::Update => {
                            "url, events, description, headers, enabled, rate_limit, ordering"
                        }
                    };
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: {allowed}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `POST /v1/endpoints`.
pub(crate) fn create(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.create_endpoint(access, &body)
}

/// `GET /v1/endpoints`.
pub(crate) fn list(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    api.list_endpoints(access, &call.query)
}

/// `GET /v1/endpoints/{id}`.
pub(crate) fn get(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let endpoint = api.find_endpoint(access, call.param("id"))?;
    Ok((
        200,
        endpoint_json(&endpoint, api.shared.dispatcher.window(endpoint.seq)),
    ))
}

/// `PATCH /v1/endpoints/{id}`.
pub(crate) fn update(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.update_endpoint(access, call.param("id"), &body)
}

/// `DELETE /v1/endpoints/{id}`.
pub(crate) fn delete(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let endpoint = api.find_endpoint(access, call.param("id"))?;
    // Answers at once: the history goes in the background (purge.rs).
    store::delete_endpoint(&api.conn, endpoint.seq, now_ms()).map_err(internal)?;
    api.endpoint_changed(endpoint.seq);
    api.shared.dispatcher.forget(endpoint.seq);
    Ok((204, Value::Null))
}
