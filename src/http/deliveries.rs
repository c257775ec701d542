//! `/v1/deliveries`: list, show (with its last attempts), retry now.

#[allow(unused_imports)]
use super::prelude::*;

/// Most attempts `GET /v1/deliveries/{id}` lists (the last ones): manual retries can add
/// attempts without end, and the answer must not grow with them.
pub(crate) const ATTEMPTS_LISTED_MAX: usize = 100;

impl Api {
    pub(crate) fn find_delivery(&self, access: &Access, id: &str) -> Result<DeliveryRow, Problem> {
        store::delivery(&self.conn, id)
            .map_err(internal)?
            .filter(|delivery| access.sees(&delivery.workspace_id))
            .ok_or_else(|| not_found("delivery", id))
    }

    pub(crate) fn list_deliveries(&self, access: &Access, query: &Query) -> Answer {
        let (limit, before) = query.page()?;
        let status = query.get("status");
        if let Some(status) = status
            && !crate::model::DELIVERY_STATUSES.contains(&status)
        {
            return Err(Problem::new(
                400,
                "invalid_query",
                "status must be pending, delivering, succeeded or failed",
            )
            .at("status"));
        }
        let filter = DeliveryFilter {
            workspace_id: access.narrow(query.get("workspace_id"))?,
            endpoint_id: query.get("endpoint_id"),
            event_id: query.get("event_id"),
            status,
            event_type: query.get("type"),
            since_ms: query_time(query, "since")?,
            until_ms: query_time(query, "until")?,
        };
        let rows = store::deliveries(&self.conn, &filter, before, limit + 1).map_err(internal)?;
        Ok((200, page(rows, limit, |r| r.seq, delivery_json)))
    }
}

/// An RFC 3339 time in the query (`?since=`), as unix milliseconds.
fn query_time(query: &Query, name: &str) -> Result<Option<i64>, Problem> {
    match query.get(name) {
        None | Some("") => Ok(None),
        Some(text) => parse_rfc3339(text).map(Some).ok_or_else(|| {
            Problem::new(
                400,
                "invalid_query",
                format!("{name} must be an RFC 3339 time such as 2024-01-15T10:30:00Z"),
            )
            .at(name)
        }),
    }
}

/// `GET /v1/deliveries/{id}/attempts/{number}/request`: what that attempt sent (rebuilt).
pub(crate) fn attempt_request(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let delivery = api.find_delivery(access, call.param("id"))?;
    Ok((
        200,
        super::attempt_request::rebuild(&api.conn, &delivery, call.param("number"))?,
    ))
}

/// `GET /v1/deliveries`.
pub(crate) fn list(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    api.list_deliveries(access, &call.query)
}

/// `GET /v1/deliveries/{id}`: the delivery and its last `ATTEMPTS_LISTED_MAX` attempts.
pub(crate) fn get(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let delivery = api.find_delivery(access, call.param("id"))?;
    let attempts =
        store::attempts(&api.conn, delivery.seq, ATTEMPTS_LISTED_MAX).map_err(internal)?;
    let mut value = delivery_json(&delivery);
    value["attempts"] = attempts.iter().map(attempt_json).collect();
    Ok((200, value))
}

/// `POST /v1/deliveries/{id}/retry`.
pub(crate) fn retry(api: &Api, access: &Access, call: &mut Call<'_>) -> Answer {
    let id = call.param("id");
    let delivery = api.find_delivery(access, id)?;
    if !store::retry_delivery(&api.conn, delivery.seq, now_ms()).map_err(internal)? {
        return Err(Problem::new(
            409,
            "delivery_in_flight",
            "an attempt of this delivery is in flight; try again when it ends",
        ));
    }
    // Read before waking the scheduler: the answer is what the retry made (pending), not
    // whatever the scheduler did next (a claim raced the read and said delivering).
    let delivery = api.find_delivery(access, id)?;
    api.wake_schedulers();
    Ok((202, delivery_json(&delivery)))
}
