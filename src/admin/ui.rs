//! The admin's web UI: four files embedded in the binary at build time (`ui/`), plain
//! HTML, CSS and JavaScript over the JSON API; nothing is fetched from elsewhere, no build
//! step. `GET /` is the page; `/ui/app.js`, `/ui/edit.js` (the table and script editors)
//! and `/ui/style.css` its parts. The page needs no
//! credentials to load (it shows the login form); everything it shows comes from the API,
//! which does.

use http::{Response, StatusCode};

const INDEX: &str = include_str!("ui/index.html");
const APP: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");
const EDIT: &str = include_str!("ui/edit.js");

/// The asset at `path`, if it is one.
pub fn asset(path: &str) -> Option<Response<Vec<u8>>> {
    let (body, kind) = match path {
        "/" | "/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/ui/app.js" => (APP, "text/javascript; charset=utf-8"),
        "/ui/style.css" => (STYLE, "text/css; charset=utf-8"),
        "/ui/edit.js" => (EDIT, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut r = Response::new(body.as_bytes().to_vec());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    // only this origin's own files; no framing (clickjacking), no sniffing
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        http::header::X_FRAME_OPTIONS,
        http::HeaderValue::from_static("DENY"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    Some(r)
}
