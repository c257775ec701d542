//! Workspace tokens and the portal: `/v1/workspaces/{workspace}/tokens`, `…/portal-links`
//! (admin only) and `POST /v1/portal/session` (no token: the link's code is the credential).

#[allow(unused_imports)]
use super::prelude::*;

/// Workspace tokens start with this (the admin token with `cew_admin`), portal link codes
/// with `cew_pl`.
pub(crate) const WORKSPACE_TOKEN_PREFIX: &str = "cew_ws";

pub(crate) const PORTAL_CODE_PREFIX: &str = "cew_pl";

/// How long a portal link's code can be used (once) when not asked, and at most; how long the
/// session it opens lasts.
pub(crate) const PORTAL_CODE_LIFETIME_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(15 * 60);

pub(crate) const PORTAL_CODE_LIFETIME_MAX: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

pub(crate) const PORTAL_SESSION_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(12 * 3600);

impl Api {
    /// `POST /v1/workspaces/{ws}/tokens {description?}`: the token is in this answer only.
    pub(crate) fn create_token(&self, workspace: &str, body: &str) -> Answer {
        let workspace =
            ingest::check_id(Some(&Value::from(workspace)), "workspace_id")?.expect("given");
        let input = parse_optional_object(body)?;
        let mut description = String::new();
        for (key, value) in &input {
            match key.as_str() {
                "description" => description = check_description(value)?,
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: description"),
                    ));
                }
            }
        }
        let mut row = store::TokenRow {
            seq: 0,
            id: new_id("tok"),
            workspace_id: workspace,
            description,
            created_at_ms: now_ms(),
            last_used_at_ms: None,
            expires_at_ms: None,
        };
        self.issue_token(&mut row)
    }

    /// Stores a workspace token; the answer (201) is the only place its secret appears.
    pub(crate) fn issue_token(&self, row: &mut store::TokenRow) -> Answer {
        let token = new_token(WORKSPACE_TOKEN_PREFIX);
        store::insert_token(&self.conn, row, &sha256_hex(&token)).map_err(internal)?;
        log::info!(
            "token created: token={} workspace={} description={:?}",
            row.id,
            row.workspace_id,
            row.description
        );
        let mut value = token_json(row);
        value["token"] = Value::from(token);
        Ok((201, value))
    }

    /// `POST /v1/workspaces/{ws}/portal-links {expires_in?}`: a single-use code, short-lived,
    /// that the dashboard exchanges for a portal session. The link carries the code, never a
    /// token: a browser's history keeps it, but once used or expired it opens nothing.
    pub(crate) fn create_portal_link(&self, workspace: &str, body: &str, base: &str) -> Answer {
        let workspace =
            ingest::check_id(Some(&Value::from(workspace)), "workspace_id")?.expect("given");
        let input = parse_optional_object(body)?;
        let mut expires_in = PORTAL_CODE_LIFETIME_DEFAULT;
        for (key, value) in &input {
            match key.as_str() {
                "expires_in" => {
                    expires_in = value
                        .as_str()
                        .ok_or_else(|| {
                            Problem::field(
                                "expires_in",
                                "expires_in must be a duration such as \"15m\"",
                            )
                        })
                        .and_then(|text| {
                            time::parse_duration(text).map_err(|message| {
                                Problem::field("expires_in", format!("expires_in: {message}"))
                            })
                        })?;
                    if expires_in.is_zero() || expires_in > PORTAL_CODE_LIFETIME_MAX {
                        return Err(Problem::field(
                            "expires_in",
                            format!(
                                "expires_in must be more than 0s and at most {}",
                                time::format_duration(PORTAL_CODE_LIFETIME_MAX)
                            ),
                        ));
                    }
                }
                other => {
                    return Err(Problem::field(
                        other,
                        format!("unknown field \"{other}\"; allowed: expires_in"),
                    ));
                }
            }
        }
        let code = new_token(PORTAL_CODE_PREFIX);
        let now = now_ms();
        let expires_at_ms = time::after_ms(now, expires_in);
        store::insert_portal_code(
            &self.conn,
            &sha256_hex(&code),
            &workspace,
            now,
            expires_at_ms,
        )
        .map_err(internal)?;
        log::info!("portal link created: workspace={workspace}");
        Ok((
            201,
            json!({
                "code": code,
                "workspace_id": workspace,
                "expires_at": format_rfc3339_millis(expires_at_ms),
                "url": format!("{base}/#code={code}"),
            }),
        ))
    }

    /// `POST /v1/portal/session {code}` (no token): uses up a portal code and answers a
    /// workspace token that lasts `PORTAL_SESSION_LIFETIME`.
    pub(crate) fn portal_session(&self, body: &str) -> Answer {
        let input = parse_object(body)?;
        if let Some(other) = input.keys().find(|key| key.as_str() != "code") {
            return Err(Problem::field(
                other,
                format!("unknown field \"{other}\"; allowed: code"),
            ));
        }
        let code = input
            .get("code")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::field("code", "code is required: the code of a portal link"))?;
        let now = now_ms();
        let workspace = store::take_portal_code(&self.conn, &sha256_hex(code), now)
            .map_err(internal)?
            .ok_or_else(|| {
                Problem::new(
                    401,
                    "invalid_code",
                    "this portal link was used already, has expired, or never existed; ask for a new one",
                )
                .at("code")
            })?;
        let mut row = store::TokenRow {
            seq: 0,
            id: new_id("tok"),
            workspace_id: workspace,
            description: "portal session".to_string(),
            created_at_ms: now,
            last_used_at_ms: None,
            expires_at_ms: Some(time::after_ms(now, PORTAL_SESSION_LIFETIME)),
        };
        self.issue_token(&mut row)
    }
}

/// `POST /v1/workspaces/{workspace}/tokens` (admin).
pub(crate) fn create_token(api: &Api, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.create_token(call.param("workspace"), &body)
}

/// `GET /v1/workspaces/{workspace}/tokens` (admin).
pub(crate) fn list_tokens(api: &Api, call: &mut Call<'_>) -> Answer {
    let (limit, before) = call.query.page()?;
    let rows =
        store::tokens(&api.conn, call.param("workspace"), before, limit + 1).map_err(internal)?;
    Ok((200, page(rows, limit, |r| r.seq, token_json)))
}

/// `DELETE /v1/workspaces/{workspace}/tokens/{id}` (admin).
pub(crate) fn delete_token(api: &Api, call: &mut Call<'_>) -> Answer {
    let (workspace, id) = (call.param("workspace"), call.param("id"));
    if !store::delete_token(&api.conn, workspace, id).map_err(internal)? {
        return Err(not_found("token", id));
    }
    log::info!("token revoked: token={id} workspace={workspace}");
    Ok((204, Value::Null))
}

/// `POST /v1/workspaces/{workspace}/portal-links` (admin).
pub(crate) fn create_portal_link(api: &Api, call: &mut Call<'_>) -> Answer {
    let base = public_base(api, call.request);
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.create_portal_link(call.param("workspace"), &body, &base)
}

/// The start of an absolute URL to this service: `--public-url`, else `http://` + the
/// request's `Host` (a proxy that ends TLS should be named with `--public-url`).
fn public_base(api: &Api, request: &Request) -> String {
    if let Some(url) = &api.shared.public_url {
        return url.clone();
    }
    let host = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().trim().to_string())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        });
    match host {
        Some(host) => format!("http://{host}"),
        None => String::new(),
    }
}

/// `POST /v1/portal/session` (no token).
pub(crate) fn portal_session(api: &Api, call: &mut Call<'_>) -> Answer {
    let body = call.body(REQUEST_BYTES_MAX)?;
    api.portal_session(&body)
}
