//! The example plugins under `plugins/`, built the way their authors build
//! them and loaded with their real manifests.

use std::path::{Path, PathBuf};

use aiplug_host::{CallError, CallOptions, Hook, PluginState};
use aiplug_testkit as kit;
use serde_json::Value;

use crate::{host, tempdir};

/// Stages `plugins/<name>` with its own manifest and `artefact`.
fn example(parent: &Path, name: &str, artefact: &Path) -> PathBuf {
    let root = kit::repo_root().join("plugins").join(name);
    let manifest = std::fs::read_to_string(root.join("plugin.toml")).unwrap();
    let entry = manifest
        .lines()
        .find_map(|l| l.strip_prefix("entry = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("manifest names its entry");
    kit::stage(parent, name, &manifest, artefact, entry)
}

const REQUEST: &str = r#"{"model":"m","messages":[{"role":"user","content":"deploy with key sk-abcdefghijklmnopqrstuvwx0123 please"}]}"#;

#[test]
fn prompt_decorator_adds_a_stable_system_prompt() {
    let dir = tempdir();
    let host = host();
    let info = host
        .load(&example(
            dir.path(),
            "prompt-decorator",
            &kit::cargo_plugin("prompt-decorator"),
        ))
        .unwrap();
    assert_eq!(info.hooks, vec![Hook::OnRequest]);
    let out = host
        .filter_request(
            br#"{"messages":[{"role":"user","content":"hi"}]}"#,
            &CallOptions::new(),
        )
        .unwrap();
    let request: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(request["messages"][0]["role"], "system");
    assert!(request["messages"][0]["content"]
        .as_str()
        .unwrap()
        .starts_with("You are a careful senior engineer."));
    assert!(request["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("(Today is 20"));
}

#[test]
fn c_secret_redactor_masks_keys_before_other_filters_see_them() {
    let dir = tempdir();
    let host = host();
    let lib = kit::c_plugin("plugins/secret-redactor/secret_redactor.c", &[]);
    host.load(&example(dir.path(), "secret-redactor", &lib)).unwrap();
    host.load(&example(
        dir.path(),
        "prompt-decorator",
        &kit::cargo_plugin("prompt-decorator"),
    ))
    .unwrap();

    let out = host
        .filter_request(REQUEST.as_bytes(), &CallOptions::new())
        .unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert!(!text.contains("sk-abcdef"), "{text}");
    assert!(text.contains("deploy with key [REDACTED] please"), "{text}");
    assert!(
        text.contains("careful senior engineer"),
        "the decorator ran after: {text}"
    );

    let clean = br#"{"messages":[{"role":"user","content":"nothing secret"}]}"#;
    let host_only_redactor = host;
    host_only_redactor.unload("prompt-decorator").unwrap();
    let out = host_only_redactor
        .filter_request(clean, &CallOptions::new())
        .unwrap();
    assert!(
        matches!(out, std::borrow::Cow::Borrowed(_)),
        "nothing to redact: no copy"
    );
}

#[test]
fn go_plugin_formats_go_and_stays_mapped_after_unload() {
    let dir = tempdir();
    let host = host();
    let info = host
        .load(&example(dir.path(), "go-format", &kit::go_plugin()))
        .unwrap();
    assert!(!info.unloadable);
    assert_eq!(info.state, PluginState::Active);

    let messy = b"package main\nfunc main(){\nx:=1\n_ = x}\n";
    let out = host.invoke("go-format", messy, &CallOptions::new()).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "package main\n\nfunc main() {\n\tx := 1\n\t_ = x\n}\n"
    );
    let error = host
        .invoke("go-format", b"package main\nfunc main() {\n", &CallOptions::new())
        .unwrap_err();
    assert!(matches!(error, CallError::Failed { .. }), "{error}");
    assert!(error.to_string().contains("expected"), "{error}");

    // Unloading a Go library must not dlclose it (that crashes); the host
    // keeps it mapped and carries on.
    host.unload("go-format").unwrap();
    assert!(matches!(
        host.invoke("go-format", messy, &CallOptions::new()),
        Err(CallError::NotFound { .. })
    ));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        maps.contains("aiplug-libgo_format-"),
        "the Go runtime stays mapped"
    );
    let other = crate::fixture(dir.path(), "after-go", &[("FIXTURE_TASK", "\"after\"")], "");
    host.load(&other).unwrap();
    assert_eq!(
        &*host.invoke("after", b"x", &CallOptions::new()).unwrap(),
        b"after-go:x"
    );
}
