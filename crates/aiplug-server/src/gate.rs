//! What every routed request passes first: a request id, a tracing span,
//! auth, the concurrency limit, and the request metrics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;

/// The request's id (from `x-request-id` when the client sent a sane one).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The request's concurrency slot; a stream keeps a clone until it ends.
#[derive(Debug, Clone)]
pub(crate) struct Slot(#[allow(dead_code)] pub(crate) Arc<OwnedSemaphorePermit>);

/// When the request arrived, for the overhead header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrived(pub(crate) Instant);

/// The header with the gateway's own time in milliseconds.
pub(crate) const OVERHEAD_HEADER: &str = "x-aiplug-overhead-ms";

pub(crate) async fn gate(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let arrived = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_string);
    let access = if route.starts_with("/admin/") {
        Access::Admin
    } else if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        Access::Open
    } else {
        Access::Api
    };
    let span = tracing::info_span!("request", id = %id, %method, %route, %peer);
    let body = has_body(request.headers());
    async move {
        let mut response = match admit(&state, access, peer, &request) {
            Err(error) => {
                tracing::debug!(status = error.status.as_u16(), code = error.code, "refused");
                let mut response = error.into_response();
                close_if_unread(body, &mut response);
                response
            }
            Ok(slot) => {
                let extensions = request.extensions_mut();
                extensions.insert(RequestId(id.clone()));
                extensions.insert(Arrived(arrived));
                if let Some(slot) = slot {
                    extensions.insert(slot);
                }
                let mut response = next.run(request).await;
                if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    close_if_unread(body, &mut response);
                }
                response
            }
        };
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", value);
        }
        let status = response.status().as_u16();
        let elapsed = arrived.elapsed();
        state.metrics.request(&route, &method, status, elapsed);
        tracing::info!(status, ms = elapsed.as_secs_f64() * 1e3, "response");
        response
    }
    .instrument(span)
    .await
}

/// Whether the request carries a body.
pub(crate) fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Marks `response` `Connection: close` when it answers a request whose
/// body was not read (a refusal, a body over the limit). hyper closes such
/// a connection after the response unless the rest of the body is already
/// there; without the header a client would put the connection back in its
/// pool and see its next request fail on a closed socket.
pub(crate) fn close_if_unread(body: bool, response: &mut Response) {
    if body {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Auth, then a concurrency slot for API routes.
fn admit(
    state: &AppState,
    access: Access,
    peer: SocketAddr,
    request: &Request,
) -> Result<Option<Slot>, ApiError> {
    state.auth.check(access, peer.ip(), request.headers())?;
    if access != Access::Api {
        return Ok(None);
    }
    match Arc::clone(&state.slots).try_acquire_owned() {
        Ok(permit) => Ok(Some(Slot(Arc::new(permit)))),
        Err(_) => Err(ApiError::too_many(
            "server_busy",
            format!(
                "the server is serving its limit of {} concurrent requests; retry shortly \
                 (raise [server] max_concurrent_requests if the machine has room)",
                state.config.max_concurrent_requests
            ),
            Duration::from_secs(1),
        )),
    }
}

/// `req-` + a per-process random prefix + a counter: unique, cheap, and
/// sortable within one process.
fn new_request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(Instant::now().elapsed().as_nanos());
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    format!(
        "req-{:08x}-{}",
        prefix & 0xffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
