//! What is done to one endpoint beyond its fields: its secret (show, rotate), a test event,
//! recovering failed deliveries, and its stats.

#[allow(unused_imports)]
use super::prelude::*;

/// Rotation overlap when none is asked, and the longest allowed.
pub(crate) const ROTATION_OVERLAP_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

pub(crate) const ROTATION_OVERLAP_MAX: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

/// Most deliveries one `recover` call puts back to `pending`; call again for more.
pub(crate) const RECOVER_DELIVERIES_MAX: usize = 10_000;

/// Longest window of `/stats`, and most deliveries it counts.
pub(crate) const STATS_HOURS_MAX: i64 = 168;

pub(crate) const STATS_DELIVERIES_MAX: usize = 50_000;

impl Api {
    /// `POST /v1/endpoints/{id}/rotate-secret {overlap?}`: a new secret at once; the old one
    /// stays live for the overlap (SPEC "Rotation").
    pub(crate) fn rotate_secret(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_optional_object(body)?;
        let mut overlap = ROTATION_OVERLAP_DEFAULT;
        for (key, value) in &input {
            match key.as_str() {
                "overlap" => {
                    let text = value.as_str().ok_or_else(|| {
                        Problem::field("overlap", "overlap must be a duration such as \"24h\"")
                    })?;
                    overlap = time::parse_duration(text).map_err(|message| {
                        Problem::field("overlap", format!("overlap: {message}"))
                    })?;
                    if overlap > ROTATION_OVERLAP_MAX {
                        return Err(Problem::field(
                            "overlap",
                            format!(
                                "overlap is at most {}",
                                time::format_duration(ROTATION_OVERLAP_MAX)
                            ),
                        ));
                    }
                }
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: overlap"),
                    ));
                }
            }
        }
        let endpoint = self.find_endpoint(access, id)?;
        let secret = new_secret();
        let now = now_ms();
        store::rotate_secret(
            &self.conn,
            endpoint.seq,
            &secret,
            time::duration_ms(overlap),
            now,
        )
        .map_err(internal)?;
        // Claimed attempts were signed with the old secrets: they are claimed again.
        self.endpoint_changed(endpoint.seq);
        log::info!(
            "secret rotated: endpoint={} overlap={}",
            endpoint.id,
            time::format_duration(overlap)
        );
        let endpoint = self.find_endpoint(access, id)?;
        let mut value = endpoint_json(&endpoint, self.shared.dispatcher.window(endpoint.seq));
        value["secret"] = Value::from(secret);
        Ok((200, value))
    }

    /// `POST /v1/endpoints/{id}/test {type?}`: a sample event of that type to this endpoint
    /// only, through the normal delivery path.
    pub(crate) fn send_test(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_optional_object(body)?;
        let endpoint = self.find_endpoint(access, id)?;
        let mut type_name = endpoint
            .event_types
            .iter()
            .find(|name| name.as_str() != "*")
            .cloned()
            .unwrap_or_else(|| catalog::EVENT_TYPES[0].name.to_string());
        for (key, value) in &input {
            match key.as_str() {
                "type" => {
                    type_name = value
                        .as_str()
                        .ok_or_else(|| Problem::field("type", "type must be a string"))?
                        .to_string();
                }
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: type"),
                    ));
                }
            }
        }
        let Some(data) = catalog::sample(&type_name) else {
            return Err(ingest::unknown_event_type(&type_name, "type"));
        };
        if !endpoint.enabled {
            return Err(Problem::new(
                409,
                "endpoint_disabled",
                "this endpoint is disabled, so a test event would wait; enable it first",
            ));
        }
        let now = now_ms();
        let event_id = new_id("evt");
        let event = NewEvent {
            body: ingest::envelope(&event_id, &type_name, now, &data.to_string()).into_bytes(),
            id: event_id,
            workspace_id: endpoint.workspace_id.clone(),
            subject: ingest::default_subject(&type_name, &data),
            event_type: type_name,
            created_at_ms: now,
            test_endpoint_seq: Some(endpoint.seq),
        };
        let mut stored = self.ingest(vec![event])?;
        let mut value = stored_json(&stored.pop().expect("one event in, one out"));
        value["test"] = Value::from(true);
        Ok((202, value))
    }

    /// `POST /v1/endpoints/{id}/recover {since, until?}`: failed deliveries back to pending.
    pub(crate) fn recover(&self, access: &Access, id: &str, body: &str) -> Answer {
        let input = parse_object(body)?;
        let time_field = |name: &str| -> Result<Option<i64>, Problem> {
            match input.get(name) {
                None => Ok(None),
                Some(value) => value
                    .as_str()
                    .and_then(parse_rfc3339)
                    .map(Some)
                    .ok_or_else(|| {
                        Problem::field(
                            name,
                            format!("{name} must be an RFC 3339 time, e.g. 2024-01-15T10:30:00Z"),
                        )
                    }),
            }
        };
        if let Some(other) = input
            .keys()
            .find(|key| !["since", "until", "after"].contains(&key.as_str()))
        {
            return Err(Problem::field(
                other,
                format!("unknown field \"{other}\"; allowed: since, until, after"),
            ));
        }
        // `after`: the `next` of the previous call, so a long recovery goes on where it stopped
        // (deliveries it re-queued that failed again are not taken twice).
        let after_seq = match input.get("after") {
            None | Some(Value::Null) => 0,
            Some(value) => value
                .as_str()
                .and_then(|text| text.parse::<i64>().ok())
                .filter(|seq| *seq > 0)
                .ok_or_else(|| {
                    Problem::field(
                        "after",
                        "after must be the `next` of a previous recover answer",
                    )
                })?,
        };
        let since_ms = time_field("since")?
            .ok_or_else(|| Problem::field("since", "since is required: an RFC 3339 time"))?;
        let now = now_ms();
        let until_ms = time_field("until")?.unwrap_or(i64::MAX);
        if until_ms < since_ms {
            return Err(Problem::field(
                "until",
                "until must not be earlier than since",
            ));
        }
        let endpoint = self.find_endpoint(access, id)?;
        let (requeued, next) = store::recover_failed(
            &self.conn,
            endpoint.seq,
            (since_ms, until_ms),
            after_seq,
            now,
            RECOVER_DELIVERIES_MAX,
        )
        .map_err(internal)?;
        if requeued > 0 {
            self.wake_schedulers();
        }
        log::info!("recover: endpoint={} requeued={requeued}", endpoint.id);
        Ok((
            202,
            json!({"requeued": requeued, "more": next.is_some(), "next": next.map(|seq| seq.to_string())}),
        ))
    }

    /// `GET /v1/endpoints/{id}/stats?hours=24`: deliveries per hour by outcome, success rate,
    /// last success, counted from the endpoint's newest deliveries.
    pub(crate) fn stats(&self, access: &Access, id: &str, query: &Query) -> Answer {
        let hours = match query.get("hours") {
            None => 24,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|hours| (1..=STATS_HOURS_MAX).contains(hours))
                .ok_or_else(|| {
                    Problem::new(
                        400,
                        "invalid_query",
                        format!("hours must be a whole number from 1 to {STATS_HOURS_MAX}"),
                    )
                    .at("hours")
                })?,
        };
        let endpoint = self.find_endpoint(access, id)?;
        const HOUR_MS: i64 = 3_600_000;
        let first_hour_ms = (now_ms().div_euclid(HOUR_MS) - (hours - 1)) * HOUR_MS;
        let rows = store::recent_deliveries(
            &self.conn,
            endpoint.seq,
            first_hour_ms,
            STATS_DELIVERIES_MAX,
        )
        .map_err(internal)?;
        let mut hourly = vec![[0u64; 3]; hours as usize];
        let mut totals = [0u64; 4];
        for (status, created_at_ms) in &rows {
            let bucket = ((created_at_ms - first_hour_ms) / HOUR_MS).clamp(0, hours - 1) as usize;
            let (outcome, total) = match status.as_str() {
                "succeeded" => (0, 0),
                "failed" => (1, 1),
                "pending" => (2, 2),
                _ => (2, 3),
            };
            hourly[bucket][outcome] += 1;
            totals[total] += 1;
        }
        let finished = totals[0] + totals[1];
        Ok((
            200,
            json!({
                "hours": hours,
                "last_success_at": endpoint.last_success_at_ms.map(format_rfc3339_millis),
                "success_rate": (finished > 0).then(|| totals[0] as f64 / finished as f64),
                "totals": {"succeeded": totals[0], "failed": totals[1], "pending": totals[2], "delivering": totals[3]},
                "counted": rows.len(),
                "hourly": hourly.iter().enumerate().map(|(index, [succeeded, failed, pending])| json!({
                    "hour": format_rfc3339_seconds(first_hour_ms + index as i64 * HOUR_MS),
                    "succeeded": succeeded,
                    "failed": failed,
                    "pending": pending,
                })).collect::<Vec<_>>(),
            }),
        ))
    }
}

/// `GET /v1/endpoints/{id}/secret`.
pub(crate) fn secret(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let id = call.param("id");
    let endpoint = api.find_endpoint(access, id)?;
    let crate::model::Secrets {
        current: secret,
        previous,
    } = store::endpoint_secrets(&api.conn, endpoint.seq, now_ms())
        .map_err(internal)?
        .ok_or_else(|| not_found("endpoint", id))?;
    Ok((
        200,
        json!({
            "secret": secret,
            "previous_secret": previous.as_ref().map(|(secret, _)| secret),
            "previous_secret_expires_at": previous.map(|(_, at)| format_rfc3339_millis(at)),
        }),
    ))
}

/// `POST /v1/endpoints/{id}/rotate-secret`.
pub(crate) fn rotate(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.rotate_secret(access, call.param("id"), &body)
}

/// `POST /v1/endpoints/{id}/test`.
pub(crate) fn test(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.send_test(access, call.param("id"), &body)
}

/// `POST /v1/endpoints/{id}/recover`.
pub(crate) fn recover(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.recover(access, call.param("id"), &body)
}

/// `GET /v1/endpoints/{id}/stats`.
pub(crate) fn stats(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    api.stats(access, call.param("id"), &call.query)
}
