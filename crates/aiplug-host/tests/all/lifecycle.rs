//! Lifecycle: syncing plugin directories with the disk, the file watcher,
//! states, and session expiry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiplug_host::{CallOptions, HostBuilder, PluginState, SyncChange};

use crate::{fixture, tempdir};

fn answer(host: &aiplug_host::Host, task: &str) -> Option<String> {
    host.invoke(task, b"x", &CallOptions::new())
        .ok()
        .map(|out| String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn sync_loads_new_reloads_changed_and_unloads_removed_directories() {
    let root = tempdir();
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .build();
    fixture(root.path(), "one", &[("FIXTURE_TASK", "\"t1\"")], "");
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::Loaded(info)] if info.id == "one"),
        "{changes:?}"
    );
    assert!(
        host.sync_dir(root.path()).is_empty(),
        "unchanged files: nothing to do"
    );

    // A changed manifest (the config) makes a new version.
    let manifest = root.path().join("one/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, reprioritised(&text, 7)).unwrap();
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::Reloaded(info)] if info.priority == 7),
        "{changes:?}"
    );
    assert_eq!(answer(&host, "t1").as_deref(), Some("one:x"));

    // A broken artefact: refused, the loaded version keeps serving, and the
    // same broken files are not retried on every sync.
    std::fs::write(root.path().join("one/libfixture.so"), b"garbage").unwrap();
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::ReloadRefused { .. }]),
        "{changes:?}"
    );
    assert_eq!(answer(&host, "t1").as_deref(), Some("one:x"));
    let listed = host.plugins();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, PluginState::Active);
    assert!(
        listed[0]
            .diagnosis
            .as_deref()
            .unwrap_or("")
            .contains("format stage"),
        "{listed:?}"
    );

    // Removing the directory unloads; adding it back loads it again.
    std::fs::remove_dir_all(root.path().join("one")).unwrap();
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::Unloaded { id, result: Ok(()) }] if id == "one"),
        "{changes:?}"
    );
    assert_eq!(answer(&host, "t1"), None);
    assert_eq!(host.plugins()[0].state, PluginState::Unloaded);
    fixture(root.path(), "one", &[("FIXTURE_TASK", "\"t1\"")], "");
    let changes = host.sync_dir(root.path());
    assert!(
        matches!(changes.as_slice(), [SyncChange::Loaded(_)]),
        "{changes:?}"
    );
    assert_eq!(answer(&host, "t1").as_deref(), Some("one:x"));
    let listed = host.plugins();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, PluginState::Active);
}

/// The manifest with a `priority` line: a config change, same library.
fn reprioritised(manifest: &str, priority: i32) -> String {
    manifest.replacen("version = ", &format!("priority = {priority}\nversion = "), 1)
}

/// Polls `check` every 20 ms for up to `within`.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

#[test]
fn the_watcher_follows_the_plugin_directory() {
    let root = tempdir();
    let host = Arc::new(
        HostBuilder::new()
            .trust(aiplug_host::TrustPolicy::AllowUnsigned)
            .build(),
    );
    host.load_dir(root.path());
    let _watcher =
        aiplug_host::watch::watch(&host, &[root.path().to_path_buf()], Duration::from_millis(50)).unwrap();

    // Built elsewhere and moved in, as a deployment would.
    let staging = tempdir();
    fixture(staging.path(), "w", &[("FIXTURE_TASK", "\"tw\"")], "");
    std::fs::rename(staging.path().join("w"), root.path().join("w")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || answer(&host, "tw").is_some()),
        "a new plugin directory is loaded"
    );

    let manifest = root.path().join("w/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, reprioritised(&text, 3)).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || host
            .plugins()
            .iter()
            .any(|p| p.priority == 3 && p.state == PluginState::Active)),
        "a changed plugin is reloaded: {:?}",
        host.plugins()
    );

    std::fs::remove_dir_all(root.path().join("w")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || answer(&host, "tw").is_none()),
        "a removed plugin is unloaded"
    );
}

#[derive(Default)]
struct SessionEnds(Mutex<Vec<String>>);

impl aiplug_host::Observer for SessionEnds {
    fn hook_call(&self, plugin: &str, hook: &'static str, _elapsed: Duration, _outcome: &'static str) {
        if hook == "on_session_end" {
            self.0.lock().unwrap().push(plugin.to_string());
        }
    }
}

#[test]
fn idle_sessions_expire_and_each_plugin_that_used_one_hears_once() {
    let dir = tempdir();
    let ends = Arc::new(SessionEnds::default());
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .session_ttl(Some(Duration::from_millis(150)))
        .observer(ends.clone())
        .build();
    host.load(&crate::behaviour(dir.path(), "b", "")).unwrap();
    let session = CallOptions::new().session("s-expiring");
    host.invoke("host-api", b"set k v", &session).unwrap();
    // A session nobody stored anything in ends without telling anyone.
    host.invoke("host-api", b"get k", &CallOptions::new().session("s-empty"))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !ends.0.lock().unwrap().is_empty()),
        "the idle session expired"
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(*ends.0.lock().unwrap(), ["test-behaviour"], "exactly once");
    assert_eq!(&*host.invoke("host-api", b"get k", &session).unwrap(), b"<none>");
    assert!(host.end_session("s-expiring").is_empty(), "already ended");
}
