//! Who may call: API keys as `Authorization: Bearer KEY`, a separate set of
//! admin keys for `/admin/*`, and loopback-only service when no keys are
//! configured (a server nobody configured must not be open to the network).

use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The configured keys, kept as SHA-256 digests.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    api: Vec<[u8; 32]>,
    admin: Vec<[u8; 32]>,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health and metrics: nobody's secret, but loopback-only without keys.
    Open,
    /// The API: an API or admin key.
    Api,
    /// `/admin/*`: an admin key.
    Admin,
}

impl Auth {
    /// Keys from the configuration (empty strings are ignored).
    pub fn new(api_keys: &[String], admin_keys: &[String]) -> Auth {
        let digests = |keys: &[String]| keys.iter().filter(|k| !k.is_empty()).map(|k| digest(k)).collect();
        Auth {
            api: digests(api_keys),
            admin: digests(admin_keys),
        }
    }

    /// Whether any API key is configured (else only loopback is served).
    pub fn has_api_keys(&self) -> bool {
        !self.api.is_empty()
    }

    /// Whether any admin key is configured.
    pub fn has_admin_keys(&self) -> bool {
        !self.admin.is_empty()
    }

    /// Decides a request from `peer` with `headers` to a route needing
    /// `access`.
    pub fn check(&self, access: Access, peer: IpAddr, headers: &HeaderMap) -> Result<(), ApiError> {
        let loopback = peer.is_loopback() || peer.to_canonical().is_loopback();
        let keys: Vec<&[u8; 32]> = match access {
            Access::Open | Access::Api if self.api.is_empty() && self.admin.is_empty() => {
                return if loopback { Ok(()) } else { Err(loopback_only()) };
            }
            Access::Open => return Ok(()),
            Access::Api => self.api.iter().chain(&self.admin).collect(),
            Access::Admin if self.admin.is_empty() => {
                return if loopback {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "permission_error",
                        "admin_loopback_only",
                        "no admin keys are configured, so admin endpoints serve loopback clients only; \
                         set [server] admin_keys or AIPLUG_ADMIN_KEYS",
                    ))
                };
            }
            Access::Admin => self.admin.iter().collect(),
        };
        let Some(presented) = bearer(headers) else {
            return Err(unauthorized(
                "missing API key: send it as `Authorization: Bearer KEY`",
            ));
        };
        let presented = digest(presented);
        // Compare against every key without stopping early.
        let matched = keys.iter().fold(false, |found, key| found | (**key == presented));
        if matched {
            Ok(())
        } else if access == Access::Admin {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "admin_key_required",
                "this endpoint needs an admin key ([server] admin_keys or AIPLUG_ADMIN_KEYS)",
            ))
        } else {
            Err(unauthorized("invalid API key"))
        }
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid_api_key",
        message,
    )
}

fn loopback_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_error",
        "loopback_only",
        "this server has no API keys configured and serves loopback clients only; \
         set [server] api_keys or AIPLUG_API_KEYS to accept other clients",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));

    #[test]
    fn without_keys_only_loopback_is_served() {
        let auth = Auth::default();
        assert!(auth.check(Access::Api, LOCAL, &HeaderMap::new()).is_ok());
        let err = auth.check(Access::Api, REMOTE, &HeaderMap::new()).unwrap_err();
        assert_eq!(err.code, "loopback_only");
        assert!(auth.check(Access::Admin, REMOTE, &HeaderMap::new()).is_err());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(auth.check(Access::Api, mapped, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn keys_are_required_and_admin_is_separate() {
        let auth = Auth::new(&["k1".into()], &["adm".into()]);
        assert_eq!(
            auth.check(Access::Api, LOCAL, &HeaderMap::new())
                .unwrap_err()
                .status,
            401
        );
        assert!(auth.check(Access::Api, REMOTE, &headers("Bearer k1")).is_ok());
        assert!(auth.check(Access::Api, REMOTE, &headers("bearer adm")).is_ok());
        assert_eq!(
            auth.check(Access::Api, REMOTE, &headers("Bearer nope"))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            auth.check(Access::Admin, REMOTE, &headers("Bearer k1"))
                .unwrap_err()
                .status,
            403
        );
        assert!(auth.check(Access::Admin, REMOTE, &headers("Bearer adm")).is_ok());
        assert!(auth.check(Access::Open, REMOTE, &HeaderMap::new()).is_ok());
    }
}
