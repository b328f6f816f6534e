//! `aiplug run` and `aiplug filter`.

use crate::{aiplug, behaviour, examples, tempdir};

const MESSY: &str = "package main\nimport \"fmt\"\nfunc main(){\nfmt.Println( \"hi\" )}\n";
const TIDY: &str = "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n";

#[test]
fn run_by_task_from_a_file_stdin_or_text() {
    let dir = tempdir();
    examples(dir.path());
    std::fs::write(dir.path().join("main.go"), MESSY).unwrap();
    let run = aiplug(dir.path(), &["run", "go-format", "main.go"], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, TIDY), "{}", run.stderr);
    let run = aiplug(dir.path(), &["run", "go-format", "-"], MESSY.as_bytes());
    assert_eq!(run.stdout, TIDY);
    let run = aiplug(dir.path(), &["run", "go-format", "--text", MESSY], b"");
    assert_eq!(run.stdout, TIDY);
}

#[test]
fn run_reports_plugin_errors_and_unknown_targets() {
    let dir = tempdir();
    examples(dir.path());
    let run = aiplug(
        dir.path(),
        &["run", "go-format", "--text", "package main\nfunc {"],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("plugin \"go-format\" failed in `invoke`"),
        "{}",
        run.stderr
    );

    let run = aiplug(dir.path(), &["run", "no-such-task", "--text", "x"], b"");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no loaded plugin is named \"no-such-task\""),
        "{}",
        run.stderr
    );

    let run = aiplug(
        dir.path(),
        &["--plugins", "nowhere", "run", "x", "--text", "x"],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("nowhere") && run.stderr.contains("does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn refused_plugins_are_warned_about_and_the_rest_still_run() {
    let dir = tempdir();
    let plugins = examples(dir.path());
    behaviour(&plugins, "broken", "mode = \"fail-load\"");
    let run = aiplug(dir.path(), &["run", "go-format", "--text", MESSY], b"");
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, TIDY);
    assert!(
        run.stderr.contains("warning: plugin test-behaviour") && run.stderr.contains("fix: "),
        "{}",
        run.stderr
    );
}

#[test]
fn filter_runs_redactor_then_decorator() {
    let dir = tempdir();
    examples(dir.path());
    let request = r#"{"model":"x","messages":[{"role":"user","content":"token ghp_abcdefghijklmnopqrstuvwxyz0123456789"}]}"#;
    let run = aiplug(dir.path(), &["filter"], request.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let filtered: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(filtered["messages"][0]["role"], "system");
    let user = filtered["messages"][1]["content"].as_str().unwrap();
    assert!(user.starts_with("token [REDACTED]"), "{user}");

    let run = aiplug(dir.path(), &["filter"], b"{not json");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not JSON"), "{}", run.stderr);
}

#[test]
fn filter_rejection_names_the_plugin_and_exits_1() {
    let dir = tempdir();
    behaviour(
        &dir.path().join("plugins"),
        "guard",
        "reject_word = \"DROP TABLE\"",
    );
    let run = aiplug(
        dir.path(),
        &["filter"],
        br#"{"messages":[{"role":"user","content":"DROP TABLE users"}]}"#,
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("plugin \"test-behaviour\" rejected the request"),
        "{}",
        run.stderr
    );
}

#[test]
fn run_with_a_session_and_a_timeout() {
    let dir = tempdir();
    behaviour(&dir.path().join("plugins"), "b", "");
    let run = aiplug(
        dir.path(),
        &["run", "host-api", "--session", "s", "--text", "set a b"],
        b"",
    );
    assert_eq!(run.stdout, "ok", "{}", run.stderr);
    let run = aiplug(
        dir.path(),
        &["run", "sleep", "--timeout-ms", "50", "--text", "10000"],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cancelled or hit its deadline"),
        "{}",
        run.stderr
    );
}
