//! Filter order, invoke routing, identity of tasks, unload.

use aiplug_host::{CallError, CallOptions, IdentityError, LoadErrorKind, PluginState};

use crate::{behaviour, fixture, host, tempdir};

#[test]
fn filters_run_highest_priority_first_ties_by_id() {
    let dir = tempdir();
    let host = host();
    for (id, priority) in [("c-low", 10), ("a-low", 10), ("b-high", 20), ("z-top", 99)] {
        host.load(&fixture(dir.path(), id, &[], &format!("priority = {priority}\n")))
            .unwrap();
    }
    let out = host.filter_request(br#"{"m":1}"#, &CallOptions::new()).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"m":1,"z-top":1,"b-high":1,"a-low":1,"c-low":1}"#
    );
}

#[test]
fn unchanged_requests_are_not_copied() {
    let dir = tempdir();
    let host = host();
    host.load(&behaviour(dir.path(), "b", "mode = \"normal\""))
        .unwrap();
    let request = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let out = host.filter_request(request, &CallOptions::new()).unwrap();
    assert!(
        matches!(out, std::borrow::Cow::Borrowed(_)),
        "no filter changed it: borrowed"
    );
}

#[test]
fn a_rejection_stops_the_pipeline_and_names_the_plugin() {
    let dir = tempdir();
    let host = host();
    host.load(&behaviour(dir.path(), "guard", "reject_word = \"rm -rf\""))
        .unwrap();
    let error = host
        .filter_request(
            br#"{"messages":[{"role":"user","content":"please rm -rf /"}]}"#,
            &CallOptions::new(),
        )
        .unwrap_err();
    assert_eq!(
        error,
        CallError::Rejected {
            plugin: "test-behaviour".into(),
            reason: "the request contains \"rm -rf\"".into()
        }
    );
    assert!(host
        .filter_request(br#"{"messages":[]}"#, &CallOptions::new())
        .is_ok());
}

#[test]
fn invoke_routes_by_id_or_task_and_tells_the_plugin_which_task() {
    let dir = tempdir();
    let host = host();
    host.load(&behaviour(dir.path(), "b", "")).unwrap();
    let options = CallOptions::new();
    assert_eq!(
        &*host.invoke("word-count", b"three small words", &options).unwrap(),
        b"3"
    );
    assert_eq!(
        &*host.invoke("echo", b"three small words", &options).unwrap(),
        b"three small words"
    );
    // By id: no task named, the plugin falls back to echo.
    assert_eq!(&*host.invoke("test-behaviour", b"hi", &options).unwrap(), b"hi");
    let error = host.invoke("nope", b"", &options).unwrap_err();
    assert!(matches!(error, CallError::NotFound { .. }));
    assert!(error.to_string().contains("aiplug plugins list"));
}

#[test]
fn a_task_served_twice_is_refused() {
    let dir = tempdir();
    let host = host();
    host.load(&fixture(
        dir.path(),
        "first",
        &[("FIXTURE_TASK", "\"review\"")],
        "",
    ))
    .unwrap();
    let error = host
        .load(&fixture(
            dir.path(),
            "second",
            &[("FIXTURE_TASK", "\"review\"")],
            "",
        ))
        .unwrap_err();
    assert!(
        matches!(error.kind(), LoadErrorKind::Identity(IdentityError::DuplicateTask { task, owner }) if task == "review" && owner == "first"),
        "{error}"
    );
    assert_eq!(
        &*host.invoke("review", b"x", &CallOptions::new()).unwrap(),
        b"first:x"
    );
}

#[test]
fn unload_stops_calls_closes_the_library_and_removes_the_copy() {
    let dir = tempdir();
    let host = host();
    // A file name no other test uses: tests run in parallel in this
    // process, and their copies are mapped too.
    let lib = aiplug_testkit::c_plugin(
        "test-plugins/fixture.c",
        &[("FIXTURE_ID", "\"gone\""), ("FIXTURE_TASK", "\"bye\"")],
    );
    let manifest = aiplug_testkit::manifest("gone", "libunloaded_fixture.so", "");
    let plugin = aiplug_testkit::stage(dir.path(), "gone", &manifest, &lib, "libunloaded_fixture.so");
    host.load(&plugin).unwrap();
    let maps = || std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mapped: Vec<String> = maps()
        .lines()
        .filter(|l| l.contains("aiplug-libunloaded_fixture-"))
        .filter_map(|l| {
            l.find('/')
                .map(|at| l[at..].trim_end_matches(" (deleted)").to_string())
        })
        .collect();
    assert!(!mapped.is_empty(), "the private copy is what is mapped");
    for path in &mapped {
        assert!(
            !std::path::Path::new(path).exists(),
            "{path}: the copy is unlinked once mapped, so a killed process leaves nothing behind"
        );
    }
    assert!(
        !maps().contains(dir.path().join("gone/libunloaded_fixture.so").to_str().unwrap()),
        "the original file is not mapped, so it stays replaceable"
    );

    host.unload("gone").unwrap();
    assert!(matches!(
        host.invoke("bye", b"", &CallOptions::new()),
        Err(CallError::NotFound { .. })
    ));
    let now = maps();
    for path in &mapped {
        assert!(
            !now.contains(path.as_str()),
            "{path} is still mapped after unload"
        );
        assert!(!std::path::Path::new(path).exists(), "{path} was not removed");
    }
    let listed = host.plugins();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, aiplug_host::PluginState::Unloaded);
    assert_eq!(listed[0].in_flight, 0);
}

#[test]
fn load_dir_loads_each_plugin_and_lists_failures() {
    let dir = tempdir();
    let host = host();
    fixture(dir.path(), "one", &[], "");
    fixture(dir.path(), "two", &[("FIXTURE_ABI_MAJOR", "7")], "");
    std::fs::create_dir_all(dir.path().join("not-a-plugin")).unwrap();
    let results = host.load_dir(dir.path());
    assert_eq!(results.len(), 2);
    let listed = host.plugins();
    let states: Vec<_> = listed.iter().map(|p| (p.id.as_str(), p.state)).collect();
    assert_eq!(
        states,
        vec![("one", PluginState::Active), ("two", PluginState::Failed)]
    );
    let diagnosis = listed[1].diagnosis.as_deref().unwrap();
    assert!(diagnosis.starts_with("abi stage"), "{diagnosis}");
}
