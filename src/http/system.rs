//! The service about itself: `GET /healthz`, `/metrics`, `/v1/me`, `/v1/event-types`.

#[allow(unused_imports)]
use super::prelude::*;

/// The scheduler must have run a round within this long for `/healthz` to answer 200.
pub(crate) const HEARTBEAT_STALE_MS: i64 = 10_000;

impl Api {
    /// `GET /metrics`: Prometheus text, no token (like `/healthz`); no secret or payload in it.
    pub(crate) fn metrics(&self) -> Response<std::io::Cursor<Vec<u8>>> {
        let page = store::metrics_gauges(&self.conn, now_ms()).and_then(|gauges| {
            let mut flows = Vec::new();
            for view in self.shared.dispatcher.flows() {
                // An endpoint deleted meanwhile has no id any more: it is left out.
                if let Some(id) = store::endpoint_id(&self.conn, view.endpoint_seq)? {
                    flows.push((id, view.window, view.running));
                }
            }
            let live = store::live_instances(
                &self.conn,
                &self.shared.instance_id,
                store::INSTANCE_LIVE_MS,
            )?;
            Ok(self.shared.metrics.render(&gauges)
                + &crate::http::metrics::render_flows(&flows)
                + &crate::http::metrics::render_instances(live.len()))
        });
        match page {
            Ok(page) => Response::from_data(page.into_bytes()).with_header(
                Header::from_bytes("Content-Type", "text/plain; version=0.0.4")
                    .expect("valid header"),
            ),
            Err(error) => {
                let problem = internal(error);
                let body = json!({"error": {"code": problem.code, "message": problem.message}})
                    .to_string();
                Response::from_data(body.into_bytes()).with_status_code(problem.status)
            }
        }
    }

    pub(crate) fn healthz(&self) -> Answer {
        let database = store::ping(&self.conn);
        let scheduler =
            now_ms() - self.shared.heartbeat_ms.load(Ordering::Relaxed) < HEARTBEAT_STALE_MS;
        let status = if database && scheduler { 200 } else { 503 };
        Ok((
            status,
            json!({"database": if database { "ok" } else { "failing" }, "scheduler": if scheduler { "ok" } else { "stalled" }}),
        ))
    }
}

/// `GET /metrics` (no token).
pub(crate) fn metrics_page(api: &Api) -> Response<Cursor<Vec<u8>>> {
    api.metrics()
}

/// `GET /healthz` (no token).
pub(crate) fn healthz(api: &Api, _: &mut Call<'_>) -> Answer {
    api.healthz()
}

/// `GET /v1/me`.
pub(crate) fn me(_: &Api, access: &Access, _: &mut Call<'_>) -> Answer {
    Ok((
        200,
        match access.workspace() {
            None => json!({"role": "admin"}),
            Some(workspace) => json!({"role": "workspace", "workspace_id": workspace}),
        },
    ))
}

/// `GET /v1/event-types`.
pub(crate) fn event_types(_: &Api, _: &Access, _: &mut Call<'_>) -> Answer {
    Ok((200, catalog::to_json()))
}
