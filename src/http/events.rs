//! `/v1/events`: ingest (answered after the commit) and reading.

#[allow(unused_imports)]
use super::prelude::*;

impl Api {
    /// Stores events and their deliveries, answering after the commit. On SQLite the
    /// scheduler, the one writer, commits them in its next round (with everyone else's); on
    /// Postgres this thread commits them on its own connection (commits of many connections
    /// share the server's WAL flushes, where one scheduler would take them one round at a
    /// time), then wakes the scheduler to claim them.
    pub(crate) fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, Problem> {
        let stored = if store::shared(&self.conn) {
            let stored =
                crate::engine::ingest::commit(&self.conn, &events, now_ms()).map_err(internal)?;
            // Full: the scheduler has commands waiting, so a round runs anyway. Gone: the
            // events are committed; another instance or the next start sends them.
            let _ = self.shared.commands.try_send(Command::Wake);
            stored
        } else {
            self.ingest_in_round(events)?
        };
        for event in stored.iter().filter(|event| event.created) {
            self.shared.metrics.event_ingested(&event.event_type);
        }
        Ok(stored)
    }

    /// Hands events to the scheduler and waits for their commit.
    fn ingest_in_round(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, Problem> {
        let (reply, answer) = bounded(1);
        let stopped = || {
            Problem::new(
                503,
                "unavailable",
                "the service is shutting down; try again shortly",
            )
        };
        self.shared
            .commands
            .send(Command::Ingest { events, reply })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?.map_err(internal)
    }

    pub(crate) fn list_events(&self, access: &Access, query: &Query) -> BytesAnswer {
        let (limit, before) = query.page()?;
        let since_ms = match query.get("since") {
            Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
                Problem::new(
                    400,
                    "invalid_query",
                    "since must be an RFC 3339 time, e.g. 2024-01-15T10:30:00Z",
                )
                .at("since")
            })?),
            None => None,
        };
        let filter = EventFilter {
            workspace_id: access.narrow(query.get("workspace_id"))?,
            event_type: query.get("type"),
            since_ms,
        };
        // One fetch holds at most a page's worth of stored bodies, however large they are.
        let fetch_max =
            (crate::http::pages::PAGE_BYTES_MAX / self.shared.max_event_bytes.max(1)).max(1);
        let page = crate::http::pages::event_page(
            limit,
            before,
            crate::http::pages::PAGE_BYTES_MAX,
            fetch_max,
            |before, count| store::events(&self.conn, &filter, before, count).map_err(internal),
        )?;
        Ok((200, page))
    }

    /// Event ids are unique per workspace: a workspace token sees its own event; the admin
    /// names the workspace with `?workspace_id=` when two workspaces use the id.
    pub(crate) fn get_event(&self, access: &Access, id: &str, query: &Query) -> Answer {
        let workspace_id = access.narrow(query.get("workspace_id"))?;
        let mut found = store::events_by_id(&self.conn, id, workspace_id, 2).map_err(internal)?;
        if found.len() > 1 {
            return Err(Problem::new(
                409,
                "ambiguous_event_id",
                format!("several workspaces have an event \"{id}\"; name one with ?workspace_id="),
            )
            .at("workspace_id"));
        }
        let event = found.pop().ok_or_else(|| not_found("event", id))?;
        let filter = DeliveryFilter {
            workspace_id: Some(&event.workspace_id),
            event_id: Some(id),
            ..DeliveryFilter::default()
        };
        let deliveries =
            store::deliveries(&self.conn, &filter, i64::MAX, PAGE_LIMIT_MAX).map_err(internal)?;
        let mut value = event_json(&event);
        value["deliveries"] = deliveries.iter().map(delivery_json).collect();
        Ok((200, value))
    }
}

/// `POST /v1/events`.
pub(crate) fn create(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let default_workspace = access.workspace().unwrap_or(DEFAULT_WORKSPACE);
    let body = call.body(api.shared.max_event_bytes)?;
    let event = ingest::parse_event(
        &body,
        "",
        api.shared.max_event_bytes,
        now_ms(),
        default_workspace,
    )?;
    access.check_workspace(&event.workspace_id, "workspace_id")?;
    let mut stored = api.ingest(vec![event])?;
    let stored = stored.pop().expect("one event in, one out");
    Ok((if stored.created { 202 } else { 200 }, stored_json(&stored)))
}

/// `POST /v1/events/batch`.
pub(crate) fn create_batch(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let default_workspace = access.workspace().unwrap_or(DEFAULT_WORKSPACE);
    let body = call.body(BATCH_BYTES_MAX)?;
    let events = ingest::parse_batch(
        &body,
        api.shared.max_event_bytes,
        now_ms(),
        default_workspace,
    )?;
    for (index, event) in events.iter().enumerate() {
        access.check_workspace(
            &event.workspace_id,
            &format!("events[{index}].workspace_id"),
        )?;
    }
    let stored = api.ingest(events)?;
    Ok((
        202,
        json!({ "events": stored.iter().map(stored_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /v1/events`, answered as bytes rather than a `Value` (see `pages.rs`).
pub(crate) fn list(api: &Api, access: &Access, call: &mut Call<'_>) -> BytesAnswer {
    api.list_events(access, &call.query)
}

/// `GET /v1/events/{id}`.
pub(crate) fn get(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    api.get_event(access, call.param("id"), &call.query)
}
