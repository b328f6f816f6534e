//! The routes besides chat completions: models, plugin services, admin,
//! health and metrics.

use std::sync::Arc;

use aiplug_host::{CallOptions, ReloadError, SyncChange};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::error::ApiError;
use crate::gate::RequestId;
use crate::{AppState, Readiness};

/// The header that selects the plugin session scope (else the chat
/// request's `user` field).
pub(crate) const SESSION_HEADER: &str = "x-session-id";

/// The session id a request carries in `X-Session-Id`.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A body that could not be read: too large (`413`) or broken.
pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            "invalid_request_error",
            "body_too_large",
            "the request body is larger than this server accepts ([server] max_body_bytes)",
        );
    }
    ApiError::new(
        status,
        "invalid_request_error",
        "unreadable_body",
        rejection.body_text(),
    )
}

/// `GET /v1/models`: OpenAI's list shape, plus what aiplug knows.
pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let host = Arc::clone(&state.host);
    // `info()` of a local model may hash its file the first time: blocking.
    let models = tokio::task::spawn_blocking(move || host.models())
        .await
        .map_err(|e| ApiError::internal("internal_error", format!("listing models panicked: {e}")))?;
    let default = state.host.default_model().map(str::to_string);
    let data: Vec<_> = models
        .into_iter()
        .map(|m| {
            json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": m.provider,
                "upstream": m.upstream,
                "context_length": m.context_length,
                "loaded": m.loaded,
                "default": Some(&m.name) == default.as_ref(),
                "notes": m.notes,
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `POST /v1/tasks/{task}`: the plugin serving TASK.
pub(crate) async fn task(
    State(state): State<Arc<AppState>>,
    Path(task): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    run_invoke(state, task, request_id, &headers, body).await
}

/// `POST /v1/plugins/{id}/invoke`: plugin ID's service.
pub(crate) async fn invoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    run_invoke(state, id, request_id, &headers, body).await
}

async fn run_invoke(
    state: Arc<AppState>,
    target: String,
    request_id: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let mut options = CallOptions::new().timeout(state.config.request_timeout());
    options.request_id = request_id;
    options.session_id = session_id(headers);
    let guard = options.cancel.clone().drop_guard();
    let host = Arc::clone(&state.host);
    let span = tracing::Span::current();
    let output = tokio::task::spawn_blocking(move || {
        span.in_scope(|| host.invoke(&target, &body, &options).map(|out| out.to_vec()))
    })
    .await
    .map_err(|e| ApiError::internal("internal_error", format!("the plugin call panicked: {e}")))?;
    drop(guard.disarm());
    let output = output?;
    // Plugin services speak JSON by contract; anything else is passed on
    // as text rather than mislabelled.
    let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&output).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], output).into_response())
}

/// `GET /admin/plugins`.
pub(crate) async fn admin_plugins(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let plugins: Vec<_> = state.host.plugins().iter().map(|p| p.to_json()).collect();
    Json(json!({"plugins": plugins}))
}

/// `POST /admin/plugins/{id}/reload`.
pub(crate) async fn admin_reload(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let host = Arc::clone(&state.host);
    let span = tracing::Span::current();
    let result = tokio::task::spawn_blocking(move || span.in_scope(|| host.reload(&id)))
        .await
        .map_err(|e| ApiError::internal("internal_error", format!("the reload panicked: {e}")))?;
    match result {
        Ok(info) => Ok(Json(json!({"reloaded": true, "plugin": info.to_json()}))),
        Err(ReloadError::NotLoaded(id)) => Err(ApiError::not_found(
            "plugin_not_found",
            format!("no loaded plugin has id {id:?}"),
        )),
        Err(ReloadError::Load(error)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "reload_refused",
            format!(
                "the new version was refused and the loaded one keeps serving: {} stage: {}; fix: {}",
                error.stage(),
                error.kind(),
                error.fix()
            ),
        )),
        Err(other) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "reload_refused",
            format!("{other}; fix: {}", other.fix()),
        )),
    }
}

/// `POST /admin/plugins/reload`: loads new plugin directories, reloads
/// changed ones, unloads removed ones (what the file watcher does).
pub(crate) async fn admin_sync(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let host = Arc::clone(&state.host);
    let dirs = state.plugin_dirs.clone();
    let span = tracing::Span::current();
    let changes = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            dirs.iter()
                .flat_map(|dir| host.sync_dir(dir))
                .map(|change| change_json(&change))
                .collect::<Vec<_>>()
        })
    })
    .await
    .map_err(|e| ApiError::internal("internal_error", format!("the reload panicked: {e}")))?;
    Ok(Json(json!({"changes": changes})))
}

fn change_json(change: &SyncChange) -> serde_json::Value {
    match change {
        SyncChange::Loaded(info) => json!({"change": "loaded", "plugin": info.to_json()}),
        SyncChange::Reloaded(info) => json!({"change": "reloaded", "plugin": info.to_json()}),
        SyncChange::Unloaded { id, result } => json!({
            "change": "unloaded",
            "id": id,
            "error": result.as_ref().err().map(ToString::to_string),
        }),
        SyncChange::LoadRefused(error) => json!({
            "change": "load_refused",
            "manifest": error.manifest_path,
            "error": format!("{} stage: {}; fix: {}", error.stage(), error.kind(), error.fix()),
        }),
        SyncChange::ReloadRefused { id, error } => json!({
            "change": "reload_refused",
            "id": id,
            "error": error.to_string(),
            "fix": error.fix(),
        }),
        _ => json!({"change": "other"}),
    }
}

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: plugins loaded and the default model warm.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let plugins = state.host.plugins();
    let active = plugins
        .iter()
        .filter(|p| p.state == aiplug_host::PluginState::Active)
        .count();
    let body = |status: &str, why: Option<String>| {
        json!({
            "status": status,
            "default_model": state.host.default_model(),
            "plugins_active": active,
            "plugins_failed": plugins.len() - active,
            "reason": why,
        })
    };
    match state.readiness() {
        Readiness::Ready => Json(body("ready", None)).into_response(),
        Readiness::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(body("loading", Some("the default model is loading".into()))),
        )
            .into_response(),
        Readiness::Failed(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(body("failed", Some(why)))).into_response()
        }
        Readiness::Draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(body("draining", Some("shutting down".into()))),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.set_in_flight(&state.host.plugins());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// A known path with a method it does not serve: an OpenAI-shaped `405`
/// (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} does not serve {method}", uri.path()),
    )
    .into_response();
    crate::gate::close_if_unread(crate::gate::has_body(&headers), &mut response);
    response
}

/// Any other path: an OpenAI-shaped `404`.
pub(crate) async fn unknown_route(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut response = ApiError::not_found(
        "unknown_route",
        format!(
            "no route {}: the API is under /v1 (chat/completions, models, tasks/TASK, plugins/ID/invoke)",
            uri.path()
        ),
    )
    .into_response();
    crate::gate::close_if_unread(crate::gate::has_body(&headers), &mut response);
    response
}
