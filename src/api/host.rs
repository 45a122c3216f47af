//! The Host-header rule, against DNS rebinding: a web page on `evil.example` whose name an
//! attacker re-points to 127.0.0.1 reaches the API with `Host: evil.example`, so any Host other
//! than this server's own names is refused (421) before a route runs. Allowed: `localhost`,
//! `127.0.0.1`, `[::1]` and the listen address itself (any IP literal when listening on every
//! interface: an IP literal cannot be rebound), each with the port the server listens on.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The names a request may address this server by.
#[derive(Clone, Copy, Debug)]
pub struct HostRule {
    listen: SocketAddr,
}

impl HostRule {
    /// The rule for a server bound to `listen` (its real port, not 0).
    pub fn new(listen: SocketAddr) -> Self {
        Self { listen }
    }

    /// Whether a `Host` header value names this server.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if port.unwrap_or(80) != self.listen.port() {
            return false;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let Ok(ip) = name.parse::<IpAddr>() else {
            return false;
        };
        ip.is_loopback() || ip == self.listen.ip() || self.listen.ip().is_unspecified()
    }
}

/// `name[:port]` or `[v6][:port]` → (name without brackets, port); `None` when malformed.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = if let Some(v6) = host.strip_prefix('[') {
        let end = v6.find(']')?;
        (&v6[..end], &v6[end + 1..])
    } else {
        match host.rfind(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    let port = match rest {
        "" => None,
        p => Some(p.strip_prefix(':')?.parse().ok()?),
    };
    (!name.is_empty()).then_some((name, port))
}

/// Middleware for every route: 421 unless the Host header names this server.
pub async fn check(State(rule): State<HostRule>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if rule.allows(&h) => next.run(request).await,
        other => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {:?} is not this server: use http://127.0.0.1:{} or \
                 http://localhost:{} (other names are refused, against DNS rebinding)",
                other.unwrap_or_default(),
                rule.listen.port(),
                rule.listen.port()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_the_listen_address_with_its_port() {
        let rule = HostRule::new("127.0.0.1:4000".parse().unwrap());
        for ok in [
            "127.0.0.1:4000",
            "localhost:4000",
            "LocalHost:4000",
            "[::1]:4000",
        ] {
            assert!(rule.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:4000",
            "localhost.evil.example:4000",
            "127.0.0.1:4001",
            "127.0.0.1",
            "localhost",
            "10.0.0.1:4000",
            "[::1",
            ":4000",
            "",
            "127.0.0.1:x",
        ] {
            assert!(!rule.allows(bad), "{bad}");
        }
        let lan = HostRule::new("192.168.1.5:80".parse().unwrap());
        assert!(lan.allows("192.168.1.5"), "port 80 may be left out");
        assert!(!lan.allows("192.168.1.6"));
        assert!(!lan.allows("node.lan"), "a DNS name can be rebound");
        let any = HostRule::new("0.0.0.0:4000".parse().unwrap());
        assert!(any.allows("192.168.1.6:4000"));
        assert!(!any.allows("node.lan:4000"));
    }
}
