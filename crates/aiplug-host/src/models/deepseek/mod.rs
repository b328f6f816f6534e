//! The `deepseek` provider: the DeepSeek API, or any OpenAI-compatible
//! chat-completions server (vLLM, llama-server, Ollama) through `base_url`.
//!
//! ```no_run
//! use aiplug_host::models::deepseek::{DeepSeekProvider, DeepSeekSettings};
//! use aiplug_host::models::{ChatModel, ChatRequest, ModelCall};
//! use aiplug_host::CancellationToken;
//!
//! let model = DeepSeekProvider::new(DeepSeekSettings {
//!     api_key: std::env::var("DEEPSEEK_API_KEY").ok(),
//!     ..DeepSeekSettings::default()
//! })?;
//! let cancel = CancellationToken::new();
//! let call = ModelCall { cancel: &cancel, deadline: None };
//! let mut print = |chunk: &aiplug_host::models::ChatChunk| {
//!     for choice in &chunk.choices {
//!         print!("{}", choice.delta.content.as_deref().unwrap_or(""));
//!     }
//! };
//! let response = model.chat(&ChatRequest::user("Say hello"), call, Some(&mut print))?;
//! println!("\n{:?}", response.usage);
//! # Ok::<(), aiplug_host::models::ModelError>(())
//! ```
//!
//! # Protocol
//! `POST {base_url}/chat/completions` with `Authorization: Bearer <key>`;
//! the body is the caller's [`ChatRequest`] with `model` replaced by the
//! upstream id and `stream` set by whether a sink was given (a stream also
//! asks for the final usage chunk with `stream_options.include_usage`
//! unless the caller set `stream_options`). Every other field, known or
//! not, goes out as the caller wrote it.
//!
//! # Errors and retries
//! 400/413/422 are [`ModelError::BadRequest`] (or
//! [`ModelError::ContextOverflow`] when the server says the prompt is too
//! long), 401/403 [`ModelError::Auth`], 402
//! [`ModelError::InsufficientBalance`]: none is retried. 429, 500, 502, 503,
//! 504 and connection failures are retried up to
//! [`DeepSeekSettings::max_retries`] times with exponential backoff and
//! jitter, waiting what `Retry-After` says when the server sends it, but
//! never past the call's deadline: when the next wait would cross it, the
//! call fails at once with the last cause ([`ModelError::RateLimited`],
//! [`ModelError::Unavailable`], [`ModelError::Connection`]). A stream that
//! breaks after its first chunk reached the sink is not retried (the caller
//! has seen output); it is a [`ModelError::Connection`].
//!
//! # Cancellation and deadlines
//! The deadline (the call's, or now + [`DeepSeekSettings::default_timeout`])
//! bounds the whole exchange, including every read of the body: a server
//! that stalls past it yields [`ModelError::DeadlineExceeded`] promptly.
//! Cancellation is checked before each attempt, during backoff waits,
//! between the lines of a stream, and every 20 ms while a read waits on the
//! server (see `cancel.rs`): a cancelled call returns
//! [`ModelError::Cancelled`] within that, and its connection is closed, not
//! pooled, so the server sees the client go and stops generating.

mod cancel;
mod errors;
mod sse;

use std::fmt;
use std::io::{BufReader, Read};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, DefaultConnector, NextTimeout};

use self::errors::{Endpoint, Failure};
use crate::models::slots::Slots;
use crate::models::wire::Message;
use crate::models::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChunkSink, ModelCall, ModelError, ModelInfo,
};

/// The environment variable the DeepSeek key conventionally comes from; a
/// `deepseek` provider's 401 error names it.
pub const API_KEY_ENV: &str = "DEEPSEEK_API_KEY";

/// DeepSeek's API.
pub const DEFAULT_BASE_URL: &str = "https://api.deepseek.com";

/// The largest non-streamed response body read (64 MiB).
const MAX_BODY: u64 = 64 << 20;
/// The longest single backoff wait without `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a backoff wait looks at the cancellation token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// How to reach one model of an OpenAI-compatible API.
#[derive(Clone)]
pub struct DeepSeekSettings {
    /// The model's name in the host's model table (what plugins ask for).
    /// Defaults to `deepseek-chat`.
    pub name: String,
    /// The id sent to the API. DeepSeek renames models (`deepseek-chat` and
    /// `deepseek-reasoner` were aliases of V3.x; newer ones are
    /// `deepseek-v4-flash`, `deepseek-v4-pro`), so it comes from
    /// configuration, never from code. Defaults to `deepseek-chat`.
    pub upstream_model: String,
    /// The API root; the provider appends `/chat/completions` and `/models`.
    /// Defaults to [`DEFAULT_BASE_URL`]; for other servers e.g.
    /// `http://127.0.0.1:8080/v1`. A trailing `/` is ignored.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; `None` sends no header (local
    /// servers). Never logged: `Debug` shows `<redacted>`. Conventionally
    /// read from [`API_KEY_ENV`] by the caller. Defaults to `None`.
    pub api_key: Option<String>,
    /// `deepseek` or `openai`, for [`ModelInfo::provider`] and for error
    /// messages (a `deepseek` 401 names `DEEPSEEK_API_KEY`). Defaults to
    /// `deepseek`.
    pub provider_label: String,
    /// The model's context length in tokens, for [`ModelInfo`]. Defaults to
    /// `None` (unknown).
    pub context_length: Option<u32>,
    /// How many times a retryable failure (429, 500, 502, 503, 504, a
    /// connection error) is retried. Defaults to 4.
    pub max_retries: u32,
    /// The first backoff wait; each retry doubles it (up to 30 s), with
    /// jitter between half and all of it. A `Retry-After` replaces it.
    /// Defaults to 500 ms.
    pub retry_backoff: Duration,
    /// The deadline of a call that has none. Defaults to 300 s.
    pub default_timeout: Duration,
    /// How long to wait for a TCP (and TLS) connection. Defaults to 10 s.
    pub connect_timeout: Duration,
    /// Calls of this model in flight at once, over every plugin and
    /// request; more wait for a place until their deadline or cancel. One
    /// busy plugin cannot then spend the whole account's rate limit or open
    /// a connection per caller. Defaults to 64.
    pub max_concurrency: usize,
}

impl Default for DeepSeekSettings {
    fn default() -> DeepSeekSettings {
        DeepSeekSettings {
            name: "deepseek-chat".to_string(),
            upstream_model: "deepseek-chat".to_string(),
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: None,
            provider_label: "deepseek".to_string(),
            context_length: None,
            max_retries: 4,
            retry_backoff: Duration::from_millis(500),
            default_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 64,
        }
    }
}

impl fmt::Debug for DeepSeekSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepSeekSettings")
            .field("name", &self.name)
            .field("upstream_model", &self.upstream_model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("provider_label", &self.provider_label)
            .field("context_length", &self.context_length)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("default_timeout", &self.default_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

/// A [`ChatModel`] served by the DeepSeek API or an OpenAI-compatible
/// server. Blocking: call it from a thread that may block. Cheap to share
/// (`Arc`); connections are pooled and reused across calls.
pub struct DeepSeekProvider {
    settings: DeepSeekSettings,
    /// `base_url` without its trailing `/`.
    base: String,
    chat_url: String,
    models_url: String,
    authorization: Option<String>,
    agent: ureq::Agent,
    /// Places for calls in flight ([`DeepSeekSettings::max_concurrency`]).
    slots: Slots,
}

impl fmt::Debug for DeepSeekProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepSeekProvider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl DeepSeekProvider {
    /// A provider for one model. Sends nothing yet. Fails with
    /// [`ModelError::Provider`] when `base_url` is not an `http(s)://` URL or
    /// `upstream_model` is empty.
    pub fn new(settings: DeepSeekSettings) -> Result<DeepSeekProvider, ModelError> {
        let invalid = |message: String| ModelError::Provider {
            model: settings.name.clone(),
            message,
        };
        let base = settings.base_url.trim().trim_end_matches('/').to_string();
        let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
        if !scheme_ok || base.parse::<ureq::http::Uri>().is_err() {
            return Err(invalid(format!(
                "base_url {:?} is not an http(s) URL (e.g. {DEFAULT_BASE_URL} or http://127.0.0.1:8080/v1)",
                settings.base_url
            )));
        }
        if settings.max_concurrency == 0 {
            return Err(invalid(
                "max_concurrency is 0: no call could ever run; set at least 1".into(),
            ));
        }
        if settings.upstream_model.trim().is_empty() {
            return Err(invalid(
                "upstream_model is empty: set the id the API knows the model by".into(),
            ));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(settings.connect_timeout))
            // ureq keeps 3 idle connections per host by default: behind a
            // gateway serving 8 requests at once, every fourth call then
            // opened a new connection (bench/gateway: ~15% more CPU per
            // request, RSS up by a third at 64 at once).
            .max_idle_connections(256)
            .max_idle_connections_per_host(64)
            .user_agent(format!("aiplug/{}", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::default().chain(cancel::CancelConnector),
            LiteralFirst::default(),
        );
        Ok(DeepSeekProvider {
            chat_url: format!("{base}/chat/completions"),
            models_url: format!("{base}/models"),
            authorization: settings
                .api_key
                .as_ref()
                .map(|key| format!("Bearer {}", key.trim())),
            base,
            slots: Slots::new(settings.max_concurrency),
            settings,
            agent,
        })
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &DeepSeekSettings {
        &self.settings
    }

    /// The ids of the models the server offers (`GET {base_url}/models`),
    /// in its order. Errors and retries as for [`ChatModel::chat`].
    pub fn list_models(&self, call: ModelCall<'_>) -> Result<Vec<String>, ModelError> {
        #[derive(Deserialize)]
        struct List {
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            id: String,
        }
        let deadline = self.deadline(&call);
        let url = self.models_url.as_str();
        self.with_retries(&call, deadline, || {
            let mut request = self
                .agent
                .get(url)
                .config()
                .timeout_global(Some(left(deadline)))
                .build();
            request = request.header("Accept", "application/json");
            if let Some(auth) = &self.authorization {
                request = request.header("Authorization", auth);
            }
            let response = request
                .call()
                .map_err(|e| self.transport_failure(e, url, deadline, 0))?;
            let body = self.read_body(response, url, &call, deadline)?;
            let list: List = serde_json::from_slice(&body).map_err(|e| {
                Failure::fatal(ModelError::Protocol(format!(
                    "GET {url} did not answer a model list ({e}): {}",
                    sse::quote(&String::from_utf8_lossy(&body))
                )))
            })?;
            Ok(list.data.into_iter().map(|m| m.id).collect())
        })
    }

    /// The request body: the caller's request with the upstream model id,
    /// the stream flags, and `reasoning_content` kept only where the API
    /// wants it back.
    fn request_body(&self, request: &ChatRequest, streaming: bool) -> Result<Vec<u8>, ModelError> {
        let mut wire = request.clone();
        wire.model.clone_from(&self.settings.upstream_model);
        wire.stream = Some(streaming);
        if streaming {
            if wire.stream_options.is_none() {
                wire.stream_options = Some(serde_json::json!({"include_usage": true}));
            }
        } else {
            // OpenAI refuses `stream_options` without `stream: true`.
            wire.stream_options = None;
        }
        drop_unneeded_reasoning(&mut wire.messages);
        // DeepSeek's JSON output is `json_object` only; a schema (which
        // OpenAI-compatible servers and the local provider honour) becomes
        // plain JSON mode there, and the prompt carries the shape.
        let schema = wire
            .response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(|t| t.as_str())
            == Some("json_schema");
        if schema && self.settings.provider_label == "deepseek" {
            wire.response_format = Some(serde_json::json!({"type": "json_object"}));
        }
        serde_json::to_vec(&wire)
            .map_err(|e| ModelError::BadRequest(format!("cannot serialise the request: {e}")))
    }

    /// The call's deadline, or now + `default_timeout`.
    fn deadline(&self, call: &ModelCall<'_>) -> Instant {
        call.deadline
            .unwrap_or_else(|| Instant::now() + self.settings.default_timeout)
    }

    fn endpoint<'a>(&'a self, url: &'a str) -> Endpoint<'a> {
        Endpoint {
            model: &self.settings.name,
            upstream: &self.settings.upstream_model,
            provider: &self.settings.provider_label,
            url,
            has_key: self.authorization.is_some(),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, retries run out, or
    /// the next wait would cross the deadline.
    fn with_retries<T>(
        &self,
        call: &ModelCall<'_>,
        deadline: Instant,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, ModelError> {
        // A read blocked on the server gives up when the call is cancelled.
        let _watch = cancel::watch(call.cancel);
        let mut tries = 0u32;
        loop {
            stopped(call, deadline)?;
            tries += 1;
            let failure = match attempt() {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if call.cancel.is_cancelled() {
                // Whatever broke, it broke because the call was cancelled.
                return Err(ModelError::Cancelled);
            }
            if !failure.retryable || tries > self.settings.max_retries {
                return Err(after_tries(failure.error, tries));
            }
            let wait = failure
                .retry_after
                .unwrap_or_else(|| backoff(self.settings.retry_backoff, tries - 1));
            if Instant::now() + wait >= deadline {
                tracing::debug!(model = %self.settings.name, ?wait, "the next retry would pass the deadline");
                return Err(after_tries(failure.error, tries));
            }
            tracing::debug!(model = %self.settings.name, tries, ?wait, error = %failure.error, "retrying");
            sleep_unless_cancelled(call, wait)?;
        }
    }

    /// One exchange with the chat endpoint.
    fn attempt_chat(
        &self,
        body: &[u8],
        call: &ModelCall<'_>,
        deadline: Instant,
        sink: Option<&mut dyn FnMut(&ChatChunk)>,
        delivered: &mut usize,
    ) -> Result<ChatResponse, Failure> {
        let url = self.chat_url.as_str();
        let mut request = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(left(deadline)))
            .build();
        request = request.header("Content-Type", "application/json").header(
            "Accept",
            if sink.is_some() {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let response = request
            .send(body)
            .map_err(|e| self.transport_failure(e, url, deadline, 0))?;
        let Some(sink) = sink else {
            let body = self.read_body(response, url, call, deadline)?;
            return parse_response(&body, &self.settings.name, url);
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.status_failure(response, url));
        }
        let reader = BufReader::with_capacity(16 << 10, response.into_body().into_reader());
        let mut stop = || stopped(call, deadline);
        sse::read_stream(reader, sink, delivered, &mut stop).map_err(|e| match e {
            sse::StreamError::Io(e) => {
                self.transport_failure(ureq::Error::from(e), url, deadline, *delivered)
            }
            sse::StreamError::Protocol(message) => {
                Failure::fatal(ModelError::Protocol(format!("{message} (stream from {url})")))
            }
            sse::StreamError::Api(message) => Failure::fatal(ModelError::Provider {
                model: self.settings.name.clone(),
                message: format!("the stream from {url} reported an error: {message}"),
            }),
            sse::StreamError::Stopped(error) => Failure::fatal(error),
        })
    }

    /// A 2xx body read whole (checking for cancellation between reads), or
    /// the failure a non-2xx status means.
    fn read_body(
        &self,
        response: ureq::http::Response<ureq::Body>,
        url: &str,
        call: &ModelCall<'_>,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.status_failure(response, url));
        }
        let mut reader = response.into_body().into_with_config().limit(MAX_BODY).reader();
        let mut body = Vec::new();
        let mut buffer = [0u8; 16 << 10];
        loop {
            stopped(call, deadline).map_err(Failure::fatal)?;
            match reader.read(&mut buffer) {
                Ok(0) => return Ok(body),
                Ok(n) => body.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.transport_failure(ureq::Error::from(e), url, deadline, 0)),
            }
        }
    }

    fn status_failure(&self, response: ureq::http::Response<ureq::Body>, url: &str) -> Failure {
        let status = response.status().as_u16();
        let retry_after = errors::retry_after(response.headers(), SystemTime::now());
        // The error body is small; a broken one still leaves the status.
        let body = response
            .into_body()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .unwrap_or_default();
        errors::status_failure(&self.endpoint(url), status, &body, retry_after)
    }

    /// A failure of the transport: a timeout at the deadline is
    /// [`ModelError::DeadlineExceeded`]; connection trouble is a retryable
    /// [`ModelError::Connection`] until a chunk reached the sink.
    fn transport_failure(
        &self,
        error: ureq::Error,
        url: &str,
        deadline: Instant,
        delivered: usize,
    ) -> Failure {
        use ureq::Timeout;
        let connection = |message: String| ModelError::Connection {
            url: url.to_string(),
            message,
        };
        let broke = |message: String| {
            if delivered > 0 {
                Failure::fatal(connection(format!(
                    "the connection broke after {delivered} streamed chunk(s): {message}"
                )))
            } else {
                Failure::retry(connection(message))
            }
        };
        match error {
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) if Instant::now() < deadline => broke(
                format!("no connection within {:?}", self.settings.connect_timeout),
            ),
            ureq::Error::Timeout(_) => Failure::fatal(ModelError::DeadlineExceeded),
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut && Instant::now() >= deadline => {
                Failure::fatal(ModelError::DeadlineExceeded)
            }
            ureq::Error::Io(e) => broke(e.to_string()),
            ureq::Error::HostNotFound => broke("the host name does not resolve".into()),
            ureq::Error::ConnectionFailed => broke("the connection failed".into()),
            ureq::Error::Protocol(e) if delivered == 0 => Failure::fatal(ModelError::Protocol(format!(
                "{url} does not speak HTTP/1.1 as expected: {e}"
            ))),
            ureq::Error::Protocol(e) => broke(e.to_string()),
            ureq::Error::BodyExceedsLimit(limit) => Failure::fatal(ModelError::Protocol(format!(
                "the response from {url} is larger than {} MiB",
                limit >> 20
            ))),
            ureq::Error::Decompress(kind, e) => Failure::fatal(ModelError::Protocol(format!(
                "the {kind} body from {url} does not decompress: {e}"
            ))),
            other => Failure::fatal(connection(other.to_string())),
        }
    }
}

/// Resolves IP-literal hosts (`127.0.0.1`, `[::1]`) without a lookup and
/// hands host names to ureq's own resolver.
///
/// ureq resolves the host before every request, pooled connection or not,
/// and with a timeout set (every call has a deadline) its resolver runs the
/// lookup on a new thread: some 50 µs per request even for `127.0.0.1`, half
/// the provider's budget. Local servers are usually addressed by IP, so they
/// skip it; for names the lookup is network time anyway. (ureq's resolver
/// API is outside its semver promise: a ureq minor release may need this
/// adjusted.)
#[derive(Debug, Default)]
struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|authority| {
            let host = authority.host().trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host.parse().ok()?;
            let port = authority.port_u16().or(match uri.scheme_str() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            })?;
            Some(std::net::SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

impl ChatModel for DeepSeekProvider {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.settings.name.clone(),
            provider: self.settings.provider_label.clone(),
            upstream: self.settings.upstream_model.clone(),
            context_length: self.settings.context_length,
            loaded: true,
            notes: vec![format!("API at {}", self.base)],
            ..ModelInfo::default()
        }
    }

    fn chat(
        &self,
        request: &ChatRequest,
        call: ModelCall<'_>,
        mut stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        let body = self.request_body(request, stream.is_some())?;
        let deadline = self.deadline(&call);
        let _place = self.slots.acquire(ModelCall {
            cancel: call.cancel,
            deadline: Some(deadline),
        })?;
        let mut delivered = 0usize;
        self.with_retries(&call, deadline, || {
            let sink = stream.as_mut().map(|s| &mut **s as &mut dyn FnMut(&ChatChunk));
            self.attempt_chat(&body, &call, deadline, sink, &mut delivered)
        })
    }
}

/// Parses a non-streamed response. `{"error": ...}` with status 200 (some
/// servers) is [`ModelError::Provider`]; anything not a completion is
/// [`ModelError::Protocol`].
fn parse_response(body: &[u8], model: &str, url: &str) -> Result<ChatResponse, Failure> {
    // DeepSeek sends blank lines while a non-streamed request waits in its
    // queue; they are JSON whitespace, so the parser skips them.
    let response: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        Failure::fatal(ModelError::Protocol(format!(
            "the response from {url} is not a chat completion ({e}): {}",
            sse::quote(String::from_utf8_lossy(body).trim())
        )))
    })?;
    if response.choices.is_empty() {
        if let Some(error) = response.extra.get("error") {
            return Err(Failure::fatal(ModelError::Provider {
                model: model.to_string(),
                message: format!("{url} answered an error: {}", errors::describe_error_value(error)),
            }));
        }
        return Err(Failure::fatal(ModelError::Protocol(format!(
            "the response from {url} has no choices: {}",
            sse::quote(String::from_utf8_lossy(body).trim())
        ))));
    }
    Ok(response)
}

/// Drops `reasoning_content` from the assistant messages that the API does
/// not want back, keeps it where it must go back.
///
/// DeepSeek's "Thinking Mode" guide (api-docs.deepseek.com/guides/thinking_mode):
/// "Between two user messages, if the model did not perform a tool call, the
/// intermediate assistant's reasoning_content does not need to participate
/// in the context concatenation. If passed to the API in subsequent turns,
/// it will be ignored", and "if the model performed a tool call, the
/// intermediate assistant's reasoning_content must participate in the
/// context concatenation and must be passed back to the API in all
/// subsequent requests" (leaving it out is a 400, "The reasoning_content in
/// the thinking mode must be passed back to the API"). The older
/// `deepseek-reasoner` guide ("Reasoning Model", multi-round conversation)
/// answered 400 to any `reasoning_content` in the input messages; it had no
/// tool calls, so this rule serves both.
///
/// So: the messages between two user messages form a turn; in a turn with a
/// tool call every assistant message keeps its `reasoning_content`, in any
/// other turn it is dropped (unneeded, and fewer bytes to send). A chat
/// prefix completion's assistant message (`"prefix": true`) is the caller's
/// own start of the answer and keeps it too.
fn drop_unneeded_reasoning(messages: &mut [Message]) {
    for turn in messages.split_mut(|m| m.role == "user") {
        let tool_turn = turn
            .iter()
            .any(|m| m.role == "assistant" && m.tool_calls.as_ref().is_some_and(|calls| !calls.is_empty()));
        if !tool_turn {
            let prefix = |m: &Message| m.extra.get("prefix").and_then(Value::as_bool) == Some(true);
            for message in turn.iter_mut().filter(|m| m.role == "assistant" && !prefix(m)) {
                message.reasoning_content = None;
            }
        }
    }
}

/// `Err` when the call was cancelled or the deadline has passed.
fn stopped(call: &ModelCall<'_>, deadline: Instant) -> Result<(), ModelError> {
    if call.cancel.is_cancelled() {
        return Err(ModelError::Cancelled);
    }
    if Instant::now() >= deadline {
        return Err(ModelError::DeadlineExceeded);
    }
    Ok(())
}

/// Time left before `deadline` (at least 1 ms: ureq treats zero as no time).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// The wait before retry `n` (0-based): `base * 2^n`, at most 30 s, with
/// "equal jitter" (between half and all of it) so that clients that failed
/// together do not retry together.
fn backoff(base: Duration, n: u32) -> Duration {
    let full = base.saturating_mul(1u32 << n.min(16)).min(MAX_BACKOFF);
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

fn sleep_unless_cancelled(call: &ModelCall<'_>, wait: Duration) -> Result<(), ModelError> {
    let until = Instant::now() + wait;
    loop {
        if call.cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(CANCEL_POLL));
    }
}

/// Notes in the last cause how many attempts were made.
fn after_tries(error: ModelError, tries: u32) -> ModelError {
    if tries < 2 {
        return error;
    }
    let note = |message: String| format!("{message} (gave up after {tries} attempts)");
    match error {
        ModelError::RateLimited { message, retry_after } => ModelError::RateLimited {
            message: note(message),
            retry_after,
        },
        ModelError::Unavailable { status, message } => ModelError::Unavailable {
            status,
            message: note(message),
        },
        ModelError::Connection { url, message } => ModelError::Connection {
            url,
            message: note(message),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, reasoning: &str, tool_call: bool) -> Message {
        Message {
            role: role.into(),
            reasoning_content: Some(reasoning.into()),
            tool_calls: tool_call.then(|| vec![serde_json::json!({"id": "c", "type": "function"})]),
            ..Message::default()
        }
    }

    fn kept(messages: &[Message]) -> Vec<bool> {
        messages.iter().map(|m| m.reasoning_content.is_some()).collect()
    }

    #[test]
    fn reasoning_goes_back_only_in_turns_with_tool_calls() {
        let mut messages = vec![
            message("user", "", false),
            message("assistant", "plain turn", false),
            message("user", "", false),
            message("assistant", "decides to call", true),
            message("tool", "", false),
            message("assistant", "answers after the tool", false),
            message("user", "", false),
            message("assistant", "current tool loop", true),
            message("tool", "", false),
        ];
        drop_unneeded_reasoning(&mut messages);
        assert_eq!(
            kept(&messages),
            [true, false, true, true, true, true, true, true, true]
        );
    }

    #[test]
    fn a_prefix_completion_keeps_its_reasoning() {
        let mut messages = vec![
            message("user", "", false),
            message("assistant", "started thinking", false),
        ];
        messages[1].extra.insert("prefix".into(), Value::Bool(true));
        drop_unneeded_reasoning(&mut messages);
        assert_eq!(messages[1].reasoning_content.as_deref(), Some("started thinking"));
    }

    #[test]
    fn an_empty_tool_call_list_is_no_tool_call() {
        let mut messages = vec![message("user", "", false), message("assistant", "r", false)];
        messages[1].tool_calls = Some(Vec::new());
        drop_unneeded_reasoning(&mut messages);
        assert_eq!(messages[1].reasoning_content, None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for n in 0..4 {
            let full = base * (1 << n);
            for _ in 0..50 {
                let wait = backoff(base, n);
                assert!(wait >= full / 2 && wait <= full, "{n}: {wait:?}");
            }
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
    }

    #[test]
    fn settings_debug_redacts_the_key() {
        let settings = DeepSeekSettings {
            api_key: Some("sk-secret-123".into()),
            ..DeepSeekSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("sk-secret-123") && shown.contains("<redacted>"),
            "{shown}"
        );
        let provider = DeepSeekProvider::new(settings).unwrap();
        assert!(!format!("{provider:?}").contains("sk-secret-123"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |settings: DeepSeekSettings| DeepSeekProvider::new(settings).unwrap_err().to_string();
        let base = bad(DeepSeekSettings {
            base_url: "api.deepseek.com".into(),
            ..Default::default()
        });
        assert!(base.contains("not an http(s) URL"), "{base}");
        let model = bad(DeepSeekSettings {
            upstream_model: " ".into(),
            ..Default::default()
        });
        assert!(model.contains("upstream_model is empty"), "{model}");
    }

    #[test]
    fn the_body_carries_the_upstream_id_and_stream_flags() {
        let provider = DeepSeekProvider::new(DeepSeekSettings {
            upstream_model: "deepseek-v4-flash".into(),
            ..Default::default()
        })
        .unwrap();
        let mut request = ChatRequest::user("hi");
        request.model = "chat".into();
        request.stream_options = Some(serde_json::json!({"include_usage": false}));
        let plain: Value = serde_json::from_slice(&provider.request_body(&request, false).unwrap()).unwrap();
        assert_eq!(plain["model"], "deepseek-v4-flash");
        assert_eq!(plain["stream"], false);
        assert!(plain.get("stream_options").is_none());
        let streamed: Value =
            serde_json::from_slice(&provider.request_body(&request, true).unwrap()).unwrap();
        assert_eq!(streamed["stream"], true);
        assert_eq!(
            streamed["stream_options"]["include_usage"], false,
            "the caller's choice stays"
        );
        request.stream_options = None;
        let streamed: Value =
            serde_json::from_slice(&provider.request_body(&request, true).unwrap()).unwrap();
        assert_eq!(streamed["stream_options"]["include_usage"], true);
    }

    #[test]
    fn a_200_error_object_and_an_empty_completion_are_errors() {
        let error = parse_response(
            br#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            "m",
            "u",
        )
        .unwrap_err();
        assert!(
            matches!(error.error, ModelError::Provider { message, .. } if message == "u answered an error: overloaded (server_error)")
        );
        let empty = parse_response(br#"{"id":"x","choices":[]}"#, "m", "u").unwrap_err();
        assert!(matches!(empty.error, ModelError::Protocol(m) if m.contains("no choices")));
        let queued = parse_response(b"\n\n\n{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}", "m", "u");
        assert_eq!(queued.unwrap().text(), "ok");
    }
}
