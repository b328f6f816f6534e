//! The `[server]` table of `aiplug.toml`: where to listen, who may call,
//! and the bounds every request runs within.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Environment variable with comma-separated API keys (added to the
/// config's `api_keys`).
pub const API_KEYS_ENV: &str = "AIPLUG_API_KEYS";
/// Environment variable with comma-separated admin keys.
pub const ADMIN_KEYS_ENV: &str = "AIPLUG_ADMIN_KEYS";

/// Server settings. Every field has a default, so an empty `[server]`
/// table (or none) gives a loopback-only server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`: loopback only).
    pub listen: SocketAddr,
    /// Keys accepted as `Authorization: Bearer KEY` on the API. With none
    /// (here or in `AIPLUG_API_KEYS`) only loopback clients are served.
    pub api_keys: Vec<String>,
    /// Keys for `/admin/*` (they work on the API too). With none, admin
    /// endpoints serve loopback clients only.
    pub admin_keys: Vec<String>,
    /// Largest request body in bytes (default 8 MiB).
    pub max_body_bytes: usize,
    /// Deadline of one request, model call included, in seconds (default
    /// 600). A streamed answer must finish within it too.
    pub request_timeout_secs: u64,
    /// Requests served at once; more get `429` with `Retry-After`
    /// (default 512).
    pub max_concurrent_requests: usize,
    /// On SIGTERM or Ctrl-C, how long in-flight requests and streams may
    /// run on before they are cut, in seconds (default 30).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_keys: Vec::new(),
            admin_keys: Vec::new(),
            max_body_bytes: 8 << 20,
            request_timeout_secs: 600,
            max_concurrent_requests: 512,
            shutdown_grace_secs: 30,
        }
    }
}

impl ServerConfig {
    /// Adds the keys from `AIPLUG_API_KEYS` and `AIPLUG_ADMIN_KEYS`, read
    /// through `env` (the process environment in production).
    pub fn with_env_keys(mut self, env: &dyn Fn(&str) -> Option<String>) -> ServerConfig {
        let split = |value: Option<String>| -> Vec<String> {
            value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        };
        self.api_keys.extend(split(env(API_KEYS_ENV)));
        self.admin_keys.extend(split(env(ADMIN_KEYS_ENV)));
        self
    }

    /// The request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_bounded() {
        let config: ServerConfig = toml_like("");
        assert!(config.listen.ip().is_loopback());
        assert!(config.api_keys.is_empty());
        assert_eq!(config.max_body_bytes, 8 << 20);
    }

    #[test]
    fn env_keys_are_added_and_trimmed() {
        let env = |name: &str| match name {
            API_KEYS_ENV => Some(" k1, k2 ,,".to_string()),
            ADMIN_KEYS_ENV => Some("a1".to_string()),
            _ => None,
        };
        let config = ServerConfig {
            api_keys: vec!["k0".into()],
            ..ServerConfig::default()
        }
        .with_env_keys(&env);
        assert_eq!(config.api_keys, ["k0", "k1", "k2"]);
        assert_eq!(config.admin_keys, ["a1"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<ServerConfig>(r#"{"lisen": "127.0.0.1:1"}"#).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    fn toml_like(json: &str) -> ServerConfig {
        if json.is_empty() {
            return serde_json::from_str("{}").unwrap();
        }
        serde_json::from_str(json).unwrap()
    }
}
