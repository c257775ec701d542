//! Who a request comes from: the admin token, or a workspace token (`Access`), and what each
//! may see.

#[allow(unused_imports)]
use super::prelude::*;

/// Who a request comes from. A workspace token sees and changes its workspace only; to it,
/// another workspace's objects do not exist (404), and naming another workspace is 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    Admin,
    Workspace(String),
}

impl Access {
    /// The one workspace this access is limited to; None for the admin.
    pub(crate) fn workspace(&self) -> Option<&str> {
        match self {
            Access::Admin => None,
            Access::Workspace(workspace) => Some(workspace),
        }
    }

    pub(crate) fn sees(&self, workspace_id: &str) -> bool {
        self.workspace().is_none_or(|own| own == workspace_id)
    }

    /// 403 unless this access may act in `workspace_id` (named in `field`).
    pub(crate) fn check_workspace(&self, workspace_id: &str, field: &str) -> Result<(), Problem> {
        if self.sees(workspace_id) {
            return Ok(());
        }
        Err(Problem::new(
            403,
            "forbidden",
            format!(
                "this token is for workspace \"{}\" only",
                self.workspace().unwrap_or("")
            ),
        )
        .at(field))
    }

    pub(crate) fn check_admin(&self) -> Result<(), Problem> {
        match self {
            Access::Admin => Ok(()),
            Access::Workspace(_) => Err(Problem::new(
                403,
                "forbidden",
                "only the admin token may manage workspace tokens",
            )),
        }
    }

    /// The workspace filter of a list: a workspace token always lists its own.
    pub(crate) fn narrow<'a>(&'a self, asked: Option<&'a str>) -> Result<Option<&'a str>, Problem> {
        match (self.workspace(), asked) {
            (None, asked) => Ok(asked),
            (Some(own), Some(asked)) if asked != own => {
                self.check_workspace(asked, "workspace_id")?;
                Ok(Some(own))
            }
            (Some(own), _) => Ok(Some(own)),
        }
    }
}

impl Api {
    /// Who sends the request: the admin, or a workspace token's holder.
    pub(crate) fn authorize(&self, request: &Request) -> Result<Access, Problem> {
        let token = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| {
                // The scheme name is case-insensitive (RFC 9110).
                let value = h.value.as_str();
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim);
        match token {
            None => Err(Problem::new(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
            )),
            Some(token) => {
                let hash = sha256_hex(token);
                if hash == self.shared.admin_token_sha256 {
                    return Ok(Access::Admin);
                }
                let found = store::token_by_hash(&self.conn, &hash, now_ms()).map_err(internal)?;
                let Some(found) = found else {
                    return Err(Problem::new(
                        401,
                        "unauthorized",
                        "the bearer token is not valid (revoked, expired, or never issued)",
                    ));
                };
                if let Err(error) = store::touch_token(&self.conn, &found, now_ms()) {
                    // Only `last_used_at` is lost; the request goes on.
                    log::warn!("api: noting the use of token {} failed: {error}", found.id);
                }
                Ok(Access::Workspace(found.workspace_id))
            }
        }
    }
}
