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
    let host = HostBuilder::new().model("recorder", model.clone()).build();
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
    let host = HostBuilder::new().model("recorder", model.clone()).build();
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
