//! `aiplug infer` and `aiplug models` against a local server that speaks the
//! DeepSeek protocol byte for byte (the real API is unreachable here).

use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer, Reply};
use serde_json::Value;

use crate::{aiplug_env, tempdir};

/// A config file pointing the DeepSeek default model at `server`.
fn config_for(dir: &std::path::Path, server: &DeepSeekServer) -> String {
    let path = dir.join("aiplug.toml");
    std::fs::write(
        &path,
        format!(
            "[models.deepseek-v4-flash]\nprovider = \"deepseek\"\nbase_url = \"{}\"\n",
            server.base_url()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn with_a_key_the_default_is_deepseek_and_the_key_is_sent() {
    let dir = tempdir();
    let server = DeepSeekServer::start(vec![Completion::new("Paris is the capital.").reply()]);
    let config = config_for(dir.path(), &server);
    let run = aiplug_env(
        dir.path(),
        &[
            "--config",
            &config,
            "--plugins",
            dir.path().to_str().unwrap(),
            "infer",
            "Capital of France?",
        ],
        b"",
        &[("DEEPSEEK_API_KEY", Some("sk-test-123"))],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "Paris is the capital.");
    assert!(
        run.stderr
            .contains("model: deepseek-v4-flash (DEEPSEEK_API_KEY is set)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("sk-test-123"), "the key is never printed");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-test-123"));
    let body: Value = serde_json::from_str(&requests[0].body_text()).unwrap();
    assert_eq!(body["model"], "deepseek-v4-flash");
    assert_eq!(body["messages"][0]["content"], "Capital of France?");
}

#[test]
fn streaming_reasoner_output_and_raw_json() {
    let dir = tempdir();
    let answer = Completion::reasoner("Think about it.", "It is 4.");
    let server = DeepSeekServer::start(vec![answer.stream(), answer.reply()]);
    let config = config_for(dir.path(), &server);
    let plugins = dir.path().to_str().unwrap();
    let key = [("DEEPSEEK_API_KEY", Some("sk-x"))];
    let run = aiplug_env(
        dir.path(),
        &[
            "--config",
            &config,
            "--plugins",
            plugins,
            "infer",
            "--stream",
            "2+2?",
        ],
        b"",
        &key,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "It is 4.");

    let run = aiplug_env(
        dir.path(),
        &[
            "--config",
            &config,
            "--plugins",
            plugins,
            "infer",
            "--json",
            "2+2?",
        ],
        b"",
        &key,
    );
    let response: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        response["choices"][0]["message"]["reasoning_content"],
        "Think about it."
    );
    assert!(
        response["usage"]["prompt_cache_hit_tokens"].is_u64(),
        "{response}"
    );
}

#[test]
fn provider_errors_are_clear_and_exit_1() {
    let dir = tempdir();
    let server = DeepSeekServer::start(vec![Reply::status(401), Reply::status(402)]);
    let config = config_for(dir.path(), &server);
    let plugins = dir.path().to_str().unwrap();
    let key = [("DEEPSEEK_API_KEY", Some("sk-wrong"))];
    let run = aiplug_env(
        dir.path(),
        &["--config", &config, "--plugins", plugins, "infer", "hi"],
        b"",
        &key,
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("DEEPSEEK_API_KEY is wrong or missing"),
        "{}",
        run.stderr
    );
    let run = aiplug_env(
        dir.path(),
        &["--config", &config, "--plugins", plugins, "infer", "hi"],
        b"",
        &key,
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("insufficient balance"), "{}", run.stderr);

    // Nobody listening.
    std::fs::write(
        dir.path().join("aiplug.toml"),
        "[models.deepseek-v4-flash]\nprovider = \"deepseek\"\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let run = aiplug_env(
        dir.path(),
        &["--config", &config, "--plugins", plugins, "infer", "hi"],
        b"",
        &key,
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("127.0.0.1:9"), "{}", run.stderr);
}

#[test]
fn filters_run_on_infer() {
    let dir = tempdir();
    let server = DeepSeekServer::start(vec![Completion::new("ok").reply()]);
    let config = config_for(dir.path(), &server);
    let plugins = crate::examples(dir.path());
    let run = aiplug_env(
        dir.path(),
        &[
            "--config",
            &config,
            "--plugins",
            plugins.to_str().unwrap(),
            "infer",
            "my key is sk-abcdefghijklmnopqrstuvwx123",
        ],
        b"",
        &[("DEEPSEEK_API_KEY", Some("sk-x"))],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let body = server.requests()[0].body_text();
    assert!(
        !body.contains("sk-abcdefghij"),
        "the redactor ran before the model: {body}"
    );
    assert!(
        body.contains("careful senior engineer"),
        "the decorator ran: {body}"
    );
}
