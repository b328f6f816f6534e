//! `aiplug review`: the code-review plugin through the real binary, against a
//! local server that speaks the DeepSeek protocol with scripted answers (and,
//! in `models.rs`, the real default model).

use std::path::Path;

use aiplug_testkit as kit;
use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer, Reply};
use serde_json::{json, Value};

use crate::{aiplug_env, tempdir, Run};

/// A workspace: the code-review plugin staged (with `timeout_ms`), a config
/// pointing the default DeepSeek model at `server` (with `context`), and
/// examples/buggy.go copied in.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(server: &DeepSeekServer, context: u32, timeout_ms: u64) -> Workspace {
        let dir = tempdir();
        let manifest = std::fs::read_to_string(kit::repo_root().join("plugins/code-review/plugin.toml"))
            .unwrap()
            .replace("timeout_ms = 600000", &format!("timeout_ms = {timeout_ms}"));
        kit::stage(
            &dir.path().join("plugins"),
            "code-review",
            &manifest,
            &kit::cargo_plugin("code-review"),
            "libcode_review.so",
        );
        std::fs::write(
            dir.path().join("aiplug.toml"),
            format!(
                "[models.deepseek-v4-flash]\nprovider = \"deepseek\"\nbase_url = \"{}\"\ncontext_length = {context}\n",
                server.base_url()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("examples")).unwrap();
        std::fs::copy(
            kit::repo_root().join("examples/buggy.go"),
            dir.path().join("examples/buggy.go"),
        )
        .unwrap();
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn review(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut all = vec!["review"];
        all.extend_from_slice(args);
        aiplug_env(
            self.path(),
            &all,
            stdin,
            &[("DEEPSEEK_API_KEY", Some("sk-test")), ("NO_COLOR", Some("1"))],
        )
    }
}

/// A model answer with these findings.
fn answer(findings: Value) -> Reply {
    Completion::new(&json!({ "findings": findings }).to_string()).reply()
}

fn nil_map() -> Value {
    json!({"line": 84, "end_line": 84, "severity": "error", "rule_id": "nil-map-write",
           "message": "assignment to entry in nil map", "suggestion": "initialise Totals with make",
           "quote": "r.Totals[o.Customer] += o.Amount"})
}

fn division() -> Value {
    json!({"line": 95, "end_line": 95, "severity": "warning", "rule_id": "division-by-zero",
           "message": "len(orders) can be zero", "suggestion": "return 0 for no orders",
           "quote": "return total / len(orders)"})
}

#[test]
fn exact_findings_validated_and_printed_like_a_compiler() {
    let invented = json!({"line": 40, "severity": "error", "rule_id": "made-up",
                          "message": "quotes code that is not there", "quote": "panic(\"boom\")"});
    let outside = json!({"line": 400, "severity": "error", "rule_id": "far", "message": "no such line",
                         "quote": "x"});
    let server = DeepSeekServer::start(vec![answer(json!([nil_map(), division(), invented, outside]))]);
    let ws = Workspace::new(&server, 65536, 60_000);
    let run = ws.review(&["examples/buggy.go"], b"");
    assert_eq!(
        run.code, 1,
        "an error-level finding fails the run: {}",
        run.stderr
    );
    assert!(run.stdout.contains("examples/buggy.go:84:"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("error[nil-map-write]: assignment to entry in nil map"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("r.Totals[o.Customer] += o.Amount"),
        "the source line is shown"
    );
    assert!(run.stdout.contains("warning[division-by-zero]"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("made-up") && !run.stdout.contains("no such line"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2 unverified findings dropped"),
        "{}",
        run.stdout
    );

    // The request: JSON mode, numbered source, the configured model.
    let body: Value = serde_json::from_str(&server.requests()[0].body_text()).unwrap();
    assert_eq!(body["response_format"]["type"], "json_object");
    assert_eq!(body["model"], "deepseek-v4-flash");
    let prompt = body["messages"].to_string();
    assert!(
        prompt.contains("84") && prompt.contains("r.Totals[o.Customer] += o.Amount"),
        "{prompt}"
    );
}

#[test]
fn fail_on_sets_the_exit_status() {
    let server = DeepSeekServer::repeating(answer(json!([division()])));
    let ws = Workspace::new(&server, 65536, 60_000);
    assert_eq!(
        ws.review(&["examples/buggy.go"], b"").code,
        0,
        "a warning does not fail by default"
    );
    assert_eq!(
        ws.review(&["--fail-on", "warning", "examples/buggy.go"], b"")
            .code,
        1
    );
    assert_eq!(
        ws.review(&["--fail-on", "info", "examples/buggy.go"], b"").code,
        1
    );
    let run = ws.review(&["--fail-on", "fatal", "examples/buggy.go"], b"");
    assert_eq!(run.code, 2, "usage error: {}", run.stderr);
}

#[test]
fn sarif_validates_against_the_2_1_0_schema_and_rdjsonl_parses() {
    let server = DeepSeekServer::repeating(answer(json!([nil_map(), division()])));
    let ws = Workspace::new(&server, 65536, 60_000);
    let run = ws.review(&["--format", "sarif", "examples/buggy.go"], b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let sarif: Value = serde_json::from_str(&run.stdout).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&sarif).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "nil-map-write");
    assert!(results[0]["partialFingerprints"]["primaryLocationLineHash"].is_string());

    let run = ws.review(&["--format", "rdjsonl", "examples/buggy.go"], b"");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["location"]["path"], "examples/buggy.go");
    assert_eq!(lines[0]["location"]["range"]["start"]["line"], 84);
    assert_eq!(lines[0]["severity"], "ERROR");

    let run = ws.review(&["--format", "json", "examples/buggy.go"], b"");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["summary"]["errors"], 1);
}

#[test]
fn a_large_file_is_reviewed_in_chunks_without_duplicates() {
    // The same finding in every chunk's answer: chunks overlap, so it may be
    // seen more than once, and must be printed once.
    let server = DeepSeekServer::repeating(answer(json!([nil_map()])));
    let ws = Workspace::new(&server, 3000, 60_000);
    let run = ws.review(&["--format", "json", "examples/buggy.go"], b"");
    assert!(
        server.request_count() > 1,
        "a 3000-token context splits the file: {}{}",
        run.stdout,
        run.stderr
    );
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    let findings = report["files"][0]["findings"].as_array().unwrap();
    assert_eq!(
        findings.iter().filter(|f| f["line"] == 84).count(),
        1,
        "{findings:?}"
    );
}

#[test]
fn diff_mode_keeps_findings_on_changed_lines_only() {
    let server = DeepSeekServer::repeating(answer(json!([nil_map(), division()])));
    let ws = Workspace::new(&server, 65536, 60_000);
    let diff = "diff --git a/examples/buggy.go b/examples/buggy.go\n--- a/examples/buggy.go\n+++ b/examples/buggy.go\n@@ -94,2 +94,2 @@\n \t}\n-\treturn total\n+\treturn total / len(orders)\n";
    let run = ws.review(&["--diff", "--format", "json"], diff.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let findings = report["files"][0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["line"], 95);
}

#[test]
fn bad_input_is_a_clear_error_with_status_2() {
    let server = DeepSeekServer::start(vec![
        Completion::new("I think the code is fine, no JSON for you").reply(),
        Completion::new(r#"{"verdict": "fine"}"#).reply(),
    ]);
    let ws = Workspace::new(&server, 65536, 60_000);
    std::fs::write(ws.path().join("blob.bin"), b"\x7fELF\x00\x01\x02").unwrap();
    std::fs::write(ws.path().join("empty.go"), b"").unwrap();

    let run = ws.review(&["blob.bin"], b"");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("blob.bin") && run.stderr.contains("binary"),
        "{}",
        run.stderr
    );

    let run = ws.review(&["missing.go"], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("missing.go: no such file"), "{}", run.stderr);

    let run = ws.review(&["empty.go"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("nothing to review"), "{}", run.stderr);

    let run = ws.review(&["examples/buggy.go"], b"");
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("deepseek-v4-flash"),
        "names the model: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("I think the code is fine"),
        "shows the answer: {}",
        run.stderr
    );

    let run = ws.review(&["examples/buggy.go"], b"");
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("{\"verdict\""),
        "wrong shape, answer shown: {}",
        run.stderr
    );
}

#[test]
fn a_model_that_times_out_is_an_error_not_a_hang() {
    let server = DeepSeekServer::repeating(answer(json!([])).delay(std::time::Duration::from_secs(30)));
    let ws = Workspace::new(&server, 65536, 1_500);
    let started = std::time::Instant::now();
    let run = ws.review(&["examples/buggy.go"], b"");
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(
        run.stderr.contains("deadline") || run.stderr.contains("timed out"),
        "{}",
        run.stderr
    );
}
