//! Tests of models::local on the real default model (SmolLM2-135M-Instruct
//! Q4_1), through the `ChatModel` trait the way the host calls it.
//!
//! The tests that run the model hold [`serial`]: llama.cpp's OpenMP threads
//! spin while they wait, so two generations on a 2-core machine slow each
//! other down many times over, and the memory test needs a quiet process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aiplug_host::models::local::{LocalModel, LocalSettings, BASE_MODEL_NOTE};
use aiplug_host::models::pull::{SMOLLM2_FILE, SMOLLM2_SHA256, SMOLLM2_SIZE};
use aiplug_host::models::wire::{ChatChunk, Stop};
use aiplug_host::models::{ChatModel, ChatRequest, Message, ModelCall, ModelError};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The default model in the models directory; the tests fail (never skip)
/// without it.
fn model_path() -> PathBuf {
    let path = aiplug_host::models::weights::models_dir().join(SMOLLM2_FILE);
    assert!(
        path.is_file(),
        "{} is missing: run `aiplug models pull smollm2` (or scripts/test.sh)",
        path.display()
    );
    path
}

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn open(name: &str) -> LocalModel {
    LocalModel::open(LocalSettings::new(name, model_path())).expect("open the default model")
}

/// A short greedy request.
fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..ChatRequest::user(prompt)
    }
}

/// Runs `f` with a live call (no deadline).
fn chat(model: &LocalModel, request: &ChatRequest) -> Result<aiplug_host::models::ChatResponse, ModelError> {
    let cancel = CancellationToken::new();
    model.chat(
        request,
        ModelCall {
            cancel: &cancel,
            deadline: None,
        },
        None,
    )
}

/// Runs a streamed call, returning the chunks and the response.
fn stream(model: &LocalModel, request: &ChatRequest) -> (Vec<ChatChunk>, aiplug_host::models::ChatResponse) {
    let cancel = CancellationToken::new();
    let mut chunks = Vec::new();
    let response = model
        .chat(
            request,
            ModelCall {
                cancel: &cancel,
                deadline: None,
            },
            Some(&mut |c| chunks.push(c.clone())),
        )
        .expect("chat");
    (chunks, response)
}

fn file_error(result: Result<LocalModel, ModelError>) -> (String, String) {
    match result {
        Err(ModelError::ModelFile { path, message }) => (path, message),
        other => panic!("expected a ModelFile error, got {other:?}"),
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A copy of the model with the chat template key renamed (same length, so
/// the layout is unchanged): a model without a chat template.
fn without_template(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(model_path()).unwrap();
    let key = b"tokenizer.chat_template";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the model has a chat template");
    bytes[at + key.len() - 1] = b'X';
    let path = dir.join("no-template.gguf");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_missing_model_file_says_how_to_get_it() {
    let dir = crate::tempdir();
    let path = dir.path().join("nope.gguf");
    let (shown, message) = file_error(LocalModel::open(LocalSettings::new("m", &path)));
    assert_eq!(shown, path.display().to_string());
    assert!(message.contains("not found"), "{message}");
    assert!(message.contains("aiplug models pull"), "{message}");
}

#[test]
fn a_file_that_is_not_gguf_is_refused() {
    let dir = crate::tempdir();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, "<html>404 Not Found</html>").unwrap();
    let (_, message) = file_error(LocalModel::open(LocalSettings::new("m", &path)));
    assert!(message.contains("not a GGUF file"), "{message}");
    let (_, message) = file_error(LocalModel::open(LocalSettings::new("m", dir.path())));
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn a_truncated_gguf_is_named_truncated() {
    let real = std::fs::read(model_path()).unwrap();
    let dir = crate::tempdir();
    // Cut in the metadata (the tokenizer), and in the tensor data.
    for len in [100_000usize, 50_000_000, real.len() - 1] {
        let path = dir.path().join(format!("cut-{len}.gguf"));
        std::fs::write(&path, &real[..len]).unwrap();
        let (_, message) = file_error(LocalModel::open(LocalSettings::new("m", &path)));
        assert!(message.contains("truncated"), "{len}: {message}");
        assert!(message.contains(&format!("the file is {len} bytes")), "{message}");
        assert!(message.contains("pull the model again"), "{message}");
    }
}

#[test]
fn a_gguf_with_another_sha256_than_configured_is_refused() {
    let settings = LocalSettings {
        sha256: Some("0".repeat(64)),
        ..LocalSettings::new("m", model_path())
    };
    let (_, message) = file_error(LocalModel::open(settings));
    assert!(
        message.contains(&format!("sha256 is {SMOLLM2_SHA256}")),
        "{message}"
    );
    assert!(message.contains(&"0".repeat(64)), "{message}");

    let right = LocalSettings {
        sha256: Some(SMOLLM2_SHA256.to_uppercase()),
        ..LocalSettings::new("m", model_path())
    };
    assert!(LocalModel::open(right).is_ok());
}

#[test]
fn bad_settings_are_refused_at_open() {
    for (settings, what) in [
        (
            LocalSettings {
                slots: 0,
                ..LocalSettings::new("m", model_path())
            },
            "slots",
        ),
        (
            LocalSettings {
                context_length: Some(0),
                ..LocalSettings::new("m", model_path())
            },
            "context_length",
        ),
    ] {
        match LocalModel::open(settings) {
            Err(ModelError::Provider { message, .. }) => assert!(message.contains(what), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn info_describes_the_model_before_and_after_loading() {
    let _serial = serial();
    let model = open("smol");
    let info = model.info();
    assert_eq!(info.name, "smol");
    assert_eq!(info.provider, "local");
    assert_eq!(info.upstream, SMOLLM2_FILE);
    // Trained with 8192; the default caps it at 4096.
    assert_eq!(info.context_length, Some(4096));
    assert_eq!(info.size_bytes, Some(SMOLLM2_SIZE));
    assert_eq!(info.sha256.as_deref(), Some(SMOLLM2_SHA256));
    assert!(info.notes.is_empty(), "{:?}", info.notes);
    assert!(!info.loaded);
    model.load().unwrap();
    assert!(model.info().loaded);
    assert_eq!(model.gguf().architecture.as_deref(), Some("llama"));

    let wide = LocalModel::open(LocalSettings {
        context_length: Some(8192),
        ..LocalSettings::new("wide", model_path())
    })
    .unwrap();
    assert_eq!(wide.info().context_length, Some(8192));
}

#[test]
fn max_tokens_zero_is_a_bad_request() {
    let model = open("smol");
    match chat(&model, &request("hi", 0)) {
        Err(ModelError::BadRequest(message)) => assert_eq!(message, "max_tokens must be at least 1"),
        other => panic!("{other:?}"),
    }
    assert!(!model.is_loaded(), "refused before loading anything");
}

#[test]
fn a_prompt_longer_than_the_context_is_a_context_overflow() {
    let _serial = serial();
    let model = LocalModel::open(LocalSettings {
        context_length: Some(64),
        ..LocalSettings::new("small-ctx", model_path())
    })
    .unwrap();
    let long = "the quick brown fox jumps over the lazy dog ".repeat(40);
    let err = chat(&model, &request(&long, 8)).unwrap_err();
    let ModelError::ContextOverflow {
        model: name,
        prompt_tokens,
        context,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(name, "small-ctx");
    assert_eq!(*context, 64);
    assert!(*prompt_tokens > 300, "{prompt_tokens}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{prompt_tokens} tokens")) && text.contains("64 tokens"),
        "{text}"
    );

    // A prompt that fits but leaves little room ends with `length`.
    let fits = chat(&model, &request("Hi", 1000)).unwrap();
    let usage = fits.usage.unwrap();
    assert!(usage.total_tokens <= 64, "{usage:?}");
}

#[test]
fn streams_role_then_content_then_finish_then_usage() {
    let _serial = serial();
    let model = open("smol");
    let mut req = request("What is the capital of France?", 12);
    req.stream_options = Some(json!({"include_usage": true}));
    let (chunks, response) = stream(&model, &req);

    let first = &chunks[0];
    assert_eq!(first.object, "chat.completion.chunk");
    assert_eq!(first.choices[0].delta.role.as_deref(), Some("assistant"));
    let usage_chunk = chunks.last().unwrap();
    assert!(usage_chunk.choices.is_empty());
    let usage = usage_chunk.usage.clone().expect("usage chunk");
    let finish = &chunks[chunks.len() - 2];
    let reason = finish.choices[0].finish_reason.as_deref();
    assert!(matches!(reason, Some("stop" | "length")), "{reason:?}");
    assert!(chunks.iter().all(|c| c.id == first.id));

    let streamed: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert!(!streamed.is_empty());
    assert_eq!(streamed, response.text());
    assert_eq!(response.object, "chat.completion");
    assert_eq!(response.choices[0].message.role, "assistant");
    assert_eq!(response.usage.as_ref(), Some(&usage));
    assert!(usage.prompt_tokens > 5 && usage.completion_tokens >= 1 && usage.completion_tokens <= 12);
    assert_eq!(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert!(response.extra["timings"]["prompt_ms"].as_f64().unwrap() > 0.0);

    // Without include_usage the stream ends with the finish chunk, and the
    // response still has usage.
    req.stream_options = None;
    let (chunks, response) = stream(&model, &req);
    assert!(chunks.last().unwrap().choices[0].finish_reason.is_some());
    assert!(chunks.iter().all(|c| c.usage.is_none()));
    assert_eq!(
        response.usage.unwrap().completion_tokens,
        usage.completion_tokens,
        "greedy repeats"
    );
}

#[test]
fn max_tokens_ends_with_length() {
    let _serial = serial();
    let model = open("smol");
    let mut req = request("Write a long story about a dragon.", 5);
    req.extra.insert("ignore_eos".into(), json!(true));
    let response = chat(&model, &req).unwrap();
    assert_eq!(response.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(response.usage.unwrap().completion_tokens, 5);
}

#[test]
fn stop_strings_end_generation_and_are_not_shown_even_split_across_tokens() {
    let _serial = serial();
    let model = open("smol");
    let req = request("Write a long story about a dragon.", 24);
    let full = chat(&model, &req).unwrap().text();
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 30, "{full:?}");
    // A stop string spanning several tokens from the middle of the text.
    let stop: String = chars[12..20].iter().collect();
    let expected = &full[..full.find(&stop).unwrap()];

    let mut with_stop = req.clone();
    with_stop.stop = Some(Stop::Many(vec!["never appears".into(), stop.clone()]));
    let (chunks, response) = stream(&model, &with_stop);
    assert_eq!(response.text(), expected);
    assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));
    let streamed: Vec<String> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(streamed.concat(), expected, "the stop string was never streamed");
}

#[test]
fn greedy_and_seeded_sampling_are_reproducible() {
    let _serial = serial();
    let model = open("smol");
    let greedy = request("Name three colors.", 10);
    assert_eq!(
        chat(&model, &greedy).unwrap().text(),
        chat(&model, &greedy).unwrap().text()
    );

    let mut seeded = request("Name three colors.", 10);
    seeded.temperature = Some(1.0);
    seeded.top_p = Some(1.0);
    seeded.extra.insert("seed".into(), json!(42));
    let a = chat(&model, &seeded).unwrap().text();
    assert_eq!(a, chat(&model, &seeded).unwrap().text());
    assert!(!a.is_empty());
}

#[test]
fn json_mode_gives_parseable_json_even_from_the_135m_model() {
    let _serial = serial();
    let model = open("smol");
    // The last two cannot finish in their budget: the JSON is closed for them.
    for (prompt, max_tokens) in [
        (
            "Describe a cat as a JSON object with the fields name and age.",
            64,
        ),
        ("Review this code: fn main() { let x = 1; }. Answer in JSON.", 48),
        ("hello", 3),
        ("List ten fruits with their colors as JSON.", 7),
    ] {
        let mut req = request(prompt, max_tokens);
        req.response_format = Some(json!({"type": "json_object"}));
        let (chunks, response) = stream(&model, &req);
        let text = response.text();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
        assert!(value.is_object(), "{text}");
        let streamed: String = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.delta.content.clone())
            .collect();
        assert_eq!(streamed, text);
        let finish = response.choices[0].finish_reason.as_deref();
        let usage = response.usage.unwrap();
        if usage.completion_tokens == u64::from(max_tokens) {
            assert_eq!(finish, Some("length"), "{text}");
        } else {
            assert_eq!(finish, Some("stop"), "{text}");
        }
    }
}

#[test]
fn cancellation_and_deadlines_stop_generation() {
    let _serial = serial();
    let model = open("smol");
    let mut req = request("Write a long story about a dragon.", 200);
    req.extra.insert("ignore_eos".into(), json!(true));

    // Cancelled mid-stream, after the third chunk.
    let cancel = CancellationToken::new();
    let mut seen = 0;
    let started = Instant::now();
    let err = model
        .chat(
            &req,
            ModelCall {
                cancel: &cancel,
                deadline: None,
            },
            Some(&mut |_| {
                seen += 1;
                if seen == 3 {
                    cancel.cancel();
                }
            }),
        )
        .unwrap_err();
    assert_eq!(err, ModelError::Cancelled);
    assert_eq!(seen, 3, "no chunk after the cancel");

    // A deadline in the middle of generation: at most the token being
    // worked on when it passed comes out after it (timing-independent, so
    // it holds on a loaded machine too).
    let fresh = CancellationToken::new();
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut stamps = Vec::new();
    let err = model
        .chat(
            &req,
            ModelCall {
                cancel: &fresh,
                deadline: Some(deadline),
            },
            Some(&mut |_| stamps.push(Instant::now())),
        )
        .unwrap_err();
    assert_eq!(err, ModelError::DeadlineExceeded);
    let after = stamps.iter().filter(|t| **t > deadline).count();
    assert!(after <= 1, "{after} chunks after the deadline");
    assert!(stamps.len() < 200, "stopped early ({} chunks)", stamps.len());
    assert!(started.elapsed() < Duration::from_secs(10));

    // Already cancelled: nothing runs.
    assert_eq!(
        model
            .chat(
                &req,
                ModelCall {
                    cancel: &cancel,
                    deadline: None
                },
                None
            )
            .unwrap_err(),
        ModelError::Cancelled
    );
}

#[test]
fn requests_beyond_the_slots_wait_and_give_up_at_their_deadline() {
    let _serial = serial();
    let model = LocalModel::open(LocalSettings {
        slots: 1,
        ..LocalSettings::new("one-slot", model_path())
    })
    .unwrap();
    model.load().unwrap();
    let mut long = request("Write a long story about a dragon.", 64);
    long.extra.insert("ignore_eos".into(), json!(true));
    let (first_chunk_tx, first_chunk_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let busy = s.spawn(|| {
            let cancel = CancellationToken::new();
            let mut first = Some(first_chunk_tx);
            model.chat(
                &long,
                ModelCall {
                    cancel: &cancel,
                    deadline: None,
                },
                Some(&mut |_| {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }),
            )
        });
        first_chunk_rx.recv().unwrap();
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let waited = model.chat(
            &request("hi", 4),
            ModelCall {
                cancel: &cancel,
                deadline: Some(Instant::now() + Duration::from_millis(100)),
            },
            None,
        );
        assert_eq!(waited.unwrap_err(), ModelError::DeadlineExceeded);
        assert!(started.elapsed() < Duration::from_secs(1));
        let done = busy.join().unwrap().unwrap();
        assert_eq!(done.usage.unwrap().completion_tokens, 64);
    });
    // The slot is free again.
    assert!(chat(&model, &request("hi", 2)).is_ok());
}

#[test]
fn concurrent_requests_get_their_own_contexts() {
    let _serial = serial();
    let model = open("smol");
    let a = request("Name three colors.", 8);
    let b = request("What is two plus two?", 8);
    let (alone_a, alone_b) = (chat(&model, &a).unwrap().text(), chat(&model, &b).unwrap().text());
    // Two slots: both run at once, each on its own KV cache; neither
    // disturbs the other's (greedy, so deterministic) output.
    let (together_a, together_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| chat(&model, &a).unwrap().text());
        let tb = s.spawn(|| chat(&model, &b).unwrap().text());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(together_a, alone_a);
    assert_eq!(together_b, alone_b);
    assert_ne!(alone_a, alone_b);
}

#[test]
fn two_names_for_the_same_file_share_one_mapping() {
    let _serial = serial();
    let dir = crate::tempdir();
    // A second path to the same content: a hard link (a copy where links
    // are not possible), so the sharing is by hash, not by path.
    let other_path = dir.path().join("same-weights.gguf");
    if std::fs::hard_link(model_path(), &other_path).is_err() {
        std::fs::copy(model_path(), &other_path).unwrap();
    }
    let first = open("first");
    first.load().unwrap();
    chat(&first, &request("hi", 2)).unwrap();
    let before = rss_bytes();

    let second = LocalModel::open(LocalSettings::new("second", &other_path)).unwrap();
    second.load().unwrap();
    chat(&second, &request("hi", 2)).unwrap();
    let third = open("third");
    third.load().unwrap();
    let grown = rss_bytes().saturating_sub(before);

    assert!(first.shares_weights_with(&second));
    assert!(first.shares_weights_with(&third));
    assert_eq!(second.info().sha256.as_deref(), Some(SMOLLM2_SHA256));
    // A second copy of the weights would add about 100 MB.
    assert!(
        grown < 20 << 20,
        "RSS grew by {} MB for two more names",
        grown >> 20
    );
}

#[test]
fn the_chat_template_comes_from_the_gguf_and_a_model_without_one_gets_a_plain_prompt() {
    let _serial = serial();
    let model = open("smol");
    let mut req = ChatRequest::user("hi");
    req.messages.insert(0, Message::new("system", "Be brief."));
    let prompt = model.prompt(&req).unwrap();
    assert!(
        prompt.contains("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        "{prompt:?}"
    );

    let dir = crate::tempdir();
    let base = LocalModel::open(LocalSettings::new("base", without_template(dir.path()))).unwrap();
    assert_eq!(
        base.info().notes,
        vec![BASE_MODEL_NOTE.to_string()],
        "known before loading"
    );
    assert_eq!(base.prompt(&req).unwrap(), "Be brief.\n\nhi");
    assert_eq!(base.info().notes, vec![BASE_MODEL_NOTE.to_string()], "and after");
    let response = chat(&base, &request("The capital of France is", 4)).unwrap();
    assert!(response.usage.unwrap().completion_tokens >= 1);
    assert!(!base.shares_weights_with(&model));
}
