//! Regression tests, each named after what broke.

use std::time::{Duration, Instant};

use aiplug_host::{HostBuilder, SyncChange};

use crate::{fixture, tempdir};

/// `sync_dir` reloaded an active plugin's refused files again on every
/// file event in its root (each time a full load attempt, a warning and a
/// refused-reload count), instead of leaving unchanged refused files alone
/// as it does for a new plugin.
#[test]
fn sync_dir_retried_refused_new_versions_on_every_event() {
    let root = tempdir();
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .build();
    fixture(root.path(), "again", &[("FIXTURE_TASK", "\"ta\"")], "");
    assert!(matches!(
        host.sync_dir(root.path()).as_slice(),
        [SyncChange::Loaded(_)]
    ));

    let library = root.path().join("again/libfixture.so");
    std::fs::write(&library, b"garbage").unwrap();
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::ReloadRefused { .. }]),
        "{changes:?}"
    );
    let changes = host.sync_dir(root.path());
    assert!(
        changes.is_empty(),
        "the same refused files are left alone: {changes:?}"
    );
    assert!(host.reload("again").is_err(), "asked explicitly, it tries again");

    // Other broken files are tried; fixed files load.
    std::fs::write(&library, b"other garbage").unwrap();
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::ReloadRefused { .. }]),
        "{changes:?}"
    );
    let good = aiplug_testkit::c_plugin(
        "test-plugins/fixture.c",
        &[
            ("FIXTURE_ID", "\"again\""),
            ("FIXTURE_TASK", "\"ta\""),
            ("FIXTURE_ANSWER", "\"fixed\""),
        ],
    );
    std::fs::copy(good, &library).unwrap();
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::Reloaded(_)]),
        "{changes:?}"
    );
    assert_eq!(
        &*host.invoke("ta", b"x", &aiplug_host::CallOptions::new()).unwrap(),
        b"fixed:x"
    );
    assert!(host.plugins()[0].diagnosis.is_none(), "{:?}", host.plugins());
}

/// The file watcher synced every debounce window forever once anything had
/// read a plugin's files: inotify reports files being opened, and each sync
/// opens every manifest and artefact to fingerprint them, so each sync's
/// reads scheduled the next sync (a hash of every artefact per window).
#[test]
fn the_watcher_synced_every_window_after_its_own_reads() {
    let root = tempdir();
    fixture(root.path(), "idle", &[("FIXTURE_TASK", "\"ti\"")], "");
    let host = std::sync::Arc::new(
        HostBuilder::new()
            .trust(aiplug_host::TrustPolicy::AllowUnsigned)
            .build(),
    );
    host.load_dir(root.path());
    let before = watcher_threads();
    let debounce = Duration::from_millis(50);
    let _watcher = aiplug_host::watch::watch(&host, &[root.path().to_path_buf()], debounce).unwrap();
    // A thread names itself once it runs: wait for it.
    let until = Instant::now() + Duration::from_secs(5);
    let ours = loop {
        let ours: Vec<String> = watcher_threads()
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        if !ours.is_empty() || Instant::now() > until {
            break ours;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(!ours.is_empty(), "the watcher thread is named aiplug-watch");
    let wakeups = || -> u64 { ours.iter().map(|tid| voluntary_switches(tid)).sum() };

    // One real change: the watcher syncs (reading every file) and reloads.
    let manifest = root.path().join("idle/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("version = ", "priority = 2\nversion = ", 1),
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !host.plugins().iter().any(|p| p.priority == 2) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(host.plugins().iter().any(|p| p.priority == 2), "reloaded");

    // Then nothing changes, and the watcher sleeps.
    std::thread::sleep(debounce * 4);
    let start = wakeups();
    std::thread::sleep(debounce * 20);
    let woke = wakeups() - start;
    assert!(
        woke <= 1,
        "the watcher woke {woke} times in {:?} with no change",
        debounce * 20
    );
}

/// Thread ids named `aiplug-watch` in this process.
fn watcher_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "aiplug-watch"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn voluntary_switches(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
