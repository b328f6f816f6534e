//! `aiplug doctor`: the stage table.

use aiplug_testkit as kit;
use serde_json::Value;

use crate::{aiplug, behaviour, example, tempdir};

const STAGES: [&str; 7] = [
    "manifest",
    "integrity",
    "format",
    "symbols",
    "abi",
    "identity",
    "init",
];

#[test]
fn healthy_plugin_passes_every_stage_and_gets_a_pin() {
    let dir = tempdir();
    let plugin = example(dir.path(), "go-format", &kit::go_plugin());
    let run = aiplug(dir.path(), &["doctor", plugin.to_str().unwrap()], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for stage in STAGES {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(stage))
            .unwrap_or_else(|| panic!("no {stage} row:\n{}", run.stdout));
        assert!(line.split_whitespace().nth(1) == Some("ok"), "{line}");
    }
    assert!(
        run.stdout.contains("sha256 to pin in plugin.toml: sha256 = \""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("all stages passed"));
}

#[test]
fn failing_stage_is_named_with_cause_and_fix_and_later_stages_skipped() {
    let dir = tempdir();
    let plugin = behaviour(dir.path(), "b", "mode = \"fail-load\"");
    let run = aiplug(
        dir.path(),
        &["doctor", plugin.join("plugin.toml").to_str().unwrap()],
        b"",
    );
    assert_eq!(run.code, 1);
    let init = run.stdout.lines().find(|l| l.starts_with("init")).unwrap();
    assert!(
        init.contains("FAILED") && init.contains("configured to fail"),
        "{init}"
    );
    assert!(run.stdout.contains("fix: "), "{}", run.stdout);

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("plugin.toml"), kit::manifest("bad", "libbad.so", "")).unwrap();
    std::fs::write(bad.join("libbad.so"), "not a library").unwrap();
    let run = aiplug(dir.path(), &["doctor", bad.to_str().unwrap()], b"");
    assert_eq!(run.code, 1);
    let format = run.stdout.lines().find(|l| l.starts_with("format")).unwrap();
    assert!(format.contains("FAILED") && format.contains("text"), "{format}");
    for stage in ["symbols", "abi", "identity", "init"] {
        let line = run.stdout.lines().find(|l| l.starts_with(stage)).unwrap();
        assert!(line.contains("skipped"), "{line}");
    }
    // The artefact could be read, so the doctor still says what to pin.
    assert!(run.stdout.contains("sha256 to pin"), "{}", run.stdout);
}

#[test]
fn sha256_mismatch_and_json_output() {
    let dir = tempdir();
    let lib = kit::cargo_plugin("test-behaviour");
    let manifest = kit::manifest(
        "test-behaviour",
        "libtest_behaviour.so",
        &format!("sha256 = \"{}\"\n", "ab".repeat(32)),
    );
    let plugin = kit::stage(dir.path(), "pinned", &manifest, &lib, "libtest_behaviour.so");
    let run = aiplug(dir.path(), &["doctor", "--json", plugin.to_str().unwrap()], b"");
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 7);
    assert_eq!(stages[1]["stage"], "integrity");
    assert_eq!(stages[1]["result"], "failed");
    let actual = report["sha256"].as_str().unwrap();
    assert!(stages[1]["fix"].as_str().unwrap().contains(actual));
}

#[test]
fn duplicate_id_in_the_plugin_directories_is_reported() {
    let dir = tempdir();
    let plugins = dir.path().join("plugins");
    behaviour(&plugins, "one", "");
    let other = behaviour(dir.path(), "elsewhere", "");
    let run = aiplug(dir.path(), &["doctor", other.to_str().unwrap()], b"");
    assert_eq!(run.code, 1, "{}", run.stdout);
    let identity = run.stdout.lines().find(|l| l.starts_with("identity")).unwrap();
    assert!(identity.contains("already registered"), "{identity}");
    // Doctoring the plugin that is in the directory itself is fine.
    let run = aiplug(
        dir.path(),
        &["doctor", plugins.join("one").to_str().unwrap()],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}
