//! The API's edge: what is decided from a request's head alone, on the connection's own thread,
//! before any byte of its body is read and before an API thread sees it. A request that needs a
//! token and has no valid one is answered 401 here and its connection closed, so unauthenticated
//! clients cannot make the service buffer bodies or hold an API thread; a request that needs no
//! token may carry only a small body. Routing, access rules and everything else stay in
//! `http/mod.rs` and the route table (`routes.rs`).

use std::sync::{Arc, Mutex};

use crate::store::Db;
use tiny_http::{HeadCheck, Header, Method, Request, Response};

use crate::ids::sha256_hex;
use crate::store;
use crate::time::now_ms;

/// The check the server makes on each head. `conn` is used only to look up workspace tokens
/// (one indexed read); connections' threads take turns on it.
pub(crate) fn head_check(admin_token_sha256: String, conn: Db) -> HeadCheck {
    let conn = Mutex::new(conn);
    Arc::new(move |request: &Request| {
        if !needs_token(request) {
            return body_refusal(request);
        }
        let message = match bearer_token(request) {
            None => "send Authorization: Bearer <token>",
            Some(token) => {
                let hash = sha256_hex(token);
                if hash == admin_token_sha256 {
                    return None;
                }
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                match store::token_by_hash(&conn, &hash, now_ms()) {
                    Ok(Some(_)) => return None,
                    // The API thread answers the database's trouble as usual.
                    Err(_) => return None,
                    Ok(None) => "the bearer token is not valid (revoked, expired, or never issued)",
                }
            }
        };
        Some(error(401, "unauthorized", message))
    })
}

/// Most bytes of body a request without a token may send (`POST /v1/portal/session` sends a
/// code): so that clients without a token cannot fill the read-ahead budget that token holders'
/// requests share.
pub(crate) const UNAUTHENTICATED_BODY_BYTES_MAX: usize = 4 * 1024;

/// For a request that needs no token: `411` for a chunked body (its size is unknown until read),
/// `413` for a body over `UNAUTHENTICATED_BODY_BYTES_MAX`; both from the head, body unread.
fn body_refusal(request: &Request) -> Option<Response<std::io::Cursor<Vec<u8>>>> {
    let chunked = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Transfer-Encoding"));
    if chunked {
        return Some(error(
            411,
            "length_required",
            "a request without a token must send its body with a Content-Length",
        ));
    }
    if request
        .body_length()
        .is_some_and(|length| length > UNAUTHENTICATED_BODY_BYTES_MAX)
    {
        return Some(error(
            413,
            "payload_too_large",
            &format!(
                "a request without a token may have a body of at most {UNAUTHENTICATED_BODY_BYTES_MAX} bytes"
            ),
        ));
    }
    None
}

/// An answer in the API's error shape.
fn error(status: u16, code: &str, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    Response::from_data(body.to_string().into_bytes())
        .with_status_code(status)
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("valid header"))
}

/// True for a route of the API that needs a token: an existing `/v1` route other than the
/// portal's session exchange (whose code is its credential). Unknown routes are left to
/// `handle` (`http/mod.rs`), which answers 404.
fn needs_token(request: &Request) -> bool {
    use crate::http::route::{Resolved, resolve, segments};
    let parts = segments(request.url());
    if parts.first().map(String::as_str) != Some("v1") {
        return false;
    }
    if parts == ["v1", "portal", "session"] && *request.method() == Method::Post {
        return false;
    }
    !matches!(
        resolve(
            crate::http::routes::ROUTES,
            request.method().as_str(),
            request.url()
        ),
        Resolved::NoRoute
    )
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 9110).
pub(crate) fn bearer_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| {
            let (scheme, token) = h.value.as_str().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
}
