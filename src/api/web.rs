//! The web explorer at `/`: one HTML page, its script and its style sheet, compiled into the
//! binary (`src/api/web/`), plain HTML, CSS and JavaScript with no build step and nothing
//! fetched from elsewhere. The script renders everything from the JSON API with `textContent`
//! and DOM nodes (never `innerHTML`), under a Content-Security-Policy that allows only this
//! origin's script and style: no inline code, no other host. Read-only: the page calls only
//! open GET endpoints and never sees the cookie or a key.
//!
//! The testnet page (`gossipcoin testnet ui`) is served from the same directory.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{self, HeaderName};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The explorer's page, script and style.
pub const INDEX_HTML: &str = include_str!("web/index.html");
pub const APP_JS: &str = include_str!("web/app.js");
pub const STYLE_CSS: &str = include_str!("web/style.css");
/// The testnet page and its script.
pub const TESTNET_HTML: &str = include_str!("web/testnet.html");
pub const TESTNET_JS: &str = include_str!("web/testnet.js");

/// Only this origin's script, style, fetches and event streams; nothing inline, no frames, no
/// forms posted anywhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// An asset with its type and the page's security headers.
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";

/// `/`, `/web/app.js`, `/web/style.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset(HTML, INDEX_HTML) }))
        .route("/web/app.js", get(|| async { asset(JS, APP_JS) }))
        .route("/web/style.css", get(|| async { asset(CSS, STYLE_CSS) }))
}

/// Total bytes of the explorer's assets (HTML, JS, CSS), as served.
pub fn explorer_bytes() -> usize {
    INDEX_HTML.len() + APP_JS.len() + STYLE_CSS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ` onclick=`, ` onerror=`, ...: an attribute that runs code.
    fn has_event_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        })
    }

    #[test]
    fn no_inline_code_and_no_inner_html() {
        assert!(has_event_attribute("<img src=x onerror=alert(1)>"));
        assert!(!has_event_attribute("<p>based on this</p>"));
        for (name, text) in [("index.html", INDEX_HTML), ("testnet.html", TESTNET_HTML)] {
            assert!(!text.contains("<script>"), "{name}: inline script");
            assert!(!text.contains("style="), "{name}: inline style");
            assert!(!text.contains("<style"), "{name}: inline style sheet");
            assert!(!has_event_attribute(text), "{name}: inline event handler");
            assert!(!text.contains("http"), "{name}: another origin");
        }
        for (name, text) in [("app.js", APP_JS), ("testnet.js", TESTNET_JS)] {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{name} uses {banned}");
            }
        }
    }
}
