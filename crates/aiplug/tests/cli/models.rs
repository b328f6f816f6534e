//! `aiplug models`, `aiplug infer`, `aiplug chat` with the real default
//! model and with a local server speaking the DeepSeek protocol.

use serde_json::Value;

use crate::tempdir;

/// Runs aiplug with a clean model environment: no DeepSeek key, the real
/// models directory (where the setup put the default model).
fn aiplug_models(cwd: &std::path::Path, args: &[&str], stdin: &[u8]) -> crate::Run {
    crate::aiplug_env(cwd, args, stdin, &[("DEEPSEEK_API_KEY", None)])
}

#[test]
fn models_lists_builtins_and_marks_the_default() {
    let dir = tempdir();
    let run = aiplug_models(dir.path(), &["models"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let smol = run
        .stdout
        .lines()
        .find(|l| l.starts_with("smollm2"))
        .expect(&run.stdout);
    assert!(smol.starts_with("smollm2 *") && smol.contains("local"), "{smol}");
    assert!(run.stdout.contains("deepseek-v4-flash"), "{}", run.stdout);
    assert!(
        run.stdout.contains("default: smollm2 (no DEEPSEEK_API_KEY"),
        "{}",
        run.stdout
    );

    let run = crate::aiplug_env(
        dir.path(),
        &["models", "--json"],
        b"",
        &[("DEEPSEEK_API_KEY", Some("sk-x"))],
    );
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    let default: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["default"] == true)
        .collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["name"], "deepseek-v4-flash");
}

#[test]
fn infer_on_the_default_local_model() {
    let dir = tempdir();
    let run = aiplug_models(
        dir.path(),
        &["infer", "--max-tokens", "8", "--temperature", "0", "Say hello."],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("model: smollm2"),
        "the choice is announced: {}",
        run.stderr
    );
    assert!(!run.stdout.trim().is_empty(), "the model answered");

    let run = aiplug_models(dir.path(), &["infer", "--json", "--max-tokens", "4", "Hi"], b"");
    let response: Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert!(response["usage"]["completion_tokens"].as_u64().unwrap() <= 4);

    let run = aiplug_models(
        dir.path(),
        &["infer", "--stream", "--max-tokens", "6", "Count: 1, 2,"],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.trim().is_empty());
}

#[test]
fn chat_keeps_the_conversation_and_ends_at_eof() {
    let dir = tempdir();
    let run = aiplug_models(
        dir.path(),
        &["chat", "--max-tokens", "6", "--temperature", "0"],
        b"Hello there\n/reset\nWhat is two plus two?\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().filter(|l| !l.is_empty()).count(),
        2,
        "two answers: {:?}",
        run.stdout
    );
    assert!(run.stderr.contains("conversation cleared"));
}

#[test]
fn unknown_model_and_unpulled_model_say_what_to_do() {
    let dir = tempdir();
    let run = aiplug_models(dir.path(), &["infer", "--model", "gpt-17", "hi"], b"");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no model named \"gpt-17\"") && run.stderr.contains("smollm2"),
        "{}",
        run.stderr
    );

    let home = tempdir();
    let run = crate::aiplug_env(
        dir.path(),
        &["infer", "hi"],
        b"",
        &[
            ("DEEPSEEK_API_KEY", None),
            ("AIPLUG_HOME", Some(home.path().to_str().unwrap())),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("aiplug models pull smollm2"),
        "{}",
        run.stderr
    );
}

#[test]
fn review_on_the_default_local_model_prints_only_verified_findings() {
    let dir = tempdir();
    let plugins = dir.path().join("plugins");
    // The real manifest, with a shorter answer so the test stays quick on 2
    // cores (SmolLM2 may otherwise fill all 1024 tokens).
    let staged = crate::example(
        &plugins,
        "code-review",
        &aiplug_testkit::cargo_plugin("code-review"),
    );
    let manifest = std::fs::read_to_string(staged.join("plugin.toml")).unwrap();
    assert!(
        manifest.contains("max_tokens = 1024"),
        "the shipped default changed: adjust this test"
    );
    std::fs::write(
        staged.join("plugin.toml"),
        manifest.replace("max_tokens = 1024", "max_tokens = 256"),
    )
    .unwrap();
    let source = std::fs::read_to_string(aiplug_testkit::repo_root().join("examples/buggy.go")).unwrap();
    std::fs::write(dir.path().join("buggy.go"), &source).unwrap();
    let run = aiplug_models(dir.path(), &["review", "--format", "json", "buggy.go"], b"");
    assert!(
        run.code == 0 || run.code == 1,
        "never 2: {}{}",
        run.stdout,
        run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let lines: Vec<&str> = source.lines().collect();
    for finding in report["files"][0]["findings"].as_array().unwrap() {
        let line = finding["line"].as_u64().unwrap() as usize;
        assert!((1..=lines.len()).contains(&line), "{finding}");
        let quote: String = finding["quote"].as_str().unwrap().split_whitespace().collect();
        let window: String = lines[line.saturating_sub(3)..(line + 2).min(lines.len())]
            .concat()
            .split_whitespace()
            .collect();
        assert!(
            window.contains(&quote),
            "the quote is in the file near its line: {finding}"
        );
    }
}
