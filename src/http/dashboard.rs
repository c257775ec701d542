//! The dashboard's static files, compiled into the binary: `GET /` is the page, `/dashboard/…`
//! its script, style sheet and icon. They need no token (the page itself asks for one and talks
//! only to the JSON API with it). What the page does lives in `src/dashboard/app.js`; here are
//! only the bytes and the headers that keep them safe: a strict Content-Security-Policy (no
//! inline script or style, no other origin), `nosniff`, no framing, and revalidation by ETag so
//! a new binary's files are used at once.

use std::io::Cursor;
use std::sync::OnceLock;

use tiny_http::{Header, Method, Request, Response};

use crate::ids::sha256_hex;

/// Where the dashboard's files live in the URL space (besides `/` itself).
pub(crate) const ASSET_PREFIX: &str = "/dashboard/";

/// Only our own origin, for scripts, styles, images and API calls; nothing inline, no plugins,
/// no forms posting elsewhere, no framing by other sites (clickjacking a token-holding page).
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The files: URL path, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("dashboard/index.html"),
    ),
    (
        "/dashboard/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/app.js"),
    ),
    (
        "/dashboard/style.css",
        "text/css; charset=utf-8",
        include_bytes!("dashboard/style.css"),
    ),
    (
        "/dashboard/icon.svg",
        "image/svg+xml",
        include_bytes!("dashboard/icon.svg"),
    ),
];

/// A file of the dashboard by URL path (query ignored): its content type and bytes.
pub(crate) fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    FILES
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

/// True for the paths the dashboard answers: `/` and everything under `/dashboard/`.
pub(crate) fn owns(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path == "/" || path.starts_with(ASSET_PREFIX)
}

/// The ETag of each file, computed once: a hash of its bytes.
fn etag(path: &str) -> &'static str {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, bytes)| {
                format!("\"{}\"", &sha256_hex(&String::from_utf8_lossy(bytes))[..32])
            })
            .collect()
    });
    let index = FILES
        .iter()
        .position(|(name, _, _)| *name == path)
        .expect("etag is asked only for a known file");
    &etags[index]
}

/// Answers a request for the dashboard, or `None` when the path is not the dashboard's (the
/// API answers it then). Unknown files under `/dashboard/` are 404; methods other than GET and
/// HEAD are 405.
pub(crate) fn serve(request: &Request) -> Option<Response<Cursor<Vec<u8>>>> {
    let url = request.url();
    if !owns(url) {
        return None;
    }
    let path = url.split(['?', '#']).next().unwrap_or("");
    let head = |name: &str, value: &str| Header::from_bytes(name, value).expect("valid header");
    // Errors in the API's JSON shape, so a client sees one kind of error everywhere.
    let problem = |status: u16, code: &str, message: String| {
        let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
        Response::from_data(body.into_bytes())
            .with_status_code(status)
            .with_header(head("Content-Type", "application/json"))
            .with_header(head("X-Content-Type-Options", "nosniff"))
    };
    if !matches!(request.method(), Method::Get | Method::Head) {
        let message = format!("{} is not allowed on {path}", request.method());
        return Some(
            problem(405, "method_not_allowed", message).with_header(head("Allow", "GET, HEAD")),
        );
    }
    let Some((content_type, bytes)) = file(path) else {
        let message = format!("no dashboard file {path}");
        return Some(problem(404, "not_found", message));
    };
    let etag = etag(path);
    let fresh = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("If-None-Match"))
        .is_some_and(|h| h.value.as_str().split(',').any(|tag| tag.trim() == etag));
    let response = if fresh {
        Response::from_data(Vec::new()).with_status_code(304)
    } else {
        Response::from_data(bytes.to_vec()).with_header(head("Content-Type", content_type))
    };
    Some(
        response
            .with_header(head("ETag", etag))
            // Always revalidate: the files change with the binary, and a 304 costs little.
            .with_header(head("Cache-Control", "no-cache"))
            .with_header(head("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            .with_header(head("X-Content-Type-Options", "nosniff"))
            .with_header(head("X-Frame-Options", "DENY"))
            .with_header(head("Referrer-Policy", "no-referrer")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_found_by_its_path_and_others_are_not() {
        assert_eq!(file("/").unwrap().0, "text/html; charset=utf-8");
        assert_eq!(
            file("/dashboard/app.js?v=1").unwrap().0,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            file("/dashboard/style.css").unwrap().0,
            "text/css; charset=utf-8"
        );
        assert!(file("/dashboard/../Cargo.toml").is_none());
        assert!(file("/dashboard/").is_none());
        assert!(owns("/dashboard/nothing.js") && owns("/?x=1") && !owns("/v1/endpoints"));
    }

    #[test]
    fn the_page_loads_its_script_and_style_from_files_only() {
        let html = String::from_utf8_lossy(file("/").unwrap().1);
        assert!(html.contains("src=\"/dashboard/app.js\""));
        assert!(html.contains("href=\"/dashboard/style.css\""));
        // The CSP forbids inline script and style; the page must not need them.
        assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains("<style"));
        assert!(!html.contains("onclick=") && !html.contains("onload="));
    }
}
