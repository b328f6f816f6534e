//! The `deepseek` provider against a local server that speaks the DeepSeek
//! protocol byte for byte (`aiplug_testkit::deepseek_server`): full
//! responses, streams with keep-alives, reasoning and tool-call deltas, the
//! request on the wire, every error class, retries, broken connections and
//! streams, deadlines and cancellation.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aiplug_host::models::deepseek::{DeepSeekProvider, DeepSeekSettings};
use aiplug_host::models::wire::{Content, Stop};
use aiplug_host::models::{ChatChunk, ChatModel, ChatRequest, ChatResponse, Message, ModelCall, ModelError};
use aiplug_host::CancellationToken;
use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer, Event, Reply};
use serde_json::{json, Value};

const KEY: &str = "sk-test-0123456789";

fn settings(server: &DeepSeekServer) -> DeepSeekSettings {
    DeepSeekSettings {
        name: "chat".into(),
        upstream_model: "deepseek-chat".into(),
        base_url: server.base_url(),
        api_key: Some(KEY.into()),
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
        ..DeepSeekSettings::default()
    }
}

fn provider(server: &DeepSeekServer) -> DeepSeekProvider {
    DeepSeekProvider::new(settings(server)).expect("valid settings")
}

/// Runs a plain call with a 10 s deadline.
fn plain(model: &DeepSeekProvider, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
    let cancel = CancellationToken::new();
    model.chat(
        request,
        ModelCall {
            cancel: &cancel,
            deadline: Some(Instant::now() + Duration::from_secs(10)),
        },
        None,
    )
}

/// Runs a streamed call with a 10 s deadline; returns what the sink saw too.
fn streamed(
    model: &DeepSeekProvider,
    request: &ChatRequest,
) -> (Result<ChatResponse, ModelError>, Vec<ChatChunk>) {
    let cancel = CancellationToken::new();
    let mut seen = Vec::new();
    let mut sink = |chunk: &ChatChunk| seen.push(chunk.clone());
    let result = model.chat(
        request,
        ModelCall {
            cancel: &cancel,
            deadline: Some(Instant::now() + Duration::from_secs(10)),
        },
        Some(&mut sink),
    );
    (result, seen)
}

fn parsed<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).expect("testkit JSON parses")
}

#[test]
fn a_full_response_carries_text_and_deepseek_usage() {
    let answer = Completion::new("Hello! How can I assist you today?").prompt_tokens(40, 32);
    let server = DeepSeekServer::start(vec![answer.reply()]);
    let response = plain(&provider(&server), &ChatRequest::user("Hi")).unwrap();

    assert_eq!(response, parsed::<ChatResponse>(&answer.json()));
    assert_eq!(response.text(), "Hello! How can I assist you today?");
    assert_eq!(response.model, "deepseek-chat");
    let usage = response.usage.unwrap();
    assert_eq!(
        (usage.prompt_tokens, usage.total_tokens),
        (40, 40 + answer.completion_tokens())
    );
    assert_eq!(
        (usage.prompt_cache_hit_tokens, usage.prompt_cache_miss_tokens),
        (Some(32), Some(8))
    );
    assert_eq!(usage.extra["prompt_tokens_details"], json!({"cached_tokens": 32}));
    assert_eq!(server.request_count(), 1);
}

#[test]
fn calls_reuse_one_pooled_connection() {
    let answer = Completion::new("again");
    let server = DeepSeekServer::repeating(answer.reply());
    let model = provider(&server);
    for _ in 0..5 {
        assert_eq!(plain(&model, &ChatRequest::user("Hi")).unwrap().text(), "again");
    }
    assert_eq!(server.request_count(), 5);
    assert_eq!(
        server.connection_count(),
        1,
        "keep-alive: one connection for every plain call"
    );
}

#[test]
fn a_queued_plain_request_with_blank_keep_alive_lines_parses() {
    let answer = Completion::new("Finally.");
    let server = DeepSeekServer::start(vec![answer.reply().keep_alive(3, Duration::from_millis(20))]);
    assert_eq!(
        plain(&provider(&server), &ChatRequest::user("Hi"))
            .unwrap()
            .text(),
        "Finally."
    );
}

#[test]
fn a_stream_with_keep_alives_and_blank_lines_reaches_the_sink_and_assembles() {
    let answer = Completion::new("Streaming works, one word at a time.").prompt_tokens(30, 10);
    let chunks = answer.chunks();
    let mut events = vec![Event::KeepAlive, Event::KeepAlive];
    for (i, chunk) in chunks.iter().enumerate() {
        events.push(Event::Data(chunk.clone()));
        if i % 2 == 1 {
            events.push(Event::KeepAlive);
            events.push(Event::Blank);
        }
    }
    events.push(Event::Done);
    let server = DeepSeekServer::start(vec![Reply::sse(events)]);
    let (result, seen) = streamed(&provider(&server), &ChatRequest::user("Hi"));
    let response = result.unwrap();

    // Every chunk reached the sink, in order, as sent.
    let expected: Vec<ChatChunk> = chunks.iter().map(|c| parsed(c)).collect();
    assert_eq!(seen, expected);
    let last = seen.last().unwrap();
    assert!(
        last.choices.is_empty() && last.usage.is_some(),
        "the usage chunk comes last"
    );
    // The stream assembles into what the plain call of the same answer returns.
    assert_eq!(response, parsed::<ChatResponse>(&answer.json()));
    let usage = response.usage.unwrap();
    assert_eq!(
        (usage.prompt_cache_hit_tokens, usage.prompt_cache_miss_tokens),
        (Some(10), Some(20))
    );
}

#[test]
fn reasoning_deltas_stream_and_assemble_with_reasoning_tokens() {
    let answer = Completion::reasoner(
        "9.11 has fewer tenths than 9.8, so 9.8 is greater.",
        "9.8 is greater.",
    );
    let server = DeepSeekServer::start(vec![answer.stream(), answer.reply()]);
    let model = provider(&server);
    let (result, seen) = streamed(&model, &ChatRequest::user("9.11 and 9.8, which is greater?"));
    let response = result.unwrap();

    let thought: String = seen
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.reasoning_content.as_deref())
        .collect();
    assert_eq!(thought, answer.reasoning.as_deref().unwrap());
    let message = &response.choices[0].message;
    assert_eq!(message.reasoning_content, answer.reasoning);
    assert_eq!(response.text(), "9.8 is greater.");
    let details = response
        .usage
        .as_ref()
        .unwrap()
        .completion_tokens_details
        .as_ref()
        .unwrap();
    assert_eq!(details.reasoning_tokens, Some(answer.reasoning_tokens()));
    // The plain call of the same answer says the same.
    assert_eq!(plain(&model, &ChatRequest::user("again")).unwrap(), response);
}

#[test]
fn tool_calls_in_a_stream_assemble() {
    let answer = Completion::new("Let me check the weather.")
        .tool_call(
            "call_00_kw66qNnNto11bSfJVIdlV5Oo",
            "get_weather",
            r#"{"location": "Hangzhou", "date": "2026-04-20"}"#,
        )
        .tool_call("call_01_H2SCW6136vWJGq9SQlBuhVt4", "get_date", "{}");
    let server = DeepSeekServer::start(vec![answer.stream()]);
    let mut request = ChatRequest::user("Weather in Hangzhou tomorrow?");
    request.tools = Some(vec![
        json!({"type": "function", "function": {"name": "get_weather", "parameters": {}}}),
    ]);
    let (result, seen) = streamed(&provider(&server), &request);
    let response = result.unwrap();

    assert!(
        seen.iter()
            .filter(|c| c.choices.iter().any(|c| c.delta.tool_calls.is_some()))
            .count()
            > 2
    );
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    for (call, want) in calls.iter().zip(&answer.tool_calls) {
        assert_eq!(call["id"], want.id.as_str());
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], want.name.as_str());
        assert_eq!(call["function"]["arguments"], want.arguments.as_str());
    }
    assert_eq!(response.text(), "Let me check the weather.");
}

#[test]
fn the_request_on_the_wire_has_the_upstream_model_stream_flags_key_and_every_field() {
    let answer = Completion::new("ok");
    let server = DeepSeekServer::start(vec![answer.reply(), answer.stream()]);
    let model = DeepSeekProvider::new(DeepSeekSettings {
        upstream_model: "deepseek-v4-flash".into(),
        base_url: format!("{}/", server.base_url()),
        ..settings(&server)
    })
    .unwrap();
    let text = r#"{
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief.", "x_vendor_tag": 7},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "reasoning_content": "need a tool",
             "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "Cloudy 7~13°C"},
            {"role": "assistant", "content": "Cloudy.", "reasoning_content": "summarise the tool result"},
            {"role": "user", "content": "And a joke?"},
            {"role": "assistant", "content": "No.", "reasoning_content": "plain turn, not needed back"},
            {"role": "user", "content": "Please?"}
        ],
        "temperature": 0.5,
        "max_tokens": 256,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "thinking": {"type": "enabled"},
        "reasoning_effort": "high",
        "frequency_penalty": 0.25,
        "x_future_field": {"nested": [1, 2]}
    }"#;
    let request: ChatRequest = parsed(text);
    assert_eq!(request.stop, Some(Stop::Many(vec!["END".into()])));
    plain(&model, &request).unwrap();
    streamed(&model, &request).0.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for (sent, stream) in requests.iter().zip([false, true]) {
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str()),
            ("POST", "/chat/completions")
        );
        assert_eq!(
            sent.header("Authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(sent.header("Content-Type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        let mut want: Value = parsed(text);
        want["model"] = json!("deepseek-v4-flash");
        want["stream"] = json!(stream);
        if stream {
            want["stream_options"] = json!({"include_usage": true});
        }
        // reasoning_content goes back in the turn with a tool call and is
        // dropped from the plain turn (DeepSeek's thinking-mode rules).
        want["messages"][6]
            .as_object_mut()
            .unwrap()
            .remove("reasoning_content");
        assert_eq!(body, want, "stream={stream}");
    }
    assert_eq!(requests[1].header("Accept"), Some("text/event-stream"));
}

#[test]
fn no_key_sends_no_authorization_header() {
    let server = DeepSeekServer::start(vec![Completion::new("ok").reply()]);
    let model = DeepSeekProvider::new(DeepSeekSettings {
        api_key: None,
        ..settings(&server)
    })
    .unwrap();
    plain(&model, &ChatRequest::user("hi")).unwrap();
    assert_eq!(server.requests()[0].header("Authorization"), None);
}

/// One call against one scripted error status: the error, and that exactly
/// one request was made (no retry).
fn refused(reply: Reply, label: &str) -> ModelError {
    let server = DeepSeekServer::start(vec![reply, Completion::new("unused").reply()]);
    let model = DeepSeekProvider::new(DeepSeekSettings {
        provider_label: label.into(),
        ..settings(&server)
    })
    .unwrap();
    let error = plain(&model, &ChatRequest::user("hi")).unwrap_err();
    assert_eq!(server.request_count(), 1, "{error} must not be retried");
    error
}

#[test]
fn a_400_is_a_bad_request_with_the_apis_message() {
    let error = refused(
        Reply::error(
            400,
            "Failed to deserialize the JSON body into the target type: messages[0]: missing field `role`",
        ),
        "deepseek",
    );
    match &error {
        ModelError::BadRequest(m) => assert!(
            m.contains("missing field `role`") && m.contains("HTTP 400"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_401_says_which_key_is_wrong() {
    let error = refused(Reply::status(401), "deepseek");
    let ModelError::Auth(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.starts_with("DEEPSEEK_API_KEY is wrong or missing"),
        "{message}"
    );
    assert!(
        message.contains("Authentication Fails"),
        "the API's own words: {message}"
    );
    assert!(!message.contains(KEY), "the key is never shown: {message}");

    let error = refused(Reply::status(401), "openai");
    let ModelError::Auth(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("API key of model \"chat\" is wrong or missing"),
        "{message}"
    );
    assert!(!message.contains("DEEPSEEK_API_KEY"), "{message}");
}

#[test]
fn a_402_is_insufficient_balance() {
    let error = refused(Reply::status(402), "deepseek");
    assert!(
        matches!(&error, ModelError::InsufficientBalance(m) if m.contains("Insufficient Balance")),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("insufficient balance"), "{error}");
}

#[test]
fn a_422_is_a_bad_request_with_the_apis_message() {
    let error = refused(
        Reply::error(
            422,
            "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]",
        ),
        "deepseek",
    );
    assert!(
        matches!(&error, ModelError::BadRequest(m) if m.contains("valid range of max_tokens")),
        "{error:?}"
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_a_context_overflow() {
    let error = refused(
        Reply::error(
            400,
            "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens \
             (139000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
        ),
        "deepseek",
    );
    assert_eq!(
        error,
        ModelError::ContextOverflow {
            model: "chat".into(),
            prompt_tokens: 139000,
            context: 131072
        }
    );
}

#[test]
fn a_429_with_retry_after_is_retried_after_the_wait() {
    let server = DeepSeekServer::start(vec![
        Reply::status(429).retry_after(1),
        Completion::new("ok").reply(),
    ]);
    let started = Instant::now();
    let response = plain(&provider(&server), &ChatRequest::user("hi")).unwrap();
    assert_eq!(response.text(), "ok");
    assert_eq!(server.request_count(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
}

#[test]
fn a_503_with_an_http_date_retry_after_is_retried() {
    let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(1));
    let server = DeepSeekServer::start(vec![
        Reply::status(503).header("Retry-After", &when),
        Completion::new("ok").reply(),
    ]);
    assert_eq!(
        plain(&provider(&server), &ChatRequest::user("hi"))
            .unwrap()
            .text(),
        "ok"
    );
    assert_eq!(server.request_count(), 2);
}

#[test]
fn a_429_whose_retry_after_passes_the_deadline_fails_at_once() {
    let server = DeepSeekServer::start(vec![Reply::status(429).retry_after(30)]);
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let error = provider(&server)
        .chat(
            &ChatRequest::user("hi"),
            ModelCall {
                cancel: &cancel,
                deadline: Some(Instant::now() + Duration::from_secs(2)),
            },
            None,
        )
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "did not sleep: {:?}",
        started.elapsed()
    );
    match error {
        ModelError::RateLimited { message, retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)));
            assert!(message.contains("Rate Limit Reached"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_500_and_503_are_retried_until_max_retries_then_unavailable() {
    let server = DeepSeekServer::start(vec![Reply::status(500), Reply::status(503), Reply::status(503)]);
    let error = plain(&provider(&server), &ChatRequest::user("hi")).unwrap_err();
    assert_eq!(server.request_count(), 3, "one try and max_retries = 2 retries");
    match error {
        ModelError::Unavailable { status, message } => {
            assert_eq!(status, 503);
            assert!(
                message.contains("Server Overloaded") && message.contains("after 3 attempts"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_connection_dropped_mid_stream_is_a_connection_error_and_not_retried() {
    let answer = Completion::new("one two three four five six");
    let chunks = answer.chunks();
    // Cut in the middle of the third chunk's line.
    let cut = chunks[..2]
        .iter()
        .map(|c| format!("data: {c}\n\n").len())
        .sum::<usize>()
        + 20;
    let server = DeepSeekServer::start(vec![answer.stream().drop_after(cut), answer.stream()]);
    let (result, seen) = streamed(&provider(&server), &ChatRequest::user("hi"));
    assert_eq!(seen.len(), 2, "the sink saw the chunks before the drop");
    match result.unwrap_err() {
        ModelError::Connection { url, message } => {
            assert_eq!(url, format!("{}/chat/completions", server.base_url()));
            assert!(message.contains("after 2 streamed chunk(s)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.request_count(), 1, "output was seen: no retry");
}

#[test]
fn a_connection_dropped_before_the_first_chunk_is_retried() {
    let answer = Completion::new("second time lucky");
    let server = DeepSeekServer::start(vec![
        answer.stream().keep_alive(1, Duration::ZERO).drop_after(5),
        answer.stream(),
        answer.reply().drop_after(30),
        answer.reply(),
    ]);
    let model = provider(&server);
    let (result, seen) = streamed(&model, &ChatRequest::user("hi"));
    assert_eq!(result.unwrap().text(), "second time lucky");
    assert_eq!(
        seen.len(),
        answer.chunks().len(),
        "the sink saw only the good attempt"
    );
    assert_eq!(server.request_count(), 2);
    assert_eq!(
        plain(&model, &ChatRequest::user("hi")).unwrap().text(),
        "second time lucky"
    );
    assert_eq!(server.request_count(), 4);
}

/// One chat call with `deadline_in` to go, optionally streamed into
/// `sink`: its result and how long it took.
fn timed_chat(
    model: &DeepSeekProvider,
    cancel: &CancellationToken,
    deadline_in: Duration,
    sink: Option<&mut dyn FnMut(&ChatChunk)>,
) -> (Result<ChatResponse, ModelError>, Duration) {
    let started = Instant::now();
    let call = ModelCall {
        cancel,
        deadline: Some(Instant::now() + deadline_in),
    };
    let result = model.chat(&ChatRequest::user("hi"), call, sink);
    (result, started.elapsed())
}

/// A server whose stream sends two chunks, then nothing for 10 s.
fn stalled_stream_server() -> DeepSeekServer {
    let mut events = Completion::new("a b c d").events();
    events.insert(2, Event::Pause(Duration::from_secs(10)));
    DeepSeekServer::start(vec![Reply::sse(events)])
}

#[test]
fn a_slow_server_past_the_deadline_is_deadline_exceeded() {
    let server = DeepSeekServer::start(vec![Completion::new("late")
        .reply()
        .delay(Duration::from_secs(10))]);
    let cancel = CancellationToken::new();
    let (result, took) = timed_chat(&provider(&server), &cancel, Duration::from_millis(500), None);
    assert_eq!(result.unwrap_err(), ModelError::DeadlineExceeded);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[test]
fn a_stream_that_stalls_past_the_deadline_is_deadline_exceeded() {
    let server = stalled_stream_server();
    let cancel = CancellationToken::new();
    let mut seen = 0;
    let mut sink = |_: &ChatChunk| seen += 1;
    let (result, took) = timed_chat(
        &provider(&server),
        &cancel,
        Duration::from_millis(500),
        Some(&mut sink),
    );
    assert_eq!(result.unwrap_err(), ModelError::DeadlineExceeded);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(seen, 2);
}

#[test]
fn max_concurrency_bounds_the_calls_in_flight_over_all_callers() {
    // Eight callers at once, two places: the server never sees more than two
    // connections (the pool reuses them), and the calls run in four rounds.
    const CALLERS: usize = 8;
    const DELAY: Duration = Duration::from_millis(200);
    let server = DeepSeekServer::repeating(Completion::new("ok").reply().delay(DELAY));
    let model = Arc::new(
        DeepSeekProvider::new(DeepSeekSettings {
            max_concurrency: 2,
            ..settings(&server)
        })
        .unwrap(),
    );
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || plain(&model, &ChatRequest::user("hi")).map(|r| r.text()))
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap().unwrap(), "ok");
    }
    assert!(
        server.connection_count() <= 2,
        "{} connections: more than 2 calls ran at once",
        server.connection_count()
    );
    assert!(started.elapsed() >= DELAY * 4 - Duration::from_millis(50));
    assert!(matches!(
        DeepSeekProvider::new(DeepSeekSettings {
            max_concurrency: 0,
            ..settings(&server)
        }),
        Err(ModelError::Provider { message, .. }) if message.contains("max_concurrency")
    ));
}

/// Cancels `cancel` after `after`, from another thread.
fn cancel_after(cancel: &CancellationToken, after: Duration) -> std::thread::JoinHandle<()> {
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        cancel.cancel();
    })
}

#[test]
fn a_cancel_aborts_a_request_blocked_on_a_silent_server() {
    // The server holds the answer for 10 s and sends nothing meanwhile: the
    // read is blocked in the socket when the cancel comes.
    let server = DeepSeekServer::start(vec![
        Completion::new("late").reply().delay(Duration::from_secs(10)),
        Completion::new("next").reply(),
    ]);
    let model = provider(&server);
    let cancel = CancellationToken::new();
    let canceller = cancel_after(&cancel, Duration::from_millis(200));
    let (result, took) = timed_chat(&model, &cancel, Duration::from_secs(30), None);
    canceller.join().unwrap();
    assert_eq!(result.unwrap_err(), ModelError::Cancelled);
    assert!(
        took < Duration::from_secs(5),
        "the cancel was noticed after {took:?}"
    );
    // The aborted connection is not pooled: the next call gets its answer.
    assert_eq!(plain(&model, &ChatRequest::user("hi")).unwrap().text(), "next");
}

#[test]
fn a_cancel_aborts_a_stream_stalled_between_chunks() {
    let server = stalled_stream_server();
    let cancel = CancellationToken::new();
    let canceller = cancel_after(&cancel, Duration::from_millis(200));
    let mut seen = 0;
    let mut sink = |_: &ChatChunk| seen += 1;
    let (result, took) = timed_chat(
        &provider(&server),
        &cancel,
        Duration::from_secs(30),
        Some(&mut sink),
    );
    canceller.join().unwrap();
    assert_eq!(result.unwrap_err(), ModelError::Cancelled);
    assert!(
        took < Duration::from_secs(5),
        "the cancel was noticed after {took:?}"
    );
    assert_eq!(seen, 2, "the chunks before the stall reached the sink");
}

#[test]
fn an_unreachable_base_url_is_a_connection_error_naming_it() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let base_url = format!("http://{closed}/v1");
    let model = DeepSeekProvider::new(DeepSeekSettings {
        base_url: base_url.clone(),
        max_retries: 1,
        retry_backoff: Duration::from_millis(10),
        ..DeepSeekSettings::default()
    })
    .unwrap();
    let error = plain(&model, &ChatRequest::user("hi")).unwrap_err();
    match &error {
        ModelError::Connection { url, message } => {
            assert_eq!(url, &format!("{base_url}/chat/completions"));
            assert!(message.contains("after 2 attempts"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains(&base_url), "{error}");
}

#[test]
fn malformed_json_in_a_200_is_a_protocol_error() {
    let server = DeepSeekServer::start(vec![Reply::json(200, r#"{"id":"x","choices":[{"index":0,"#)]);
    let error = plain(&provider(&server), &ChatRequest::user("hi")).unwrap_err();
    assert!(
        matches!(&error, ModelError::Protocol(m) if m.contains(r#"{\"id\":\"x\""#)),
        "{error:?}"
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_non_json_data_line_is_a_protocol_error() {
    let mut events = Completion::new("a b").events();
    events.insert(1, Event::Data("{\"id\": unquoted}".into()));
    let server = DeepSeekServer::start(vec![Reply::sse(events)]);
    let (result, seen) = streamed(&provider(&server), &ChatRequest::user("hi"));
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ModelError::Protocol(m) if m.contains("unquoted")),
        "{error:?}"
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_stream_without_done_is_a_protocol_error() {
    let mut events = Completion::new("a b").events();
    assert_eq!(events.pop(), Some(Event::Done));
    let server = DeepSeekServer::start(vec![Reply::sse(events)]);
    let (result, seen) = streamed(&provider(&server), &ChatRequest::user("hi"));
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ModelError::Protocol(m) if m.contains("without `data: [DONE]`")),
        "{error:?}"
    );
    assert_eq!(seen.len(), Completion::new("a b").chunks().len());
}

#[test]
fn an_error_body_instead_of_a_stream_is_reported() {
    let server = DeepSeekServer::start(vec![Reply::sse(vec![Event::Raw(
        "{\"error\":{\"message\":\"upstream exploded\",\"type\":\"server_error\"}}\n".into(),
    )])]);
    let error = streamed(&provider(&server), &ChatRequest::user("hi"))
        .0
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::Protocol(m) if m.contains("upstream exploded")),
        "{error:?}"
    );
}

#[test]
fn cancelling_mid_stream_returns_cancelled() {
    let mut events = Completion::new("one two three four").events();
    events.insert(3, Event::Pause(Duration::from_secs(10)));
    let server = DeepSeekServer::start(vec![Reply::sse(events)]);
    let cancel = CancellationToken::new();
    let mut seen = 0;
    let mut sink = |_: &ChatChunk| {
        seen += 1;
        if seen == 2 {
            cancel.cancel();
        }
    };
    let started = Instant::now();
    let error = provider(&server)
        .chat(
            &ChatRequest::user("hi"),
            ModelCall {
                cancel: &cancel,
                deadline: None,
            },
            Some(&mut sink),
        )
        .unwrap_err();
    assert_eq!(error, ModelError::Cancelled);
    assert_eq!(seen, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_cancel_while_queued_is_noticed_at_the_next_keep_alive() {
    let mut events = Vec::new();
    for _ in 0..100 {
        events.push(Event::KeepAlive);
        events.push(Event::Pause(Duration::from_millis(50)));
    }
    let server = DeepSeekServer::start(vec![Reply::sse(events)]);
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let mut sink = |_: &ChatChunk| {};
    let error = provider(&server)
        .chat(
            &ChatRequest::user("hi"),
            ModelCall {
                cancel: &cancel,
                deadline: None,
            },
            Some(&mut sink),
        )
        .unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error, ModelError::Cancelled);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_cancel_during_backoff_stops_the_retries() {
    let server = DeepSeekServer::start(vec![Reply::status(503).retry_after(5)]);
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let error = provider(&server)
        .chat(
            &ChatRequest::user("hi"),
            ModelCall {
                cancel: &cancel,
                deadline: None,
            },
            None,
        )
        .unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error, ModelError::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn list_models_returns_the_servers_ids() {
    let server = DeepSeekServer::start(vec![
        Reply::status(503),
        Reply::models(&["deepseek-v4-flash", "deepseek-v4-pro"]),
    ]);
    let cancel = CancellationToken::new();
    let ids = provider(&server)
        .list_models(ModelCall {
            cancel: &cancel,
            deadline: None,
        })
        .unwrap();
    assert_eq!(ids, ["deepseek-v4-flash", "deepseek-v4-pro"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the 503 was retried");
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("GET", "/models")
    );
    assert_eq!(
        requests[1].header("Authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[test]
fn info_describes_the_model() {
    let server = DeepSeekServer::start(vec![]);
    let model = DeepSeekProvider::new(DeepSeekSettings {
        provider_label: "openai".into(),
        upstream_model: "qwen2.5-7b-instruct".into(),
        context_length: Some(32768),
        ..settings(&server)
    })
    .unwrap();
    let info = model.info();
    assert_eq!(
        (info.name.as_str(), info.provider.as_str(), info.upstream.as_str()),
        ("chat", "openai", "qwen2.5-7b-instruct")
    );
    assert_eq!(info.context_length, Some(32768));
    assert!(info.loaded);
    assert_eq!(server.request_count(), 0, "info makes no request");
}

#[test]
fn an_assistant_message_from_a_response_goes_back_as_the_api_wants() {
    // A thinking-mode tool loop: the response's message (with its
    // reasoning_content and tool_calls) is appended as is and sent back.
    let first = Completion::reasoner("I need the date first.", "").tool_call("call_00_a", "get_date", "{}");
    let second = Completion::reasoner("Now answer.", "It is 2026-04-19.");
    let server = DeepSeekServer::start(vec![first.reply(), second.reply()]);
    let model = provider(&server);
    let mut request = ChatRequest::user("What is the date?");
    let response = plain(&model, &request).unwrap();
    request.messages.push(response.choices[0].message.clone());
    request.messages.push(Message {
        role: "tool".into(),
        tool_call_id: Some("call_00_a".into()),
        content: Some(Content::Text("2026-04-19".into())),
        ..Message::default()
    });
    plain(&model, &request).unwrap();
    let sent: Value = serde_json::from_slice(&server.requests()[1].body).unwrap();
    assert_eq!(sent["messages"][1]["reasoning_content"], "I need the date first.");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_00_a");
}
