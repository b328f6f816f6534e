//! The host API as plugins see it: sessions, infer through the pipeline,
//! cancellation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiplug_host::models::wire::Choice;
use aiplug_host::models::{
    ChatModel, ChatRequest, ChatResponse, ChunkSink, Message, ModelCall, ModelError, ModelInfo,
};
use aiplug_host::{CallError, CallOptions, HostBuilder};
use serde_json::Value;

use crate::{behaviour, fixture, host, tempdir};

#[test]
fn session_values_are_scoped_and_end_with_the_session() {
    let dir = tempdir();
    let host = host();
    host.load(&behaviour(dir.path(), "b", "")).unwrap();
    let s1 = CallOptions::new().session("s1");
    let s2 = CallOptions::new().session("s2");
    assert_eq!(&*host.invoke("host-api", b"set colour blue", &s1).unwrap(), b"ok");
    assert_eq!(&*host.invoke("host-api", b"get colour", &s1).unwrap(), b"blue");
    assert_eq!(&*host.invoke("host-api", b"get colour", &s2).unwrap(), b"<none>");

    let error = host
        .invoke("host-api", b"get colour", &CallOptions::new())
        .unwrap_err();
    assert!(error.to_string().contains("no session"), "{error}");

    assert_eq!(host.end_session("s1"), vec!["test-behaviour".to_string()]);
    assert_eq!(&*host.invoke("host-api", b"get colour", &s1).unwrap(), b"<none>");

    host.invoke("host-api", b"set k v", &s2).unwrap();
    host.invoke("host-api", b"delete k", &s2).unwrap();
    assert_eq!(&*host.invoke("host-api", b"get k", &s2).unwrap(), b"<none>");
}

/// A chat model defined by the test through the host's extension point: it
/// records the requests it sees and answers with the last user message
/// reversed.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<ChatRequest>>,
}

impl ChatModel for Recorder {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: "test".into(),
            loaded: true,
            ..ModelInfo::default()
        }
    }

    fn chat(
        &self,
        request: &ChatRequest,
        call: ModelCall<'_>,
        _stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        if call.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        self.seen.lock().unwrap().push(request.clone());
        let last = request.messages.last().map(Message::text).unwrap_or_default();
        let mut response = ChatResponse::default();
        response.choices.push(Choice {
            message: Message::new("assistant", last.chars().rev().collect::<String>()),
            ..Choice::default()
        });
        Ok(response)
    }
}

#[test]
fn plugin_infer_goes_through_other_plugins_filters_but_not_its_own() {
    let dir = tempdir();
    let model = Arc::new(Recorder::default());
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .model("recorder", model.clone())
        .build();
    // The calling plugin tags model names in its own filter: if it saw its
    // own call, the model name would become "recorder-tagged" and fail.
    host.load(&behaviour(dir.path(), "caller", "tag = \"-tagged\""))
        .unwrap();
    host.load(&fixture(dir.path(), "stamp", &[], "priority = 5\n"))
        .unwrap();

    let out = host
        .invoke("host-api", b"infer recorder hello", &CallOptions::new())
        .unwrap();
    let response: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(response["choices"][0]["message"]["content"], "olleh");
    let seen = model.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].model, "recorder");
    assert_eq!(
        seen[0].extra["stamp"], 1,
        "the other plugin's filter ran: {:?}",
        seen[0]
    );
}

#[test]
fn plugin_infer_needs_the_model_capability() {
    let dir = tempdir();
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .model("recorder", Arc::new(Recorder::default()))
        .build();
    let lib = aiplug_testkit::cargo_plugin("test-behaviour");
    let manifest = aiplug_testkit::manifest(
        "test-behaviour",
        "libtest_behaviour.so",
        "[capabilities]\nmodels = [\"other-*\"]\n",
    );
    let plugin = aiplug_testkit::stage(dir.path(), "nocap", &manifest, &lib, "libtest_behaviour.so");
    host.load(&plugin).unwrap();
    let error = host
        .invoke("host-api", b"infer recorder hi", &CallOptions::new())
        .unwrap_err();
    assert!(
        error.to_string().contains("may not call model \"recorder\""),
        "{error}"
    );
    assert!(error.to_string().contains("[capabilities]"), "{error}");
}

#[test]
fn host_infer_runs_request_filters_model_and_response_filters() {
    let dir = tempdir();
    let model = Arc::new(Recorder::default());
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .model("recorder", model.clone())
        .build();
    host.load(&behaviour(dir.path(), "b", "response_suffix = \" [checked]\""))
        .unwrap();
    let response = host
        .infer(&ChatRequest::user("abc"), &CallOptions::new(), None)
        .unwrap();
    assert_eq!(response.text(), "cba [checked]");

    let mut request = ChatRequest::user("x");
    request.model = "missing".into();
    let error = host.infer(&request, &CallOptions::new(), None).unwrap_err();
    assert!(
        matches!(error, CallError::Model(ModelError::UnknownModel { .. })),
        "{error}"
    );
    assert!(
        error.to_string().contains("recorder"),
        "lists the configured models: {error}"
    );
}

#[test]
fn cancellation_and_deadlines_reach_native_plugins() {
    let dir = tempdir();
    let host = host();
    host.load(&behaviour(dir.path(), "b", "")).unwrap();

    let options = CallOptions::new().timeout(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let error = host.invoke("sleep", b"20000", &options).unwrap_err();
    assert!(matches!(error, CallError::Cancelled { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the plugin saw the deadline"
    );

    let options = CallOptions::new();
    let cancel = options.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        cancel.cancel();
    });
    let error = host.invoke("sleep", b"20000", &options).unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(error, CallError::Cancelled { .. }), "{error}");
    // The plugin is fine afterwards.
    assert_eq!(
        &*host.invoke("sleep", b"1", &CallOptions::new()).unwrap(),
        b"slept"
    );
}

/// A model that streams its answer in two chunks.
struct Streamer;

impl ChatModel for Streamer {
    fn info(&self) -> ModelInfo {
        ModelInfo::default()
    }

    fn chat(
        &self,
        _request: &ChatRequest,
        _call: ModelCall<'_>,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        let chunk = |content: Option<&str>, finish: Option<&str>| aiplug_host::models::ChatChunk {
            id: "s".into(),
            choices: vec![aiplug_host::models::wire::ChunkChoice {
                delta: aiplug_host::models::wire::Delta {
                    content: content.map(str::to_string),
                    ..Default::default()
                },
                finish_reason: finish.map(str::to_string),
                ..Default::default()
            }],
            ..Default::default()
        };
        let chunks = [chunk(Some("secret "), None), chunk(Some("answer"), Some("stop"))];
        let mut assembler = aiplug_host::models::ChunkAssembler::new();
        for c in &chunks {
            assembler.push(c);
        }
        if let Some(sink) = stream {
            chunks.iter().for_each(sink);
        }
        Ok(assembler.finish())
    }
}

fn streamed_text(host: &aiplug_host::Host) -> (String, ChatResponse) {
    let mut text = String::new();
    let mut sink = |chunk: &aiplug_host::models::ChatChunk| {
        for choice in &chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
        }
    };
    let response = host
        .infer(&ChatRequest::user("hi"), &CallOptions::new(), Some(&mut sink))
        .unwrap();
    (text, response)
}

#[test]
fn streaming_cannot_bypass_a_response_filter() {
    let dir = tempdir();
    // No response filter: chunks pass as the model makes them.
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .model("streamer", Arc::new(Streamer))
        .build();
    assert_eq!(streamed_text(&host).0, "secret answer");

    // With one, the streamed text is the filtered text, not the raw answer.
    host.load(&behaviour(dir.path(), "b", "response_suffix = \" [checked]\""))
        .unwrap();
    let (text, response) = streamed_text(&host);
    assert_eq!(text, "secret answer [checked]");
    assert_eq!(response.text(), text);
}

#[test]
fn reload_swaps_versions_and_a_refused_reload_keeps_the_old_one() {
    let dir = tempdir();
    let host = host();
    let path = behaviour(dir.path(), "b", "");
    host.load(&path).unwrap();
    let before = host.plugins();
    let info = host.reload("test-behaviour").unwrap();
    assert_eq!(info.id, "test-behaviour");
    assert_eq!(host.plugins().len(), before.len(), "replaced, not added");
    assert_eq!(
        &*host.invoke("echo", b"still here", &CallOptions::new()).unwrap(),
        b"still here"
    );

    // A broken artefact: the reload is refused at a load stage, the loaded
    // version keeps serving, and the diagnosis is listed.
    std::fs::write(path.join("libtest_behaviour.so"), b"not a library").unwrap();
    let error = host.reload("test-behaviour").unwrap_err();
    assert!(matches!(error, aiplug_host::ReloadError::Load(_)), "{error}");
    assert_eq!(
        &*host.invoke("echo", b"old one", &CallOptions::new()).unwrap(),
        b"old one"
    );
    let listed = host.plugins();
    let plugin = listed.iter().find(|p| p.id == "test-behaviour").unwrap();
    assert_eq!(plugin.state, aiplug_host::PluginState::Active);
    let diagnosis = plugin.diagnosis.as_deref().unwrap_or_default();
    assert!(diagnosis.contains("fix:"), "{diagnosis}");

    assert!(matches!(
        host.reload("nobody").unwrap_err(),
        aiplug_host::ReloadError::NotLoaded(_)
    ));
}

#[derive(Default)]
struct Counting {
    hooks: Mutex<Vec<(String, &'static str, bool)>>,
    models: Mutex<Vec<String>>,
}

impl aiplug_host::Observer for Counting {
    fn hook_call(&self, plugin: &str, hook: &'static str, _elapsed: Duration, outcome: &'static str) {
        self.hooks
            .lock()
            .unwrap()
            .push((plugin.to_string(), hook, outcome == "ok"));
    }

    fn model_call(&self, model: &str, _elapsed: Duration, _result: Result<&ChatResponse, &ModelError>) {
        self.models.lock().unwrap().push(model.to_string());
    }
}

#[test]
fn the_observer_sees_every_hook_and_model_call_and_stats_add_up() {
    let dir = tempdir();
    let observer = Arc::new(Counting::default());
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .model("recorder", Arc::new(Recorder::default()))
        .observer(observer.clone())
        .build();
    host.load(&behaviour(dir.path(), "b", "reject_word = \"forbidden\""))
        .unwrap();
    let options = CallOptions::new();
    host.infer(&ChatRequest::user("fine"), &options, None).unwrap();
    assert_eq!(options.stats.model_calls(), 1);
    assert!(options.stats.first_model_start().is_some());
    let rejected = host
        .infer(&ChatRequest::user("forbidden"), &CallOptions::new(), None)
        .unwrap_err();
    assert!(matches!(rejected, CallError::Rejected { .. }), "{rejected}");
    let hooks = observer.hooks.lock().unwrap().clone();
    let on_request: Vec<bool> = hooks
        .iter()
        .filter(|(p, h, _)| p == "test-behaviour" && *h == "on_request")
        .map(|(_, _, ok)| *ok)
        .collect();
    // A rejection is the filter doing its job: an ok call, not an error.
    assert_eq!(on_request, [true, true], "{hooks:?}");
    assert!(hooks.iter().any(|(_, h, _)| *h == "on_response"), "{hooks:?}");
    assert_eq!(*observer.models.lock().unwrap(), ["recorder"]);

    // A plugin's own infer counts into the call that invoked it.
    let options = CallOptions::new();
    host.invoke("host-api", b"infer recorder hello", &options)
        .unwrap();
    assert_eq!(options.stats.model_calls(), 1);
}
