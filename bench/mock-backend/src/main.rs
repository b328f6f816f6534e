//! `mock-backend`: bench/gateway's backend, a small OpenAI-compatible server
//! with a fixed answer, so that every gateway in the benchmark talks to the
//! same, cheap upstream.
//!
//! Usage: `mock-backend [--listen ADDR] [--delay-ms N] [--threads N]`
//!
//! - `POST /v1/chat/completions`: a fixed `chat.completion` with usage; with
//!   `"stream": true`, the same answer as OpenAI server-sent events (a role
//!   chunk, one chunk per word, a finish chunk, a usage chunk when
//!   `stream_options.include_usage` is true, then `data: [DONE]`).
//! - `GET /v1/models`: one model, `mock`.
//!
//! `--delay-ms` waits that long before answering (a stand-in for model
//! time); `--threads` sizes the runtime (default 1: the backend should take
//! as little of the machine as it can, since the gateway and the load
//! generator share it). The bound address is printed on stdout as
//! `listening on ADDR`, so `--listen 127.0.0.1:0` works.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::{json, Value};

/// The answer every completion gets.
const ANSWER: &str = "Hello! This is the mock backend's fixed answer.";
/// The answer's id and creation time: fixed, the answer is canned.
const ID: &str = "chatcmpl-mock";
/// Creation time reported in every answer.
const CREATED: u64 = 1_700_000_000;
/// Usage reported for every answer.
const PROMPT_TOKENS: u64 = 12;
/// Completion tokens: one per streamed word.
const COMPLETION_TOKENS: u64 = 8;

/// Command-line options.
struct Args {
    /// Address to bind; port 0 picks a free one.
    listen: SocketAddr,
    /// Wait before each completion.
    delay: Duration,
    /// Runtime worker threads; 1 runs a current-thread runtime.
    threads: usize,
}

/// Parses `std::env::args`; `Err` carries the message for the user.
fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        delay: Duration::ZERO,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err("usage: mock-backend [--listen ADDR] [--delay-ms N] [--threads N]".into());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--listen" => args.listen = value.parse().map_err(|e| bad(&e))?,
            "--delay-ms" => args.delay = Duration::from_millis(value.parse().map_err(|e| bad(&e))?),
            "--threads" => args.threads = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown option {other:?} (try --help)")),
        }
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(args)
}

/// Canned bodies, rendered once at start.
struct App {
    /// Wait before each completion.
    delay: Duration,
    /// The non-streaming `chat.completion`.
    completion: Bytes,
    /// The SSE stream without a usage chunk.
    stream: Bytes,
    /// The SSE stream with a usage chunk before `[DONE]`.
    stream_with_usage: Bytes,
    /// The `GET /v1/models` list.
    models: Bytes,
}

/// Usage object shared by every answer.
fn usage() -> Value {
    json!({
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    })
}

/// One `chat.completion.chunk` with the given choices (and usage, if any).
fn chunk(choices: Value, usage: Option<Value>) -> String {
    let mut chunk = json!({
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "mock",
        "choices": choices,
    });
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    format!("data: {chunk}\n\n")
}

/// Renders the SSE stream of [`ANSWER`]: role, one chunk per word, finish,
/// optional usage, `[DONE]`.
fn render_stream(with_usage: bool) -> String {
    let delta = |delta: Value, finish: Value| {
        chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": finish}]),
            None,
        )
    };
    let mut out = delta(json!({"role": "assistant", "content": ""}), Value::Null);
    for (i, word) in ANSWER.split(' ').enumerate() {
        let piece = if i == 0 {
            word.to_string()
        } else {
            format!(" {word}")
        };
        out += &delta(json!({"content": piece}), Value::Null);
    }
    out += &delta(json!({}), json!("stop"));
    if with_usage {
        out += &chunk(json!([]), Some(usage()));
    }
    out + "data: [DONE]\n\n"
}

impl App {
    /// Renders the canned bodies.
    fn new(delay: Duration) -> App {
        let completion = json!({
            "id": ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": "mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }],
            "usage": usage(),
        });
        let models = json!({
            "object": "list",
            "data": [{"id": "mock", "object": "model", "created": CREATED, "owned_by": "mock-backend"}],
        });
        App {
            delay,
            completion: Bytes::from(completion.to_string()),
            stream: Bytes::from(render_stream(false)),
            stream_with_usage: Bytes::from(render_stream(true)),
            models: Bytes::from(models.to_string()),
        }
    }
}

/// An OpenAI-style error body with the given status.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error"}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /v1/chat/completions`.
async fn chat(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("request is not JSON: {e}")),
    };
    if !request.get("messages").is_some_and(Value::is_array) {
        return error(StatusCode::BAD_REQUEST, "request needs a `messages` array");
    }
    if !app.delay.is_zero() {
        tokio::time::sleep(app.delay).await;
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool);
        let body = if usage == Some(true) {
            &app.stream_with_usage
        } else {
            &app.stream
        };
        let headers = [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ];
        (headers, body.clone()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            app.completion.clone(),
        )
            .into_response()
    }
}

/// `GET /v1/models`.
async fn models(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], app.models.clone()).into_response()
}

/// Binds, prints the address and serves until Ctrl-C.
async fn serve(args: Args) -> std::io::Result<()> {
    let app = Arc::new(App::new(args.delay));
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    // Without TCP_NODELAY a response written in more than one piece waits
    // for the client's delayed ACK (up to 40 ms on Linux) on a kept-alive
    // connection.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("mock-backend: cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            // An error here means no signal handler: then serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("mock-backend: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let result = runtime.and_then(|runtime| runtime.block_on(serve(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-backend: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_reassembles_the_answer() {
        let text = render_stream(true);
        let mut content = String::new();
        let mut usage = None;
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        for event in &events[..events.len() - 1] {
            let chunk: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
            if let Some(piece) = chunk.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                content += piece;
            }
            if chunk.get("usage").is_some() {
                usage = chunk.get("usage").cloned();
            }
        }
        assert_eq!(content, ANSWER);
        assert_eq!(usage.unwrap()["total_tokens"], PROMPT_TOKENS + COMPLETION_TOKENS);
        assert!(!render_stream(false).contains("usage"));
    }

    #[test]
    fn completion_is_well_formed() {
        let app = App::new(Duration::ZERO);
        let body: Value = serde_json::from_slice(&app.completion).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], ANSWER);
        assert_eq!(body["usage"]["completion_tokens"], COMPLETION_TOKENS);
    }
}
