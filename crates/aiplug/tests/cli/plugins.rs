//! `aiplug plugins list|inspect` and the config file.

use aiplug_testkit as kit;
use serde_json::Value;

use crate::{aiplug, behaviour, examples, tempdir};

#[test]
fn list_shows_every_plugin_with_its_state() {
    let dir = tempdir();
    let plugins = examples(dir.path());
    behaviour(&plugins, "broken", "mode = \"panic-load\"");
    let run = aiplug(dir.path(), &["plugins", "list"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    assert!(out.starts_with("ID"), "{out}");
    let row = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id}:\n{out}"))
    };
    assert!(row("go-format").contains("invoke") && row("go-format").ends_with("active"));
    assert!(
        row("secret-redactor").contains("200"),
        "{}",
        row("secret-redactor")
    );
    assert!(
        row("test-behaviour").ends_with("failed"),
        "{}",
        row("test-behaviour")
    );
    assert!(out.contains("init stage: on_load panicked"), "{out}");

    let run = aiplug(dir.path(), &["plugins", "list", "--json"], b"");
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
}

#[test]
fn config_file_names_the_plugin_directories() {
    let dir = tempdir();
    let nested = dir.path().join("conf");
    behaviour(&nested.join("mine"), "b", "");
    std::fs::write(nested.join("aiplug.toml"), "[plugins]\ndirs = [\"mine\"]\n").unwrap();
    let run = aiplug(
        dir.path(),
        &["--config", "conf/aiplug.toml", "plugins", "list"],
        b"",
    );
    assert!(
        run.stdout.contains("test-behaviour"),
        "{}{}",
        run.stdout,
        run.stderr
    );

    std::fs::write(nested.join("aiplug.toml"), "[plugins]\ndir = [\"mine\"]\n").unwrap();
    let run = aiplug(
        dir.path(),
        &["--config", "conf/aiplug.toml", "plugins", "list"],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("dir") && run.stderr.contains("aiplug.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn inspect_shows_hash_hooks_tasks_and_config() {
    let dir = tempdir();
    let plugin = behaviour(dir.path(), "b", "tag = \"-x\"");
    let run = aiplug(
        dir.path(),
        &["plugins", "inspect", "--json", plugin.to_str().unwrap()],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let info: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(info["id"], "test-behaviour");
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(info["tasks"][0], "word-count");
    assert_eq!(info["config"]["tag"], "-x");
    assert_eq!(info["limits"]["timeout_ms"], 30000);

    let missing = dir.path().join("missing");
    std::fs::create_dir_all(&missing).unwrap();
    std::fs::write(
        missing.join("plugin.toml"),
        kit::manifest("missing", "libnothere.so", ""),
    )
    .unwrap();
    let run = aiplug(
        dir.path(),
        &["plugins", "inspect", missing.to_str().unwrap()],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("integrity stage") && run.stderr.contains("aiplug doctor"),
        "{}",
        run.stderr
    );
}
