//! Cookie authentication, Bitcoin Core's model: at start the node writes a fresh random secret
//! to `<data-dir>/api.cookie` (mode 0600) as `__cookie__:<hex>`; whoever can read that file may
//! call the endpoints that spend or change state, by sending it as HTTP basic auth
//! (`curl -u "$(cat node/api.cookie)"`) or as `Authorization: Bearer <hex>`. Read-only
//! endpoints stay open on loopback.

use std::io::Write;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The file name of the cookie in the data directory.
pub const COOKIE_FILE: &str = "api.cookie";
/// The user name in the cookie, as in Bitcoin Core.
pub const COOKIE_USER: &str = "__cookie__";

/// What a request must carry, or nothing when auth is off.
#[derive(Clone)]
pub struct Auth {
    secret: Option<String>,
}

impl Auth {
    /// No authentication (`--api-auth none`).
    pub fn none() -> Self {
        Self { secret: None }
    }

    /// A fresh secret, written to `<dir>/api.cookie` with mode 0600.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let secret = hex::encode(bytes);
        write_private(
            &dir.join(COOKIE_FILE),
            format!("{COOKIE_USER}:{secret}").as_bytes(),
        )?;
        Ok(Self {
            secret: Some(secret),
        })
    }

    /// Whether `header` (an `Authorization` value) carries the secret.
    fn allows(&self, header: Option<&str>) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let Some(header) = header else {
            return false;
        };
        let given = if let Some(token) = header.strip_prefix("Bearer ") {
            token.trim().as_bytes().to_vec()
        } else if let Some(b64) = header.strip_prefix("Basic ") {
            match decode_base64(b64.trim()) {
                Some(pair) => match pair.strip_prefix(format!("{COOKIE_USER}:").as_bytes()) {
                    Some(s) => s.to_vec(),
                    None => return false,
                },
                None => return false,
            }
        } else {
            return false;
        };
        constant_time_eq(&given, secret.as_bytes())
    }
}

/// Middleware for the state-changing routes: 401 unless the request carries the cookie.
pub async fn require(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth.allows(header) {
        next.run(request).await
    } else {
        // No `WWW-Authenticate: Basic` challenge: a browser would answer it with a password
        // dialog (an invitation to type something for a page that may be hostile); the JSON
        // error says what to send instead.
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs the node's cookie: curl -u \"$(cat <data-dir>/api.cookie)\" ...",
        )
        .into_response()
    }
}

/// Writes `bytes` to `path` readable by the owner only, replacing any old file atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (with padding) → bytes; `None` for anything else.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_carry_the_cookie_and_nothing_else_does() {
        let auth = Auth {
            secret: Some("abc123".into()),
        };
        // base64("__cookie__:abc123")
        assert!(auth.allows(Some("Basic X19jb29raWVfXzphYmMxMjM=")));
        assert!(auth.allows(Some("Bearer abc123")));
        assert!(!auth.allows(Some("Bearer abc124")));
        assert!(!auth.allows(Some("Basic X19jb29raWVfXzphYmMxMjQ=")));
        assert!(!auth.allows(Some("Basic !!!")));
        assert!(!auth.allows(Some("abc123")));
        assert!(!auth.allows(None));
        assert!(Auth::none().allows(None));
    }

    #[test]
    fn the_cookie_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::create(dir.path()).unwrap();
        let path = dir.path().join(COOKIE_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{COOKIE_USER}:{}", auth.secret.as_deref().unwrap())
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
