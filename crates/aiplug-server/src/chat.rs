//! `POST /v1/chat/completions`: the plugin pipeline around a model call,
//! answered whole or as OpenAI's server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiplug_host::models::{ChatChunk, ChatRequest};
use aiplug_host::{CallOptions, CallStats, Host};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tokio::sync::mpsc;
use tokio_util::sync::DropGuard;

use crate::error::ApiError;
use crate::gate::{Arrived, RequestId, Slot, OVERHEAD_HEADER};
use crate::AppState;

const ROUTE: &str = "/v1/chat/completions";

/// How long a stream's response head waits for the first chunk. An error
/// before then (a filter's rejection, an unknown model, an upstream that
/// refuses) is a plain HTTP error; after it, the head goes out and later
/// errors arrive as an SSE `error` event.
const STREAM_HEAD_WAIT: Duration = Duration::from_secs(5);

/// Chunks buffered between the model and a slow client.
const STREAM_BUFFER: usize = 64;

pub(crate) async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(Arrived(arrived)): Extension<Arrived>,
    slot: Option<Extension<Slot>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(crate::services::body_error)?;
    let request: ChatRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request_body",
            format!("the body is not a valid chat completion request: {e}"),
        )
    })?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages_empty",
            "`messages` must hold at least one message",
        ));
    }
    let mut options = CallOptions::new().timeout(state.config.request_timeout());
    options.request_id = request_id;
    options.session_id = crate::services::session_id(&headers).or_else(|| request.user.clone());
    if request.stream.unwrap_or(false) {
        stream(state, options, request, arrived, slot.map(|Extension(s)| s)).await
    } else {
        whole(state, options, request, arrived).await
    }
}

/// A non-streamed answer.
async fn whole(
    state: Arc<AppState>,
    options: CallOptions,
    request: ChatRequest,
    arrived: Instant,
) -> Result<Response, ApiError> {
    let stats = Arc::clone(&options.stats);
    // Dropped with this future when the client goes away: cancels the call.
    let guard = options.cancel.clone().drop_guard();
    let host = Arc::clone(&state.host);
    let span = tracing::Span::current();
    let result = tokio::task::spawn_blocking(move || span.in_scope(|| host.infer(&request, &options, None)))
        .await
        .map_err(|e| ApiError::internal("internal_error", format!("the model call panicked: {e}")))?;
    drop(guard.disarm());
    let response = result?;
    let overhead = arrived.elapsed().saturating_sub(stats.model_time());
    state.metrics.overhead(ROUTE, overhead);
    let mut http = Json(response).into_response();
    set_overhead(&mut http, overhead);
    Ok(http)
}

/// What the blocking model call sends to the SSE stream.
enum StreamEvent {
    /// A chunk, already JSON (encoded on the blocking thread).
    Chunk(String),
    End(Result<(), ApiError>),
}

/// A streamed answer.
async fn stream(
    state: Arc<AppState>,
    options: CallOptions,
    mut request: ChatRequest,
    arrived: Instant,
    slot: Option<Slot>,
) -> Result<Response, ApiError> {
    request.stream = Some(true);
    let stats = Arc::clone(&options.stats);
    let cancel = options.cancel.clone();
    let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
    spawn_stream(Arc::clone(&state.host), request, options, tx);
    // From here on, dropping the guard (the client went away, or the body
    // stream ended early) cancels the model call.
    let guard = cancel.drop_guard();
    let first = match tokio::time::timeout(STREAM_HEAD_WAIT, rx.recv()).await {
        Ok(Some(StreamEvent::End(Err(error)))) => return Err(error),
        Ok(Some(event)) => Some(event),
        Ok(None) => {
            return Err(ApiError::internal(
                "internal_error",
                "the model call ended without a result",
            ))
        }
        Err(_) => None, // slow first chunk: send the head, keep-alives follow
    };
    let overhead = stats_overhead(&stats, arrived);
    if let Some(overhead) = overhead {
        state.metrics.overhead(ROUTE, overhead);
    }
    let events = SseState {
        first,
        rx,
        done: false,
        guard: Some(guard),
        _slot: slot,
    };
    let body = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.next().await?;
        Some((Ok::<Event, Infallible>(event), events))
    });
    let mut http = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response();
    if let Some(overhead) = overhead {
        set_overhead(&mut http, overhead);
    }
    Ok(http)
}

/// Runs the model call on the blocking pool, sending each chunk and the
/// outcome to `tx`. A closed channel (client gone) cancels the call.
///
/// The usage chunk (no choices) goes out only when the client asked for it
/// with `stream_options.include_usage`, as OpenAI does: a remote provider
/// asks its upstream for one either way, and clients that read
/// `chunk.choices[0]` on every chunk break on it.
fn spawn_stream(host: Arc<Host>, request: ChatRequest, options: CallOptions, tx: mpsc::Sender<StreamEvent>) {
    let span = tracing::Span::current();
    let include_usage = request.include_usage();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let cancel = options.cancel.clone();
            let mut sink = |chunk: &ChatChunk| {
                if !include_usage && chunk.choices.is_empty() && chunk.usage.is_some() {
                    return;
                }
                let json = serde_json::to_string(chunk)
                    .unwrap_or_else(|e| format!(r#"{{"error":{{"message":"cannot encode a chunk: {e}"}}}}"#));
                if tx.blocking_send(StreamEvent::Chunk(json)).is_err() {
                    cancel.cancel();
                }
            };
            let result = host.infer(&request, &options, Some(&mut sink));
            if let Err(error) = &result {
                tracing::debug!(%error, "streamed call failed");
            }
            let _ = tx.blocking_send(StreamEvent::End(result.map(drop).map_err(ApiError::from)));
        })
    });
}

/// The SSE body's state: the first event (already received), the channel,
/// and what must live as long as the stream.
struct SseState {
    first: Option<StreamEvent>,
    rx: mpsc::Receiver<StreamEvent>,
    done: bool,
    guard: Option<DropGuard>,
    _slot: Option<Slot>,
}

impl SseState {
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let event = match self.first.take() {
            Some(event) => event,
            None => match self.rx.recv().await {
                Some(event) => event,
                None => StreamEvent::End(Err(ApiError::internal(
                    "internal_error",
                    "the model call ended without a result",
                ))),
            },
        };
        match event {
            StreamEvent::Chunk(json) => Some(Event::default().data(json)),
            StreamEvent::End(Ok(())) => {
                self.done = true;
                drop(self.guard.take().map(DropGuard::disarm));
                Some(Event::default().data("[DONE]"))
            }
            StreamEvent::End(Err(error)) => {
                self.done = true;
                Some(json_event(&error.body()))
            }
        }
    }
}

fn json_event(value: &impl serde::Serialize) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        Err(e) => Event::default().data(format!(
            r#"{{"error":{{"message":"cannot encode a chunk: {e}"}}}}"#
        )),
    }
}

/// Time spent before the model call started, once it has.
fn stats_overhead(stats: &CallStats, arrived: Instant) -> Option<Duration> {
    stats
        .first_model_start()
        .map(|start| start.saturating_duration_since(arrived))
}

fn set_overhead(response: &mut Response, overhead: Duration) {
    let ms = format!("{:.3}", overhead.as_secs_f64() * 1e3);
    if let Ok(value) = HeaderValue::from_str(&ms) {
        response.headers_mut().insert(OVERHEAD_HEADER, value);
    }
}
