//! `aiplug serve` driven over HTTP the way a client drives it: the real
//! binary on a free port with a config file written by the test, a scripted
//! server speaking the DeepSeek/OpenAI protocol as the model, and real
//! plugins built by the test. Requests go through `ureq`, or a raw
//! `TcpStream` where the test needs the socket itself (disconnects, a
//! thousand connections, shutdown).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use aiplug_testkit as kit;
use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer, Reply};
use serde_json::{json, Value};

use crate::{behaviour, example, tempdir};

/// The model name requests use; the scripted server sees [`UPSTREAM`].
const MODEL: &str = "scripted";
const UPSTREAM: &str = "upstream-chat";

/// What a gateway is started with: a temp directory holding `aiplug.toml`
/// and `plugins/`, the scripted model, the `[server]` table, extra
/// environment.
struct Setup {
    dir: tempfile::TempDir,
    models: String,
    server: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        Setup {
            dir,
            models: String::new(),
            server: String::new(),
            env: Vec::new(),
            args: Vec::new(),
        }
    }

    /// The plugins directory the config names.
    fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// The default model `scripted`, an OpenAI-compatible provider at `server`.
    fn scripted(mut self, server: &DeepSeekServer) -> Setup {
        self.models = format!(
            "default_model = \"{MODEL}\"\n\n[models.{MODEL}]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"{UPSTREAM}\"\n",
            server.base_url()
        );
        self
    }

    /// Top-level model lines as given (e.g. another default model).
    #[cfg_attr(not(feature = "local-llm"), allow(dead_code))]
    fn models(mut self, toml: &str) -> Setup {
        self.models = toml.to_string();
        self
    }

    /// Lines of the `[server]` table.
    fn server(mut self, toml: &str) -> Setup {
        self.server = toml.to_string();
        self
    }

    fn env(mut self, name: &str, value: &str) -> Setup {
        self.env.push((name.into(), value.into()));
        self
    }

    /// One more argument of `aiplug serve` (e.g. `--no-watch`).
    fn arg(mut self, arg: &str) -> Setup {
        self.args.push(arg.into());
        self
    }

    /// Writes the config and starts `aiplug serve --listen 127.0.0.1:0`;
    /// returns once it says where it listens.
    fn start(self) -> Gateway {
        let config = self.dir.path().join("aiplug.toml");
        let (models, server) = (&self.models, &self.server);
        let text = format!("{models}\n[plugins]\ndirs = [\"plugins\"]\n\n[server]\n{server}\n");
        std::fs::write(&config, text).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_aiplug"));
        command
            .env("AIPLUG_ALLOW_UNSIGNED", "1")
            .args(["--config"])
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("DEEPSEEK_API_KEY")
            .env_remove("AIPLUG_API_KEYS")
            .env_remove("AIPLUG_ADMIN_KEYS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("aiplug serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut gateway = Gateway {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into(),
            _dir: self.dir,
        };
        let addr = rx.recv_timeout(Duration::from_secs(60));
        gateway.addr = match addr.ok().and_then(|a| a.parse().ok()) {
            Some(addr) => addr,
            None => panic!("aiplug serve did not say where it listens:\n{}", gateway.log()),
        };
        gateway
    }
}

/// A running `aiplug serve`; killed on drop.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

/// One HTTP answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
    elapsed: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: the body is not JSON ({e}): {:?}",
                self.status, self.body
            )
        })
    }

    /// Asserts `status` and OpenAI's error shape with `code`; returns the
    /// message.
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        let error = &body["error"];
        assert_eq!(error["code"], code, "{body}");
        assert!(
            error["type"].as_str().is_some_and(|t| !t.is_empty()),
            "`type` is a string: {body}"
        );
        let message = error["message"]
            .as_str()
            .unwrap_or_else(|| panic!("`message` is a string: {body}"));
        assert!(!message.is_empty(), "{body}");
        message.to_string()
    }

    /// The `data:` payloads of an SSE body, in order.
    fn events(&self) -> Vec<String> {
        sse_data(&self.body)
    }
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut builder = ureq::http::Request::builder().method(method).uri(self.url(path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let start = Instant::now();
        let result = if method == "GET" {
            self.agent.run(builder.body(()).unwrap())
        } else {
            self.agent.run(builder.body(body.to_vec()).unwrap())
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Answer {
            status,
            headers,
            body,
            elapsed: start.elapsed(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], b"")
    }

    fn post(&self, path: &str, body: &str) -> Answer {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    }

    fn chat(&self, request: &Value) -> Answer {
        self.post("/v1/chat/completions", &request.to_string())
    }

    fn metrics(&self) -> String {
        let answer = self.get("/metrics");
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }

    /// Polls `/metrics` until `series` reaches `at_least`, for up to `wait`.
    fn wait_metric(&self, series: &str, at_least: f64, wait: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < wait {
            if metric(&self.metrics(), series).is_some_and(|v| v >= at_least) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// Polls `/readyz` until it says ready.
    fn wait_ready(&self, wait: Duration) -> Value {
        let start = Instant::now();
        loop {
            let answer = self.get("/readyz");
            if answer.status == 200 {
                return answer.json();
            }
            assert_eq!(answer.status, 503, "{}", answer.body);
            assert!(
                start.elapsed() < wait,
                "not ready after {wait:?}: {}\n{}",
                answer.body,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `wait` for the process to exit.
    fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// The value of the Prometheus series `series` (name and labels exactly
/// as rendered).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A chat request with one user message for the scripted model.
fn ask(text: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": text}]})
}

fn ask_stream(text: &str, include_usage: bool) -> Value {
    let mut request = ask(text);
    request["stream"] = json!(true);
    if include_usage {
        request["stream_options"] = json!({"include_usage": true});
    }
    request
}

/// Joins the `delta.content` (or `field`) of every chunk.
fn streamed(events: &[String], field: &str) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| {
            let chunk: Value = serde_json::from_str(e).unwrap_or_else(|err| panic!("chunk {e}: {err}"));
            chunk["choices"][0]["delta"][field].as_str().map(str::to_string)
        })
        .collect()
}

/// The chat request as raw HTTP/1.1.
fn raw_chat(addr: SocketAddr, request: &Value, close: bool) -> String {
    let body = request.to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
}

/// Reads from `stream` until what was read contains `marker`, the peer
/// closes, or `wait` passes. Returns what was read.
fn read_until(stream: &mut TcpStream, marker: &str, wait: Duration) -> String {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(marker) && start.elapsed() < wait {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!(
                "reading the response: {e}; got so far: {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `w1 w2 ... wN`: a long answer.
fn words(n: usize) -> String {
    (1..=n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

// -- chat completions ---------------------------------------------------------

#[test]
fn chat_completion_runs_the_request_filters_and_sets_the_headers() {
    let answer = Completion::reasoner("Two and two.", "It is 4.");
    let server = DeepSeekServer::start(vec![answer.reply(), answer.reply()]);
    let setup = Setup::new().scripted(&server);
    example(
        &setup.plugins(),
        "prompt-decorator",
        &kit::cargo_plugin("prompt-decorator"),
    );
    let gateway = setup.start();

    let reply = gateway.send(
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "client-id-42"),
        ],
        ask("2+2?").to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, gateway.log());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        reply.headers
    );
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "It is 4.", "{body}");
    assert_eq!(
        body["choices"][0]["message"]["reasoning_content"], "Two and two.",
        "reasoning passes through: {body}"
    );
    assert_eq!(body["usage"]["prompt_tokens"], 24, "{body}");
    assert_eq!(reply.header("x-request-id"), Some("client-id-42"), "echoed");
    let overhead = reply.header("x-aiplug-overhead-ms").expect("overhead header");
    let overhead: f64 = overhead.parse().unwrap_or_else(|e| panic!("{overhead:?}: {e}"));
    assert!(
        (0.0..reply.elapsed.as_secs_f64() * 1e3).contains(&overhead),
        "overhead {overhead} ms within the request's {:?}",
        reply.elapsed
    );

    // What the model received went through the decorator.
    let upstream = server.requests();
    assert_eq!(upstream[0].path, "/chat/completions");
    let sent: Value = serde_json::from_str(&upstream[0].body_text()).unwrap();
    assert_eq!(sent["model"], UPSTREAM, "{sent}");
    assert_eq!(sent["stream"], false, "{sent}");
    assert_eq!(sent["messages"][0]["role"], "system", "{sent}");
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .is_some_and(|s| s.contains("careful senior engineer")),
        "the decorator's system prompt: {sent}"
    );
    assert!(
        sent["messages"].to_string().contains("2+2?"),
        "the user's message is kept: {sent}"
    );

    // Without an id the gateway makes one, a different one each time.
    let second = gateway.chat(&ask("2+2?"));
    assert_eq!(second.status, 200, "{}", second.body);
    let id = second.header("x-request-id").expect("a generated id");
    assert!(id.starts_with("req-") && id != "client-id-42", "{id}");
    let third = gateway.get("/v1/models");
    assert_ne!(third.header("x-request-id"), Some(id), "ids are unique");
}

#[test]
fn streaming_chat_is_sse_with_usage_and_reasoning() {
    let answer = Completion::reasoner("Think about it.", "It is 4.");
    let server = DeepSeekServer::start(vec![answer.stream(), answer.stream()]);
    let gateway = Setup::new().scripted(&server).start();

    let reply = gateway.chat(&ask_stream("2+2?", true));
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, gateway.log());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        reply.headers
    );
    assert!(reply.header("x-request-id").is_some());
    let overhead = reply.header("x-aiplug-overhead-ms").expect("overhead header");
    assert!(overhead.parse::<f64>().is_ok(), "{overhead:?}");
    assert!(
        reply.body.ends_with("data: [DONE]\n\n"),
        "the stream ends with [DONE]: {:?}",
        reply.body
    );
    let events = reply.events();
    assert!(events.len() > 4, "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
    }
    assert_eq!(streamed(&events, "reasoning_content"), "Think about it.");
    assert_eq!(streamed(&events, "content"), "It is 4.");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]), "the usage chunk comes last: {usage}");
    assert_eq!(usage["usage"]["prompt_tokens"], 24, "{usage}");
    let sent: Value = serde_json::from_str(&server.requests()[0].body_text()).unwrap();
    assert_eq!(sent["stream"], true, "{sent}");

    // Without `include_usage` no usage chunk (OpenAI's contract: clients
    // may index `choices[0]` of every chunk).
    let reply = gateway.chat(&ask_stream("2+2?", false));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed(&events, "content"), "It is 4.");
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert!(
            chunk["choices"].as_array().is_some_and(|c| !c.is_empty()),
            "a chunk without choices although include_usage was not asked for: {chunk}"
        );
    }
}

#[test]
fn a_rejecting_request_filter_is_a_400_naming_the_plugin() {
    let server = DeepSeekServer::start(vec![]);
    let setup = Setup::new().scripted(&server);
    behaviour(&setup.plugins(), "guard", "reject_word = \"forbidden\"");
    let gateway = setup.start();
    for request in [
        ask("say the forbidden word"),
        ask_stream("say the forbidden word", true),
    ] {
        let reply = gateway.chat(&request);
        let message = reply.error(400, "plugin_rejected");
        assert!(
            message.contains("\"test-behaviour\" rejected the request")
                && message.contains("the request contains \"forbidden\""),
            "the plugin and its reason: {message}"
        );
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "a plain JSON error, not a stream: {:?}",
            reply.headers
        );
    }
    assert_eq!(server.request_count(), 0, "the model was never called");
}

#[test]
fn response_filters_apply_to_streams_too() {
    let answer = Completion::new("Hello there.");
    // With a response filter loaded the host has the model answer whole,
    // filters it, then streams the filtered answer: plain replies upstream.
    let server = DeepSeekServer::start(vec![answer.reply(), answer.reply()]);
    let setup = Setup::new().scripted(&server);
    behaviour(&setup.plugins(), "suffixer", "response_suffix = \" [reviewed]\"");
    let gateway = setup.start();

    let reply = gateway.chat(&ask("hi"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello there. [reviewed]"
    );

    let reply = gateway.chat(&ask_stream("hi", true));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    assert_eq!(
        streamed(&events, "content"),
        "Hello there. [reviewed]",
        "the streamed text is the filtered text: {events:?}"
    );
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 24, "{usage}");
    assert_eq!(server.request_count(), 2);
}

// -- models, tasks, plugin services, sessions ----------------------------------

#[test]
fn models_tasks_and_plugin_services() {
    let server = DeepSeekServer::start(vec![]);
    let setup = Setup::new().scripted(&server);
    behaviour(&setup.plugins(), "behaviour", "");
    let gateway = setup.start();

    let models = gateway.get("/v1/models");
    assert_eq!(models.status, 200, "{}", models.body);
    let models = models.json();
    assert_eq!(models["object"], "list");
    let data = models["data"].as_array().expect("data");
    let ours = data
        .iter()
        .find(|m| m["id"] == MODEL)
        .unwrap_or_else(|| panic!("{MODEL} listed: {models}"));
    assert_eq!(ours["object"], "model");
    assert_eq!(ours["owned_by"], "openai", "{ours}");
    assert_eq!(ours["default"], true, "{ours}");
    assert_eq!(
        data.iter().filter(|m| m["default"] == true).count(),
        1,
        "one default: {models}"
    );

    let reply = gateway.post("/v1/tasks/word-count", "three small words");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "3"),
        "{}",
        gateway.log()
    );
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "a JSON number: {:?}",
        reply.headers
    );

    let reply = gateway.post("/v1/plugins/test-behaviour/invoke", r#"{"echo": [1, 2]}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"echo": [1, 2]}));
    let reply = gateway.post("/v1/plugins/test-behaviour/invoke", "plain words");
    assert_eq!(reply.body, "plain words");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        reply.headers
    );

    let message = gateway
        .post("/v1/tasks/no-such-task", "x")
        .error(404, "plugin_not_found");
    assert!(message.contains("no-such-task"), "{message}");
    gateway
        .post("/v1/plugins/no-such-plugin/invoke", "x")
        .error(404, "plugin_not_found");
    // A plugin's own failure is a 500 that says so.
    let message = gateway
        .post("/v1/tasks/sleep", "not a number")
        .error(500, "plugin_failed");
    assert!(message.contains("milliseconds"), "{message}");
}

#[test]
fn the_session_id_scopes_plugin_state() {
    let server = DeepSeekServer::start(vec![]);
    let setup = Setup::new().scripted(&server);
    behaviour(&setup.plugins(), "behaviour", "");
    let gateway = setup.start();
    let call = |session: &str, command: &str| {
        let reply = gateway.send(
            "POST",
            "/v1/tasks/host-api",
            &[("x-session-id", session)],
            command.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{command}: {}\n{}", reply.body, gateway.log());
        reply.body
    };
    assert_eq!(call("alice", "set colour blue"), "ok");
    assert_eq!(call("bob", "set colour green"), "ok");
    assert_eq!(call("alice", "get colour"), "blue");
    assert_eq!(call("bob", "get colour"), "green");
    assert_eq!(call("carol", "get colour"), "<none>");
}

// -- admin ----------------------------------------------------------------------

#[test]
fn admin_lists_plugins_and_reloads_them_keeping_the_old_on_failure() {
    let server = DeepSeekServer::repeating(Completion::new("fine").reply());
    let setup = Setup::new().scripted(&server);
    let plugin = behaviour(&setup.plugins(), "behaviour", "reject_word = \"alpha\"");
    // A plugin whose artefact is missing: listed as failed, with why.
    let broken = setup.plugins().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("plugin.toml"),
        kit::manifest("broken", "libbroken.so", ""),
    )
    .unwrap();
    let gateway = setup.start();
    let status = |text: &str| gateway.chat(&ask(text)).status;

    let list = gateway.get("/admin/plugins");
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    let plugins = list["plugins"].as_array().expect("plugins");
    let active: Vec<_> = plugins.iter().filter(|p| p["state"] == "active").collect();
    assert_eq!(active.len(), 1, "{list}");
    assert_eq!(active[0]["id"], "test-behaviour");
    assert_eq!(active[0]["version"], "0.1.0");
    assert!(active[0]["hooks"].to_string().contains("on_request"), "{list}");
    let failed: Vec<_> = plugins.iter().filter(|p| p["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "the broken one is listed: {list}");
    assert_eq!(failed[0]["id"], "broken", "{list}");
    assert!(
        failed[0]["diagnosis"].to_string().contains("libbroken.so"),
        "{list}"
    );

    assert_eq!((status("alpha"), status("beta")), (400, 200));

    // A new config, reloaded: the new version serves.
    std::fs::write(
        plugin.join("plugin.toml"),
        kit::manifest(
            "test-behaviour",
            "libtest_behaviour.so",
            "[config]\nreject_word = \"beta\"\n",
        ),
    )
    .unwrap();
    let reload = gateway.post("/admin/plugins/test-behaviour/reload", "");
    assert_eq!(reload.status, 200, "{}\n{}", reload.body, gateway.log());
    assert_eq!(reload.json()["reloaded"], true);
    assert_eq!(reload.json()["plugin"]["state"], "active");
    assert_eq!((status("alpha"), status("beta")), (200, 400));

    // A broken artefact: refused with the diagnosis; the loaded version
    // keeps serving.
    std::fs::write(plugin.join("libtest_behaviour.so"), b"not a shared library").unwrap();
    let refused = gateway.post("/admin/plugins/test-behaviour/reload", "");
    let message = refused.error(422, "reload_refused");
    assert!(
        message.contains("keeps serving") && message.contains("stage") && message.contains("fix"),
        "{message}"
    );
    assert_eq!(
        (status("alpha"), status("beta")),
        (200, 400),
        "the old version still filters"
    );
    let list = gateway.get("/admin/plugins").json();
    let entry = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "active")
        .cloned()
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        entry["diagnosis"].as_str().is_some_and(|d| d.contains("stage")),
        "the refused reload's diagnosis is kept: {entry}"
    );

    gateway
        .post("/admin/plugins/no-such-plugin/reload", "")
        .error(404, "plugin_not_found");
    let metrics = gateway.metrics();
    assert_eq!(
        metric(
            &metrics,
            r#"aiplug_plugin_reloads_total{plugin="test-behaviour",outcome="ok"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"aiplug_plugin_reloads_total{plugin="test-behaviour",outcome="refused"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn plugins_reload_asks_the_running_server() {
    let server = DeepSeekServer::repeating(Completion::new("fine").reply());
    // Without the watcher: only the command makes the server look at disk.
    let setup = Setup::new().scripted(&server).arg("--no-watch");
    let plugin = behaviour(&setup.plugins(), "behaviour", "reject_word = \"alpha\"");
    let plugins = setup.plugins();
    let gateway = setup.start();
    let url = format!("http://{}", gateway.addr);
    let cwd = tempdir();
    let reload = |args: &[&str]| {
        let mut all = vec!["plugins", "reload"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url]);
        crate::aiplug(cwd.path(), &all, b"")
    };
    let status = |text: &str| gateway.chat(&ask(text)).status;
    assert_eq!((status("alpha"), status("beta")), (400, 200));

    // By id: the new config serves, the command prints the plugin.
    std::fs::write(
        plugin.join("plugin.toml"),
        kit::manifest(
            "test-behaviour",
            "libtest_behaviour.so",
            "[config]\nreject_word = \"beta\"\n",
        ),
    )
    .unwrap();
    let run = reload(&["test-behaviour"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, gateway.log());
    assert_eq!(run.stdout.trim(), "test-behaviour 0.1.0 active");
    assert_eq!((status("alpha"), status("beta")), (200, 400));

    // No id: every plugin directory is synced; a new one loads.
    let added = kit::c_plugin("test-plugins/fixture.c", &[("FIXTURE_ID", "\"added\"")]);
    kit::stage(
        &plugins,
        "added",
        &kit::manifest("added", "libadded.so", ""),
        &added,
        "libadded.so",
    );
    let run = reload(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, gateway.log());
    assert_eq!(run.stdout.trim(), "loaded added", "{}", run.stderr);
    let list = gateway.get("/admin/plugins").json();
    assert!(
        list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "added" && p["state"] == "active"),
        "{list}"
    );
    let run = reload(&[]);
    assert_eq!((run.code, run.stdout.trim()), (0, "every plugin is up to date"));

    // Broken files: refused with the diagnosis, exit 1, the loaded version
    // keeps serving.
    std::fs::write(plugin.join("libtest_behaviour.so"), b"not a shared library").unwrap();
    let run = reload(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("reload_refused test-behaviour:")
            && run.stdout.contains("  fix: ")
            && run.stdout.contains("keeps serving")
            && run.stdout.contains("format stage")
            && run.stdout.contains("text, not a compiled library"),
        "{}",
        run.stdout
    );
    let run = reload(&["test-behaviour"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("reload failed (HTTP 422)")
            && run.stderr.contains("keeps serving")
            && run.stderr.contains("format stage")
            && run.stderr.contains("libtest_behaviour.so")
            && run.stderr.contains("fix:"),
        "{}",
        run.stderr
    );
    assert_eq!(
        (status("alpha"), status("beta")),
        (200, 400),
        "the loaded version still filters"
    );
    let run = reload(&["no-such-plugin"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("HTTP 404"), "{}", run.stderr);
}

// -- health, readiness, metrics --------------------------------------------------

#[test]
fn health_readiness_and_metrics() {
    let server = DeepSeekServer::start(vec![Completion::new("ok").reply()]);
    let setup = Setup::new().scripted(&server);
    example(
        &setup.plugins(),
        "prompt-decorator",
        &kit::cargo_plugin("prompt-decorator"),
    );
    let gateway = setup.start();

    let health = gateway.get("/healthz");
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));
    let ready = gateway.wait_ready(Duration::from_secs(10));
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["default_model"], MODEL, "{ready}");
    assert_eq!(ready["plugins_active"], 1, "{ready}");

    let reply = gateway.chat(&ask("hi"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let metrics = gateway.metrics();
    for (series, value) in [
        (
            r#"aiplug_http_requests_total{route="/v1/chat/completions",method="POST",status="200"}"#,
            1.0,
        ),
        (
            r#"aiplug_plugin_calls_total{plugin="prompt-decorator",hook="on_request",outcome="ok"}"#,
            1.0,
        ),
        (r#"aiplug_model_calls_total{model="scripted",outcome="ok"}"#, 1.0),
        (r#"aiplug_tokens_in_total{model="scripted"}"#, 24.0),
        (r#"aiplug_cache_hit_tokens_total{model="scripted"}"#, 16.0),
        (
            r#"aiplug_http_requests_total{route="/healthz",method="GET",status="200"}"#,
            1.0,
        ),
    ] {
        assert_eq!(metric(&metrics, series), Some(value), "{series} in\n{metrics}");
    }
    assert!(
        metric(&metrics, r#"aiplug_tokens_out_total{model="scripted"}"#).is_some_and(|v| v > 0.0),
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            r#"aiplug_gateway_overhead_seconds_count{route="/v1/chat/completions"}"#
        ) == Some(1.0),
        "{metrics}"
    );
}

// -- auth ---------------------------------------------------------------------------

#[test]
fn api_keys_guard_the_api_and_admin_keys_the_admin() {
    let server = DeepSeekServer::start(vec![Completion::new("ok").reply()]);
    let gateway = Setup::new()
        .scripted(&server)
        .server("api_keys = [\"k-config\"]\nadmin_keys = [\"k-admin\"]\n")
        .env("AIPLUG_API_KEYS", "k-env1, k-env2")
        .env("AIPLUG_ADMIN_KEYS", "k-env-admin")
        .start();
    let with = |path: &str, key: Option<&str>| {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        gateway.send("GET", path, &headers, b"")
    };

    let message = with("/v1/models", None).error(401, "invalid_api_key");
    assert!(message.contains("Authorization: Bearer"), "{message}");
    with("/v1/models", Some("k-wrong")).error(401, "invalid_api_key");
    let reply = gateway.send(
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k-wrong")],
        ask("hi").to_string().as_bytes(),
    );
    reply.error(401, "invalid_api_key");
    assert_eq!(server.request_count(), 0, "no model call without a key");
    for key in ["k-config", "k-env1", "k-env2", "k-admin"] {
        assert_eq!(with("/v1/models", Some(key)).status, 200, "{key}");
    }
    let reply = gateway.send(
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k-env2")],
        ask("hi").to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    with("/admin/plugins", None).error(401, "invalid_api_key");
    let message = with("/admin/plugins", Some("k-config")).error(403, "admin_key_required");
    assert!(message.contains("admin"), "{message}");
    with("/admin/plugins", Some("k-env1")).error(403, "admin_key_required");
    assert_eq!(with("/admin/plugins", Some("k-admin")).status, 200);
    assert_eq!(with("/admin/plugins", Some("k-env-admin")).status, 200);
    assert_eq!(with("/healthz", None).status, 200, "health needs no key");

    // A refusal leaves the body unread, so the server closes the
    // connection: it must say so, or a client reuses a dead connection.
    let mut client = TcpStream::connect(gateway.addr).unwrap();
    write!(
        client,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    .unwrap();
    let head = read_until(&mut client, "\r\n\r\n", Duration::from_secs(5)).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
}

// -- bad input ----------------------------------------------------------------------

#[test]
fn bad_requests_get_openai_shaped_errors() {
    let server = DeepSeekServer::start(vec![]);
    let gateway = Setup::new()
        .scripted(&server)
        .server("max_body_bytes = 4096\n")
        .start();
    let chat = |body: &str| gateway.post("/v1/chat/completions", body);

    chat(r#"{"model": "scripted", "messages": ["#).error(400, "invalid_request_body");
    chat("not json at all").error(400, "invalid_request_body");
    let message = chat(r#"{"model": "scripted", "messages": "hello"}"#).error(400, "invalid_request_body");
    assert!(
        message.contains("messages") || message.contains("sequence"),
        "{message}"
    );
    chat(r#"{"model": "scripted"}"#).error(400, "invalid_request_body");
    chat(r#"{"model": "scripted", "messages": []}"#).error(400, "messages_empty");
    let message = chat(&ask("hi").to_string().replace(MODEL, "no-such-model")).error(404, "model_not_found");
    assert!(message.contains("no-such-model"), "{message}");
    let mut big = ask(&"x".repeat(8192));
    big["model"] = json!(MODEL);
    let too_big = chat(&big.to_string());
    too_big.error(413, "body_too_large");
    assert_eq!(too_big.header("connection"), Some("close"));
    let message = gateway.get("/v2/nothing").error(404, "unknown_route");
    assert!(message.contains("/v2/nothing"), "{message}");
    let unknown = gateway.send("PUT", "/nothing/either", &[], b"{}");
    unknown.error(404, "unknown_route");
    assert_eq!(
        unknown.header("connection"),
        Some("close"),
        "the body was not read"
    );
    let wrong_method = gateway.get("/v1/chat/completions");
    let message = wrong_method.error(405, "method_not_allowed");
    assert!(message.contains("GET"), "{message}");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_eq!(server.request_count(), 0, "no bad request reached the model");
}

// -- limits, upstream errors, deadlines ------------------------------------------------

#[test]
fn upstream_rate_limits_pass_through_with_retry_after() {
    let server = DeepSeekServer::start(vec![
        Reply::status(429).retry_after(30),
        Reply::status(429).retry_after(30),
    ]);
    // A retry after 30 s would pass the 10 s deadline: the provider gives up
    // at once and the client learns when to come back.
    let gateway = Setup::new()
        .scripted(&server)
        .server("request_timeout_secs = 10\n")
        .start();
    for request in [ask("hi"), ask_stream("hi", true)] {
        let reply = gateway.chat(&request);
        let message = reply.error(429, "upstream_rate_limited");
        assert_eq!(reply.header("retry-after"), Some("30"), "{message}");
        assert_eq!(reply.json()["error"]["type"], "rate_limit_error");
        assert!(reply.elapsed < Duration::from_secs(5), "{:?}", reply.elapsed);
    }
    assert_eq!(server.request_count(), 2);
}

#[test]
fn a_full_server_answers_429_with_retry_after() {
    let server = DeepSeekServer::start(vec![
        Completion::new("slow").reply().delay(Duration::from_millis(1500)),
        Completion::new("after").reply(),
    ]);
    let gateway = Setup::new()
        .scripted(&server)
        .server("max_concurrent_requests = 1\n")
        .start();
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| gateway.chat(&ask("first")));
        let start = Instant::now();
        while server.request_count() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "{}", gateway.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        let busy = gateway.chat(&ask("second"));
        let message = busy.error(429, "server_busy");
        assert!(message.contains("max_concurrent_requests"), "{message}");
        assert_eq!(busy.header("retry-after"), Some("1"));
        assert_eq!(busy.header("connection"), Some("close"), "the body was not read");
        assert_eq!(gateway.get("/healthz").status, 200, "health is not limited");
        let slow = slow.join().unwrap();
        assert_eq!(slow.status, 200, "{}", slow.body);
        assert_eq!(slow.json()["choices"][0]["message"]["content"], "slow");
    });
    let after = gateway.chat(&ask("third"));
    assert_eq!(after.status, 200, "the slot was given back: {}", after.body);
    assert_eq!(
        server.request_count(),
        2,
        "the refused request never reached the model"
    );
}

#[test]
fn the_request_deadline_is_a_504() {
    let server = DeepSeekServer::start(vec![
        Completion::new("late").reply().delay(Duration::from_secs(5)),
        Completion::new("late").stream().delay(Duration::from_secs(5)),
    ]);
    let gateway = Setup::new()
        .scripted(&server)
        .server("request_timeout_secs = 1\n")
        .start();
    for request in [ask("hi"), ask_stream("hi", false)] {
        let reply = gateway.chat(&request);
        reply.error(504, "deadline_exceeded");
        assert!(
            reply.elapsed >= Duration::from_millis(900) && reply.elapsed < Duration::from_secs(3),
            "answered after {:?}, the deadline is 1 s",
            reply.elapsed
        );
    }
}

// -- connections: disconnects, many at once, shutdown ----------------------------------

#[test]
fn a_client_that_disconnects_mid_stream_cancels_the_model_call() {
    // 40 words, 250 ms apart: the scripted stream lasts over 10 s.
    let server = DeepSeekServer::start(vec![Completion::new(&words(40))
        .stream()
        .pause_between(Duration::from_millis(250))]);
    let gateway = Setup::new().scripted(&server).start();
    let mut client = TcpStream::connect(gateway.addr).unwrap();
    client
        .write_all(raw_chat(gateway.addr, &ask_stream("talk", false), false).as_bytes())
        .unwrap();
    let head = read_until(&mut client, "data: ", Duration::from_secs(10));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{}", gateway.log());
    drop(client);
    let gone = Instant::now();

    let series = r#"aiplug_model_calls_total{model="scripted",outcome="error"}"#;
    let noticed = gateway.wait_metric(series, 1.0, Duration::from_secs(5));
    assert!(
        noticed.is_some(),
        "the model call did not end within 5 s of the client leaving\n{}\n{}",
        gateway.metrics(),
        gateway.log()
    );
    let start = Instant::now();
    while server.open_connections() > 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(
        server.open_connections(),
        0,
        "the upstream connection is still open {:?} after the client left",
        gone.elapsed()
    );
    assert!(
        gone.elapsed() < Duration::from_secs(6),
        "noticed after {:?}; the stream would have run over 10 s",
        gone.elapsed()
    );
    let metrics = gateway.metrics();
    assert_eq!(
        metric(
            &metrics,
            r#"aiplug_model_calls_total{model="scripted",outcome="ok"}"#
        ),
        None,
        "{metrics}"
    );
}

/// The soft limit on open files of processes started from here.
fn open_file_limit() -> usize {
    let output = Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .expect("sh runs");
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim() {
        "unlimited" => usize::MAX,
        n => n.parse().unwrap_or(1024),
    }
}

#[test]
fn a_thousand_concurrent_connections_are_all_answered() {
    // This process holds the client sockets and the scripted server's; the
    // gateway the accepted ones and its upstream connections.
    let limit = open_file_limit();
    let count = 1000.min(limit.saturating_sub(300) / 2);
    let note = if count < 1000 {
        format!(" (only {count} connections: RLIMIT_NOFILE is {limit})")
    } else {
        String::new()
    };
    let server = DeepSeekServer::repeating(Completion::new("pong").reply());
    let gateway = Setup::new()
        .scripted(&server)
        .server("max_concurrent_requests = 4096\n")
        .start();
    let request = raw_chat(gateway.addr, &ask("ping"), true);

    let start = Instant::now();
    let mut clients: Vec<TcpStream> = (0..count)
        .map(|i| TcpStream::connect(gateway.addr).unwrap_or_else(|e| panic!("connection {i}: {e}{note}")))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("connection {i}: writing: {e}{note}"));
    }
    let mut failures = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut raw = Vec::new();
        if let Err(e) = client.read_to_end(&mut raw) {
            failures.push(format!("connection {i}: {e}"));
            continue;
        }
        let text = String::from_utf8_lossy(&raw);
        let well_formed = text.starts_with("HTTP/1.1 200 OK\r\n")
            && text
                .split_once("\r\n\r\n")
                .is_some_and(|(_, body)| body.contains("\"chat.completion\"") && body.contains("pong"));
        if !well_formed {
            failures.push(format!("connection {i}: {text:?}"));
        }
    }
    let elapsed = start.elapsed();
    drop(clients);
    assert!(
        failures.is_empty(),
        "{} of {count} connections failed{note}, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "{count} requests took {elapsed:?}{note}"
    );
    let metrics = gateway.metrics();
    assert_eq!(
        metric(
            &metrics,
            r#"aiplug_http_requests_total{route="/v1/chat/completions",method="POST",status="200"}"#
        ),
        Some(count as f64),
        "{metrics}"
    );
    eprintln!("{count} concurrent chat completions in {elapsed:?}");
}

#[test]
fn sigterm_finishes_in_flight_streams_then_exits_0() {
    // Nine words and the usage chunk, 200 ms apart: about 2.4 s of stream.
    let server = DeepSeekServer::start(vec![Completion::new(&words(9))
        .stream()
        .pause_between(Duration::from_millis(200))]);
    let mut gateway = Setup::new()
        .scripted(&server)
        .server("shutdown_grace_secs = 6\n")
        .start();
    let mut client = TcpStream::connect(gateway.addr).unwrap();
    client
        .write_all(raw_chat(gateway.addr, &ask_stream("talk", true), false).as_bytes())
        .unwrap();
    let head = read_until(&mut client, "data: ", Duration::from_secs(10));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    gateway.terminate();
    let term = Instant::now();

    // New connections are refused once the listener is closed.
    let refused = loop {
        match TcpStream::connect_timeout(&gateway.addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break true,
            _ if term.elapsed() > Duration::from_secs(2) => break false,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(refused, "new connections are still accepted after SIGTERM");

    let rest = read_until(&mut client, "data: [DONE]", Duration::from_secs(10));
    let body = format!("{head}{rest}");
    assert!(
        body.contains("data: [DONE]"),
        "the in-flight stream was cut: {body}\n{}",
        gateway.log()
    );
    assert!(body.contains("w9"), "every word arrived: {body}");
    assert!(
        body.contains("\"prompt_tokens\":24"),
        "the usage chunk arrived: {body}"
    );
    drop(client);

    let status = gateway.wait_exit(Duration::from_secs(6));
    let status = status.unwrap_or_else(|| panic!("still running 6 s after SIGTERM\n{}", gateway.log()));
    assert!(status.success(), "{status}\n{}", gateway.log());
    assert!(
        term.elapsed() < Duration::from_secs(6),
        "exited {:?} after SIGTERM, the grace is 6 s",
        term.elapsed()
    );
    assert!(gateway.log().contains("shutting down"), "{}", gateway.log());
}

// -- the real local model -----------------------------------------------------------------

#[cfg(feature = "local-llm")]
#[test]
fn the_default_local_model_serves_chat_and_streams() {
    let gateway = Setup::new().models("default_model = \"smollm2\"\n").start();
    let ready = gateway.wait_ready(Duration::from_secs(120));
    assert_eq!(ready["default_model"], "smollm2", "{ready}");

    let reply = gateway.chat(&json!({
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "temperature": 0,
    }));
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, gateway.log());
    let body = reply.json();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert!(!content.trim().is_empty(), "the model answered: {body}");
    let tokens = body["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!((1..=8).contains(&tokens), "{body}");

    let reply = gateway.chat(&json!({
        "messages": [{"role": "user", "content": "Count: 1, 2,"}],
        "max_tokens": 6,
        "stream": true,
        "stream_options": {"include_usage": true},
    }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    assert!(!streamed(&events, "content").is_empty(), "{events:?}");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    let tokens = usage["usage"]["completion_tokens"].as_u64().expect("usage chunk");
    assert!((1..=6).contains(&tokens), "{usage}");
}
