//! A local server speaking the DeepSeek chat-completions protocol, for tests.
//!
//! [`DeepSeekServer`] listens on `127.0.0.1:0`, answers each request with
//! the next [`Reply`] of its script, and records what it received (method,
//! path, headers, body). The bytes on the wire follow the DeepSeek API
//! documentation: `application/json` completions and
//! `{"error": {"message", "type", "param", "code"}}` error bodies; streams
//! as `text/event-stream` in HTTP/1.1 chunked encoding, one `data: {json}`
//! line and a blank line per chunk, `: keep-alive` comment lines while the
//! request is queued, the usage chunk (empty `choices`) and `data: [DONE]`
//! last. [`Completion`] builds realistic completions and streams from text.
//!
//! ```no_run
//! use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer, Event, Reply};
//!
//! let answer = Completion::new("Hello there.");
//! let server = DeepSeekServer::start(vec![
//!     Reply::status(429).retry_after(1),
//!     answer.reply(),
//!     Reply::sse([vec![Event::KeepAlive], answer.events()].concat()),
//! ]);
//! let base_url = server.base_url(); // http://127.0.0.1:PORT
//! // ... point the provider at base_url, call it ...
//! assert_eq!(server.requests()[0].path, "/chat/completions");
//! ```
//!
//! Each connection gets its own thread and HTTP keep-alive is honoured, so a
//! client's connection pool works as against the real API. Replies are
//! taken in the order the requests arrive, whichever connection they come
//! on. When the script runs out, the server answers 500 with an error body
//! that says so (see [`DeepSeekServer::repeating`] for a server that answers
//! every request alike).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A scripted DeepSeek API on `127.0.0.1`. Stops listening when dropped
/// (connections already open finish their current reply).
pub struct DeepSeekServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

struct State {
    script: Mutex<Script>,
    requests: Mutex<Vec<Request>>,
    connections: std::sync::atomic::AtomicUsize,
    /// Connections whose serving thread has not ended yet.
    open: std::sync::atomic::AtomicUsize,
}

enum Script {
    Queue(VecDeque<Reply>),
    Repeat(Reply),
}

impl DeepSeekServer {
    /// Starts a server that answers the `n`-th request with `script[n]`.
    pub fn start(script: Vec<Reply>) -> DeepSeekServer {
        DeepSeekServer::with_script(Script::Queue(script.into()))
    }

    /// Starts a server that answers every request with `reply` (benchmarks,
    /// tests that make many calls).
    pub fn repeating(reply: Reply) -> DeepSeekServer {
        DeepSeekServer::with_script(Script::Repeat(reply))
    }

    fn with_script(script: Script) -> DeepSeekServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State {
            script: Mutex::new(script),
            requests: Mutex::new(Vec::new()),
            connections: std::sync::atomic::AtomicUsize::new(0),
            open: std::sync::atomic::AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("deepseek-server".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        state.connections.fetch_add(1, Ordering::SeqCst);
                        state.open.fetch_add(1, Ordering::SeqCst);
                        let conn_state = Arc::clone(&state);
                        let spawned =
                            std::thread::Builder::new()
                                .name("deepseek-conn".into())
                                .spawn(move || {
                                    serve(stream, &conn_state);
                                    conn_state.open.fetch_sub(1, Ordering::SeqCst);
                                });
                        if spawned.is_err() {
                            state.open.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                })
                .expect("spawn the server thread")
        };
        DeepSeekServer {
            addr,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`: the provider's `base_url` (like
    /// `https://api.deepseek.com`, it has no `/v1`). The server answers on
    /// any path and records it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }

    /// How many connections clients opened so far (a client that pools
    /// connections opens one for many requests).
    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// How many connections are open now: accepted and not yet closed
    /// (by the client, or by the server after a reply that ends it). A
    /// client that gives up on a reply midway closes its connection, and
    /// the count drops once the server's next write fails.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }
}

impl Drop for DeepSeekServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl std::fmt::Debug for DeepSeekServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepSeekServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target, e.g. `/chat/completions`.
    pub path: String,
    /// Header names and values in the order received (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies decoded).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A scripted answer. Build one with [`Reply::json`], [`Reply::error`],
/// [`Reply::status`], [`Reply::sse`] or [`Reply::models`], or from a
/// [`Completion`]; adjust it with the methods that take `self`.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    delay: Duration,
    pause_between: Duration,
    keep_alive: Option<(usize, Duration)>,
    drop_after: Option<usize>,
}

#[derive(Debug, Clone)]
enum Body {
    /// Sent with `Content-Length`.
    Fixed(Vec<u8>),
    /// Sent chunked, one HTTP chunk per event.
    Events(Vec<Event>),
}

/// One piece of a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `data: <json>\n\n`: one chunk.
    Data(String),
    /// `: keep-alive\n\n`: what DeepSeek sends while a request is queued.
    KeepAlive,
    /// An empty line (`\n`).
    Blank,
    /// `data: [DONE]\n\n`: the end.
    Done,
    /// These bytes as they are (broken streams).
    Raw(String),
    /// Sends nothing for this long (a slow model).
    Pause(Duration),
}

impl Event {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Event::Data(json) => format!("data: {json}\n\n").into_bytes(),
            Event::KeepAlive => b": keep-alive\n\n".to_vec(),
            Event::Blank => b"\n".to_vec(),
            Event::Done => b"data: [DONE]\n\n".to_vec(),
            Event::Raw(text) => text.as_bytes().to_vec(),
            Event::Pause(_) => Vec::new(),
        }
    }
}

impl Reply {
    /// `status` with a JSON body, as given.
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Fixed(body.into().into_bytes()),
            delay: Duration::ZERO,
            pause_between: Duration::ZERO,
            keep_alive: None,
            drop_after: None,
        }
    }

    /// `status` with DeepSeek's error body carrying `message` (and the
    /// `type` DeepSeek uses for that status).
    pub fn error(status: u16, message: &str) -> Reply {
        let kind = match status {
            401 => "authentication_error",
            402 => "insufficient_balance_error",
            429 => "rate_limit_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        };
        Reply::json(status, error_body(message, kind))
    }

    /// `status` with the error message DeepSeek's documentation gives for
    /// it ("Authentication Fails", "Insufficient Balance", "Rate Limit
    /// Reached", "Server Overloaded", ...).
    pub fn status(status: u16) -> Reply {
        let message = match status {
            400 => "Invalid request body format",
            401 => "Authentication Fails, Your api key: ****abcd is invalid",
            402 => "Insufficient Balance",
            422 => "Invalid Parameters",
            429 => "Rate Limit Reached",
            500 => "Server Error",
            503 => "Server Overloaded",
            _ => "Error",
        };
        Reply::error(status, message)
    }

    /// 200 with a `text/event-stream` body of these events.
    pub fn sse(events: Vec<Event>) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/event-stream; charset=utf-8".into()),
                ("Cache-Control".into(), "no-cache".into()),
            ],
            body: Body::Events(events),
            ..Reply::json(200, "")
        }
    }

    /// 200 with the `GET /models` list of these ids.
    pub fn models(ids: &[&str]) -> Reply {
        let data: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    r#"{{"id":{},"object":"model","owned_by":"deepseek"}}"#,
                    json_string(id)
                )
            })
            .collect();
        Reply::json(200, format!(r#"{{"object":"list","data":[{}]}}"#, data.join(",")))
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Retry-After: <seconds>`.
    pub fn retry_after(self, seconds: u64) -> Reply {
        self.header("Retry-After", &seconds.to_string())
    }

    /// Waits this long before sending anything (a slow or queued server).
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Waits this long between the events of a stream (a slow model).
    pub fn pause_between(mut self, pause: Duration) -> Reply {
        self.pause_between = pause;
        self
    }

    /// Sends `count` keep-alives, `every` apart, after the headers and
    /// before the body, as DeepSeek does while a request is queued: `:
    /// keep-alive` lines in a stream, empty lines before a JSON body (the
    /// body is then sent chunked).
    pub fn keep_alive(mut self, count: usize, every: Duration) -> Reply {
        self.keep_alive = Some((count, every));
        self
    }

    /// Closes the connection after `bytes` bytes of the body (a connection
    /// dropped mid-response).
    pub fn drop_after(mut self, bytes: usize) -> Reply {
        self.drop_after = Some(bytes);
        self
    }
}

/// DeepSeek's error body: `{"error":{"message":..,"type":..,"param":null,"code":..}}`.
pub fn error_body(message: &str, kind: &str) -> String {
    format!(
        r#"{{"error":{{"message":{},"type":{},"param":null,"code":"invalid_request_error"}}}}"#,
        json_string(message),
        json_string(kind)
    )
}

/// A tool call the model makes, for [`Completion::tool_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// `call_00_...`.
    pub id: String,
    /// Function name.
    pub name: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
}

/// A model's answer, written out as DeepSeek writes it: as one
/// `chat.completion` ([`Completion::json`]) or as the stream of
/// `chat.completion.chunk`s of the same answer ([`Completion::events`]).
/// Both carry the same id, model, text, reasoning, tool calls and usage, so
/// a stream assembled by a client equals the plain response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Response id (DeepSeek's are UUIDs).
    pub id: String,
    /// The model that answers.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// `system_fingerprint`.
    pub fingerprint: String,
    /// The chain of thought (`reasoning_content`), for reasoning models.
    pub reasoning: Option<String>,
    /// The answer (`content`).
    pub content: String,
    /// Tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, or `tool_calls` once a tool call is added.
    pub finish_reason: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Of those, served from DeepSeek's context cache.
    pub cache_hit_tokens: u64,
}

impl Completion {
    /// A `deepseek-chat` answer with this text.
    pub fn new(content: &str) -> Completion {
        Completion {
            id: "930c60df-bf64-41c9-a88e-3ec75f81e00e".into(),
            model: "deepseek-chat".into(),
            created: 1_766_977_481,
            fingerprint: "fp_eaab8d114b_prod0820_fp8_kvcache".into(),
            reasoning: None,
            content: content.into(),
            tool_calls: Vec::new(),
            finish_reason: "stop".into(),
            prompt_tokens: 24,
            cache_hit_tokens: 16,
        }
    }

    /// A `deepseek-reasoner` answer: thinks `reasoning`, answers `content`.
    pub fn reasoner(reasoning: &str, content: &str) -> Completion {
        Completion {
            model: "deepseek-reasoner".into(),
            reasoning: Some(reasoning.into()),
            ..Completion::new(content)
        }
    }

    /// Sets the model.
    pub fn model(mut self, model: &str) -> Completion {
        self.model = model.into();
        self
    }

    /// Adds a tool call (finish reason `tool_calls`).
    pub fn tool_call(mut self, id: &str, name: &str, arguments: &str) -> Completion {
        self.tool_calls.push(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        });
        self.finish_reason = "tool_calls".into();
        self
    }

    /// Sets the prompt size and how much of it hit the cache.
    pub fn prompt_tokens(mut self, prompt: u64, cache_hit: u64) -> Completion {
        self.prompt_tokens = prompt;
        self.cache_hit_tokens = cache_hit.min(prompt);
        self
    }

    /// Tokens of the reasoning (one per streamed piece).
    pub fn reasoning_tokens(&self) -> u64 {
        self.reasoning.as_deref().map_or(0, |r| pieces(r).len() as u64)
    }

    /// Generated tokens (one per streamed piece, reasoning included).
    pub fn completion_tokens(&self) -> u64 {
        let calls: usize = self
            .tool_calls
            .iter()
            .map(|c| 1 + pieces(&c.arguments).len())
            .sum();
        pieces(&self.content).len() as u64 + self.reasoning_tokens() + calls as u64
    }

    /// The `usage` object, with DeepSeek's cache counts and, for a
    /// reasoner, `completion_tokens_details.reasoning_tokens`.
    pub fn usage_json(&self) -> String {
        let completion = self.completion_tokens();
        let details = match self.reasoning {
            Some(_) => format!(
                r#","completion_tokens_details":{{"reasoning_tokens":{}}}"#,
                self.reasoning_tokens()
            ),
            None => String::new(),
        };
        format!(
            r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{}}}{details},"prompt_cache_hit_tokens":{},"prompt_cache_miss_tokens":{}}}"#,
            self.prompt_tokens,
            completion,
            self.prompt_tokens + completion,
            self.cache_hit_tokens,
            self.cache_hit_tokens,
            self.prompt_tokens - self.cache_hit_tokens,
        )
    }

    /// The non-streamed response body (`chat.completion`).
    pub fn json(&self) -> String {
        let mut message = format!(r#"{{"role":"assistant","content":{}"#, json_string(&self.content));
        if let Some(reasoning) = &self.reasoning {
            message.push_str(&format!(r#","reasoning_content":{}"#, json_string(reasoning)));
        }
        if !self.tool_calls.is_empty() {
            let calls: Vec<String> = self
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, call)| {
                    format!(
                        r#"{{"index":{index},"id":{},"type":"function","function":{{"name":{},"arguments":{}}}}}"#,
                        json_string(&call.id),
                        json_string(&call.name),
                        json_string(&call.arguments)
                    )
                })
                .collect();
            message.push_str(&format!(r#","tool_calls":[{}]"#, calls.join(",")));
        }
        message.push('}');
        format!(
            r#"{{"id":{},"object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{message},"logprobs":null,"finish_reason":{}}}],"usage":{},"system_fingerprint":{}}}"#,
            json_string(&self.id),
            self.created,
            json_string(&self.model),
            json_string(&self.finish_reason),
            self.usage_json(),
            json_string(&self.fingerprint),
        )
    }

    /// The JSON of each streamed chunk, in order: the role chunk,
    /// `reasoning_content` deltas (reasoner), `content` deltas (a word
    /// each), tool-call deltas (name, then the arguments in pieces), the
    /// finish chunk, and the usage chunk (empty `choices`).
    pub fn chunks(&self) -> Vec<String> {
        let head = format!(
            r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"system_fingerprint":{},"choices":"#,
            json_string(&self.id),
            self.created,
            json_string(&self.model),
            json_string(&self.fingerprint)
        );
        let chunk = |delta: String, finish: Option<&str>| {
            let finish = finish.map_or("null".to_string(), json_string);
            format!(
                r#"{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
            )
        };
        let mut out = Vec::new();
        match &self.reasoning {
            Some(reasoning) => {
                out.push(chunk(
                    r#"{"role":"assistant","content":null,"reasoning_content":""}"#.into(),
                    None,
                ));
                for piece in pieces(reasoning) {
                    out.push(chunk(
                        format!(r#"{{"content":null,"reasoning_content":{}}}"#, json_string(piece)),
                        None,
                    ));
                }
                for piece in pieces(&self.content) {
                    out.push(chunk(
                        format!(r#"{{"content":{},"reasoning_content":null}}"#, json_string(piece)),
                        None,
                    ));
                }
            }
            None => {
                out.push(chunk(r#"{"role":"assistant","content":""}"#.into(), None));
                for piece in pieces(&self.content) {
                    out.push(chunk(format!(r#"{{"content":{}}}"#, json_string(piece)), None));
                }
            }
        }
        for (index, call) in self.tool_calls.iter().enumerate() {
            out.push(chunk(
                format!(
                    r#"{{"tool_calls":[{{"index":{index},"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}}"#,
                    json_string(&call.id),
                    json_string(&call.name)
                ),
                None,
            ));
            for piece in pieces(&call.arguments) {
                out.push(chunk(
                    format!(
                        r#"{{"tool_calls":[{{"index":{index},"function":{{"arguments":{}}}}}]}}"#,
                        json_string(piece)
                    ),
                    None,
                ));
            }
        }
        out.push(chunk(r#"{"content":""}"#.into(), Some(&self.finish_reason)));
        out.push(format!(r#"{head}[],"usage":{}}}"#, self.usage_json()));
        out
    }

    /// The stream's events: each of [`Completion::chunks`] as
    /// [`Event::Data`], then [`Event::Done`].
    pub fn events(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self.chunks().into_iter().map(Event::Data).collect();
        events.push(Event::Done);
        events
    }

    /// 200 with [`Completion::json`].
    pub fn reply(&self) -> Reply {
        Reply::json(200, self.json())
    }

    /// 200 with the stream of [`Completion::events`].
    pub fn stream(&self) -> Reply {
        Reply::sse(self.events())
    }
}

/// `text` cut into stream pieces: a word each, with the whitespace before
/// it (so the pieces concatenate back to `text`).
pub fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() && in_word {
            out.push(&text[start..i]);
            start = i;
            in_word = false;
        } else if !c.is_whitespace() {
            in_word = true;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// `text` as a JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Serves one connection: requests in a loop (keep-alive) until the client
/// closes it or a reply ends it.
fn serve(stream: TcpStream, state: &State) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let reply = {
            let mut script = lock(&state.script);
            let mut requests = lock(&state.requests);
            requests.push(request);
            match &mut *script {
                Script::Repeat(reply) => reply.clone(),
                Script::Queue(queue) => queue.pop_front().unwrap_or_else(|| {
                    Reply::error(
                        500,
                        &format!(
                            "aiplug-testkit: the script has no reply left for request {}",
                            requests.len()
                        ),
                    )
                }),
            }
        };
        if write_reply(&mut writer, &reply).is_err() || reply.drop_after.is_some() {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads one request; `None` when the client closed the connection or sent
/// something that is not HTTP/1.1.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length") {
        body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_reply(out: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    std::thread::sleep(reply.delay);
    let chunked = matches!(reply.body, Body::Events(_)) || reply.keep_alive.is_some();
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &reply.body {
        Body::Fixed(bytes) if !chunked => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        _ => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("Connection: keep-alive\r\n\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()?;

    let mut budget = reply.drop_after.unwrap_or(usize::MAX);
    // Writes one piece of the body; `false` once the drop point is reached.
    let mut send = |out: &mut TcpStream, bytes: &[u8]| -> std::io::Result<bool> {
        let take = bytes.len().min(budget);
        budget -= take;
        if take > 0 {
            if chunked {
                out.write_all(format!("{take:x}\r\n").as_bytes())?;
                out.write_all(&bytes[..take])?;
                out.write_all(b"\r\n")?;
            } else {
                out.write_all(&bytes[..take])?;
            }
            out.flush()?;
        }
        Ok(take == bytes.len() && budget > 0)
    };

    if let Some((count, every)) = reply.keep_alive {
        let line: &[u8] = match reply.body {
            Body::Events(_) => b": keep-alive\n\n",
            Body::Fixed(_) => b"\n",
        };
        for _ in 0..count {
            if !send(out, line)? {
                return Ok(());
            }
            std::thread::sleep(every);
        }
    }
    match &reply.body {
        Body::Fixed(bytes) => {
            if !send(out, bytes)? {
                return Ok(());
            }
        }
        Body::Events(events) => {
            for (i, event) in events.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(reply.pause_between);
                }
                if let Event::Pause(pause) = event {
                    std::thread::sleep(*pause);
                    continue;
                }
                if !send(out, &event.bytes())? {
                    return Ok(());
                }
            }
        }
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_back() {
        for text in [
            "Hello there, friend.",
            "  leading",
            "trailing  ",
            "",
            "one",
            "a\nb\tc",
        ] {
            assert_eq!(pieces(text).concat(), text);
        }
        assert_eq!(pieces("Hello there, friend."), ["Hello", " there,", " friend."]);
    }

    #[test]
    fn json_strings_escape() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    /// Sends `request` raw and returns the raw answer (the server closes
    /// nothing, so read until the expected end).
    fn exchange(server: &DeepSeekServer, request: &str, until: &str) -> String {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(until) {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn a_stream_is_chunked_sse_and_requests_are_recorded() {
        let server = DeepSeekServer::start(vec![Reply::sse(vec![
            Event::KeepAlive,
            Event::Data("{}".into()),
            Event::Done,
        ])]);
        let raw = exchange(
            &server,
            "POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nAuthorization: Bearer k\r\n\r\n{}",
            "0\r\n\r\n",
        );
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
        assert!(
            raw.contains("Content-Type: text/event-stream; charset=utf-8\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Transfer-Encoding: chunked\r\n"), "{raw}");
        assert!(
            raw.ends_with("e\r\n: keep-alive\n\n\r\na\r\ndata: {}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"),
            "{raw:?}"
        );
        let request = &server.requests()[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/chat/completions")
        );
        assert_eq!(request.header("authorization"), Some("Bearer k"));
        assert_eq!(request.body_text(), "{}");
    }

    #[test]
    fn an_exhausted_script_says_so() {
        let server = DeepSeekServer::start(vec![]);
        let raw = exchange(&server, "GET /models HTTP/1.1\r\nHost: x\r\n\r\n", "}}");
        assert!(raw.starts_with("HTTP/1.1 500"), "{raw}");
        assert!(raw.contains("no reply left for request 1"), "{raw}");
    }

    #[test]
    fn a_completion_and_its_stream_say_the_same() {
        let c = Completion::reasoner("Think twice.", "Hi there.").tool_call("call_00_x", "f", r#"{"a": 1}"#);
        let json = c.json();
        assert!(
            json.starts_with(r#"{"id":"930c60df-bf64-41c9-a88e-3ec75f81e00e","object":"chat.completion","#)
        );
        assert!(json.contains(r#""reasoning_content":"Think twice.""#), "{json}");
        assert!(json.contains(r#""finish_reason":"tool_calls""#), "{json}");
        assert!(
            json.contains(r#""completion_tokens_details":{"reasoning_tokens":2}"#),
            "{json}"
        );
        let chunks = c.chunks();
        assert!(chunks[0].contains(r#""delta":{"role":"assistant","content":null,"reasoning_content":""}"#));
        assert!(chunks
            .last()
            .unwrap()
            .contains(r#""choices":[],"usage":{"prompt_tokens":24"#));
        assert_eq!(c.events().last(), Some(&Event::Done));
    }
}
