//! Errors as OpenAI clients expect them: an HTTP status and
//! `{"error": {"message", "type", "code"}}`, with `Retry-After` on `429`.

use std::time::Duration;

use aiplug_host::models::ModelError;
use aiplug_host::CallError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error response. `kind` is OpenAI's `type` (`invalid_request_error`,
/// `authentication_error`, `rate_limit_error`, `server_error`, ...), `code`
/// a stable machine-readable reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and, where it helps, how to fix it.
    pub message: String,
    /// OpenAI's error `type`.
    pub kind: &'static str,
    /// A stable reason, e.g. `model_not_found`, `plugin_rejected`.
    pub code: &'static str,
    /// For `429` and `503`: when to try again.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with no `Retry-After`.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            code,
            retry_after: None,
        }
    }

    /// `400`: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    /// `404`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", code, message)
    }

    /// `500`: our fault, or a plugin's.
    pub fn internal(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", code, message)
    }

    /// `429` with `Retry-After`.
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: Duration) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", code, message)
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, at least 1 (RFC 9110 delay-seconds).
            let secs = after.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
        }
        response
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> ApiError {
        let message = error.to_string();
        match error {
            CallError::NotFound { .. } => ApiError::not_found("plugin_not_found", message),
            CallError::Unsupported { .. } => ApiError::bad_request("hook_not_supported", message),
            CallError::Rejected { .. } => ApiError::bad_request("plugin_rejected", message),
            CallError::Failed { .. } => ApiError::internal("plugin_failed", message),
            CallError::Panicked { .. } => ApiError::internal("plugin_panicked", message),
            CallError::BadOutput { .. } => ApiError::internal("plugin_bad_output", message),
            CallError::Cancelled { .. } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "plugin_timeout",
                message,
            ),
            CallError::Overloaded { retry_after, .. } => {
                ApiError::too_many("plugin_busy", message, retry_after)
            }
            CallError::LimitExceeded {
                limit: aiplug_host::Limit::Deadline { .. },
                ..
            } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "plugin_timeout",
                message,
            ),
            CallError::LimitExceeded { .. } => ApiError::internal("plugin_limit", message),
            CallError::Trapped { .. } => ApiError::internal("plugin_trapped", message),
            CallError::Model(model) => model.into(),
            _ => ApiError::internal("internal_error", message),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> ApiError {
        let message = error.to_string();
        match error {
            ModelError::UnknownModel { .. } | ModelError::NoModel => {
                ApiError::not_found("model_not_found", message)
            }
            ModelError::NotAllowed { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                message,
            ),
            ModelError::TooDeep { .. } => ApiError::internal("nesting_too_deep", message),
            ModelError::BadRequest(_) => ApiError::bad_request("invalid_request", message),
            ModelError::ContextOverflow { .. } => ApiError::bad_request("context_length_exceeded", message),
            // The upstream refused our key: the gateway is misconfigured,
            // not the client.
            ModelError::Auth(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_auth_failed",
                message,
            ),
            ModelError::InsufficientBalance(_) => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                "insufficient_quota",
                message,
            ),
            ModelError::RateLimited { retry_after, .. } => ApiError::too_many(
                "upstream_rate_limited",
                message,
                retry_after.unwrap_or(Duration::from_secs(1)),
            ),
            ModelError::Unavailable { .. } | ModelError::Connection { .. } | ModelError::Protocol(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "server_error", "upstream_error", message)
            }
            ModelError::ModelFile { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "model_unavailable",
                message,
            ),
            ModelError::Cancelled => ApiError::new(
                // nginx's "client closed request": nobody reads it, logs do.
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "cancelled",
                message,
            ),
            ModelError::DeadlineExceeded => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "deadline_exceeded",
                message,
            ),
            _ => ApiError::internal("model_failed", message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_carry_retry_after() {
        let error: ApiError = ModelError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
        .into();
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "7");
    }

    #[test]
    fn a_busy_plugin_is_a_429_with_its_retry_after() {
        let error: ApiError = CallError::Overloaded {
            plugin: "guard".into(),
            limit: "max_concurrency",
            retry_after: Duration::from_millis(2500),
        }
        .into();
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "2");
    }

    #[test]
    fn rejections_name_the_plugin() {
        let error: ApiError = CallError::Rejected {
            plugin: "prompt-guard".into(),
            reason: "denied pattern".into(),
        }
        .into();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let body = error.body();
        assert_eq!(body["error"]["code"], "plugin_rejected");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("prompt-guard") && message.contains("denied pattern"),
            "{message}"
        );
    }
}
