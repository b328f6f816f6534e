//! Native plugins with thread-local destructors: a Rust plugin whose code
//! touches a `thread_local!` value that implements `Drop` makes Rust's std
//! register a destructor for the calling thread through glibc's
//! `__cxa_thread_atexit_impl`. glibc counts those per library
//! (`l_tls_dtor_count`) and `dlclose` leaves a library with a non-zero
//! count mapped, so the destructor can still run when the thread exits;
//! the library is unmapped by the first `dlclose` (of any library) after
//! the last such thread has exited. Unloading such a library while its
//! calling threads live is therefore safe, and what stays mapped is
//! exactly the versions that a still-living thread ran with a destructor.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use aiplug_host::CallOptions;
use aiplug_testkit as kit;

use crate::soak::{mapped_copies, temp_copies};
use crate::{fixture, host, tempdir};

/// A file name no other test uses, so the mappings counted are this test's.
const ENTRY: &str = "libtls_behaviour.so";
const COPY_PREFIX: &str = "aiplug-libtls_behaviour-";

/// A long-lived thread that calls the plugin when asked, like a server's
/// worker thread.
struct Worker {
    ask: mpsc::Sender<()>,
    answers: mpsc::Receiver<Result<String, String>>,
    thread: JoinHandle<()>,
}

impl Worker {
    fn start(host: &std::sync::Arc<aiplug_host::Host>) -> Worker {
        let (ask, asked) = mpsc::channel::<()>();
        let (answer, answers) = mpsc::channel();
        let host = std::sync::Arc::clone(host);
        let thread = std::thread::spawn(move || {
            for () in asked {
                let result = host
                    .invoke("echo", b"hi", &CallOptions::new())
                    .map(|out| String::from_utf8_lossy(&out).into_owned())
                    .map_err(|e| e.to_string());
                if answer.send(result).is_err() {
                    return;
                }
            }
        });
        Worker { ask, answers, thread }
    }

    fn call(&self) -> Result<String, String> {
        self.ask.send(()).expect("worker alive");
        self.answers.recv().expect("worker answers")
    }

    /// Ends the thread: its thread-local destructors run now.
    fn exit(self) {
        drop(self.ask);
        self.thread.join().expect("the worker exits cleanly");
    }
}

fn write_manifest(dir: &Path, version: usize, thread_local_drop: bool) {
    let config = format!("[config]\nthread_local_drop = {thread_local_drop}\ntag = \"v{version}\"\n");
    std::fs::write(
        dir.join("plugin.toml"),
        kit::manifest("test-behaviour", ENTRY, &config),
    )
    .unwrap();
}

#[test]
fn versions_with_thread_local_destructors_stay_mapped_until_their_threads_exit() {
    let root = tempdir();
    let host = std::sync::Arc::new(host());
    let dir = kit::stage(
        root.path(),
        "tls",
        &kit::manifest("test-behaviour", ENTRY, ""),
        &kit::cargo_plugin("test-behaviour"),
        ENTRY,
    );
    write_manifest(&dir, 0, false);
    host.load(&dir).unwrap();
    let workers = [Worker::start(&host), Worker::start(&host)];
    let call_all = || {
        for worker in &workers {
            assert_eq!(worker.call().as_deref(), Ok("hi"));
        }
    };
    let reload = |version: usize| {
        write_manifest(&dir, version, true);
        host.reload("test-behaviour").unwrap();
    };
    let mapped = || mapped_copies(COPY_PREFIX);

    // v0 touches no thread-local with a destructor: replaced, it is
    // unmapped at once although both threads that called it live on.
    call_all();
    reload(1);
    assert_eq!(mapped().len(), 1, "only v1: {:?}", mapped());

    // v1 registers a destructor in each worker: replaced, it stays mapped
    // (its temp copy was deleted from disk as soon as it was mapped).
    call_all();
    reload(2);
    let now = mapped();
    assert_eq!(now.len(), 2, "v1 pinned by the workers, v2: {now:?}");
    assert_eq!(
        now.iter().filter(|m| m.ends_with(" (deleted)")).count(),
        2,
        "every copy is removed from disk once mapped: {now:?}"
    );
    assert!(temp_copies(COPY_PREFIX).is_empty(), "no copy stays on disk");

    // v2 is never called: nothing pins it.
    reload(3);
    assert_eq!(mapped().len(), 2, "v1 pinned, v2 closed, v3: {:?}", mapped());

    // Every version a living thread ran stays mapped, unload included.
    call_all();
    reload(4);
    call_all();
    host.unload("test-behaviour").unwrap();
    let pinned = mapped();
    assert_eq!(pinned.len(), 3, "v1, v3, v4 pinned after unload: {pinned:?}");
    assert!(
        temp_copies(COPY_PREFIX).is_empty(),
        "every copy is removed from disk"
    );

    // The threads exit: their destructors run in the unloaded libraries
    // (which are still mapped, so this does not crash). glibc unmaps such a
    // library at the next dlclose of any library: load and unload another.
    for worker in workers {
        worker.exit();
    }
    let other = crate::host();
    let trigger = fixture(root.path(), "tls-trigger", &[], "");
    other.load(&trigger).unwrap();
    drop(other);
    assert_eq!(
        mapped(),
        Vec::<String>::new(),
        "unmapped once their threads exited"
    );
}
