//! What an answer other than 200 means: error bodies, HTTP statuses and
//! `Retry-After`.
//!
//! DeepSeek's error codes (api-docs.deepseek.com, "Error Codes"): 400
//! invalid format, 401 authentication fails, 402 insufficient balance, 422
//! invalid parameters, 429 rate limit reached, 500 server error, 503 server
//! overloaded. The body is OpenAI's `{"error": {"message", "type", "param",
//! "code"}}`.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::sse::quote;
use crate::models::ModelError;

use super::API_KEY_ENV as DEEPSEEK_KEY_ENV;

/// A failed attempt: the error, and whether (and when) trying again may help.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: ModelError,
    pub retryable: bool,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn fatal(error: ModelError) -> Failure {
        Failure {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    pub fn retry(error: ModelError) -> Failure {
        Failure {
            error,
            retryable: true,
            retry_after: None,
        }
    }
}

/// Who is asking, for the messages.
pub(crate) struct Endpoint<'a> {
    /// The host's name for the model.
    pub model: &'a str,
    /// The provider's id of the model.
    pub upstream: &'a str,
    /// `deepseek`, `openai`, ...
    pub provider: &'a str,
    /// The URL that answered.
    pub url: &'a str,
    /// Whether a key was sent.
    pub has_key: bool,
}

/// Maps an HTTP status other than 2xx, with its body and `Retry-After`, to
/// the error a caller can match on.
pub(crate) fn status_failure(
    endpoint: &Endpoint<'_>,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Failure {
    let said = error_message(body);
    let from = format!("HTTP {status} from {}", endpoint.url);
    let deepseek = endpoint.provider == "deepseek";
    match status {
        400 | 413 | 422 => {
            if let Some(overflow) = context_overflow(endpoint, &said) {
                return Failure::fatal(overflow);
            }
            Failure::fatal(ModelError::BadRequest(format!("{said} ({from})")))
        }
        401 | 403 => {
            let what = match (deepseek, endpoint.has_key) {
                (true, true) => {
                    format!("{DEEPSEEK_KEY_ENV} is wrong or missing: the DeepSeek API refused the key")
                }
                (true, false) => format!("{DEEPSEEK_KEY_ENV} is wrong or missing: no API key is configured"),
                (false, true) => format!(
                    "the API key of model {:?} is wrong or missing: the server refused it",
                    endpoint.model
                ),
                (false, false) => format!(
                    "the API key of model {:?} is wrong or missing: no API key is configured",
                    endpoint.model
                ),
            };
            let fix = if deepseek {
                format!(
                    "create a key at https://platform.deepseek.com/api_keys and export {DEEPSEEK_KEY_ENV}"
                )
            } else {
                "set the key in the model's configuration".to_string()
            };
            Failure::fatal(ModelError::Auth(format!("{what} ({from}: {said}); {fix}")))
        }
        402 => {
            let fix = if deepseek {
                "; top up at https://platform.deepseek.com/top_up"
            } else {
                ""
            };
            Failure::fatal(ModelError::InsufficientBalance(format!("{said} ({from}){fix}")))
        }
        404 => Failure::fatal(ModelError::Provider {
            model: endpoint.model.to_string(),
            message: format!(
                "{said} ({from}): check base_url (the chat endpoint is base_url + /chat/completions, e.g. \
                 https://api.deepseek.com or http://127.0.0.1:8080/v1) and the model id {:?} \
                 (GET base_url/models lists the server's models)",
                endpoint.upstream
            ),
        }),
        429 => Failure {
            error: ModelError::RateLimited {
                message: format!("{said} ({from})"),
                retry_after,
            },
            retryable: true,
            retry_after,
        },
        500 | 502 | 503 | 504 => Failure {
            error: ModelError::Unavailable {
                status,
                message: format!("{said} (from {})", endpoint.url),
            },
            retryable: true,
            retry_after,
        },
        500..=599 => Failure::fatal(ModelError::Unavailable {
            status,
            message: format!("{said} (from {})", endpoint.url),
        }),
        _ => Failure::fatal(ModelError::Provider {
            model: endpoint.model.to_string(),
            message: format!("unexpected answer: {said} ({from})"),
        }),
    }
}

/// The message of an error body: OpenAI's `{"error": {"message": ...}}`,
/// `{"error": "..."}`, vLLM's `{"message": ...}`, FastAPI's `{"detail": ...}`,
/// or the body itself, quoted.
pub(crate) fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        for key in ["error", "message", "detail"] {
            if let Some(inner) = value.get(key) {
                return describe_error_value(inner);
            }
        }
    }
    quote(text)
}

/// The text of an `error` value: its `message` with its `type` (or `code`),
/// a plain string, or the JSON itself.
pub(crate) fn describe_error_value(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            let message = map.get("message").and_then(Value::as_str);
            let kind = ["type", "code"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str));
            match (message, kind) {
                (Some(m), Some(k)) => format!("{m} ({k})"),
                (Some(m), None) => m.to_string(),
                _ => quote(&error.to_string()),
            }
        }
        other => quote(&other.to_string()),
    }
}

/// DeepSeek says "This model's maximum context length is 131072 tokens.
/// However, you requested 140000 tokens (139000 in the messages, 1000 in the
/// completion)": that is [`ModelError::ContextOverflow`].
fn context_overflow(endpoint: &Endpoint<'_>, message: &str) -> Option<ModelError> {
    let context = number_after(message, "maximum context length is")?;
    let prompt = message
        .find(" in the messages")
        .and_then(|end| message[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .or_else(|| number_after(message, "you requested"))
        .or_else(|| number_after(message, "resulted in"))?;
    Some(ModelError::ContextOverflow {
        model: endpoint.model.to_string(),
        prompt_tokens: prompt,
        context,
    })
}

fn number_after(text: &str, marker: &str) -> Option<u32> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// `Retry-After` (seconds, or an HTTP date) or OpenAI's `retry-after-ms`.
pub(crate) fn retry_after(headers: &ureq::http::HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()) {
        if let Ok(ms) = ms.trim().parse::<f64>() {
            if ms.is_finite() && ms >= 0.0 {
                return Some(Duration::from_secs_f64((ms / 1000.0).min(1e6)));
            }
        }
    }
    parse_retry_after(headers.get("retry-after")?.to_str().ok()?, now)
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (a date in
/// the past means now).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Some(Duration::from_secs_f64(seconds.min(1e6)));
        }
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(provider: &str) -> Endpoint<'_> {
        Endpoint {
            model: "chat",
            upstream: "deepseek-chat",
            provider,
            url: "http://h/chat/completions",
            has_key: true,
        }
    }

    #[test]
    fn error_bodies_of_every_shape_give_their_message() {
        let openai = br#"{"error":{"message":"Authentication Fails, Your api key: ****abcd is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#;
        assert_eq!(
            error_message(openai),
            "Authentication Fails, Your api key: ****abcd is invalid (authentication_error)"
        );
        assert_eq!(error_message(br#"{"error":"bad model"}"#), "bad model");
        assert_eq!(
            error_message(br#"{"object":"error","message":"no such model","type":"NotFoundError"}"#),
            "no such model"
        );
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message(b"<html>502 Bad Gateway</html>"),
            "\"<html>502 Bad Gateway</html>\""
        );
        assert_eq!(error_message(b"  "), "(empty body)");
    }

    #[test]
    fn statuses_map_to_their_class() {
        let e = endpoint("deepseek");
        let f = status_failure(&e, 401, br#"{"error":{"message":"bad key"}}"#, None);
        assert!(!f.retryable);
        match f.error {
            ModelError::Auth(m) => {
                assert!(m.starts_with("DEEPSEEK_API_KEY is wrong or missing"), "{m}");
                assert!(m.contains("bad key") && m.contains("HTTP 401"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match status_failure(&endpoint("openai"), 401, b"", None).error {
            ModelError::Auth(m) => assert!(
                m.contains("API key of model \"chat\"") && !m.contains("DEEPSEEK"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            status_failure(&e, 402, b"", None).error,
            ModelError::InsufficientBalance(_)
        ));
        assert!(matches!(
            status_failure(&e, 422, b"", None).error,
            ModelError::BadRequest(_)
        ));
        let limited = status_failure(&e, 429, b"", Some(Duration::from_secs(2)));
        assert!(limited.retryable);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(2)));
        assert!(matches!(
            limited.error,
            ModelError::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
        for status in [500, 502, 503, 504] {
            let f = status_failure(&e, status, b"", None);
            assert!(
                f.retryable && matches!(f.error, ModelError::Unavailable { status: s, .. } if s == status)
            );
        }
        let f = status_failure(&e, 501, b"", None);
        assert!(!f.retryable && matches!(f.error, ModelError::Unavailable { status: 501, .. }));
        assert!(matches!(
            status_failure(&e, 404, b"", None).error,
            ModelError::Provider { .. }
        ));
    }

    #[test]
    fn a_context_length_400_is_a_context_overflow() {
        let body = br#"{"error":{"message":"This model's maximum context length is 131072 tokens. However, you requested 140000 tokens (139000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}"#;
        assert_eq!(
            status_failure(&endpoint("deepseek"), 400, body, None).error,
            ModelError::ContextOverflow {
                model: "chat".into(),
                prompt_tokens: 139000,
                context: 131072
            }
        );
        let vllm = br#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError"}"#;
        assert!(matches!(
            status_failure(&endpoint("openai"), 400, vllm, None).error,
            ModelError::ContextOverflow {
                prompt_tokens: 5000,
                context: 4096,
                ..
            }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 ", now), Some(Duration::from_millis(500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
