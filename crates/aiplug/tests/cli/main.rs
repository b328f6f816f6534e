//! The `aiplug` binary driven the way a user drives it: arguments in,
//! stdout/stderr/exit status out, with real plugins built by the test.

mod doctor;
#[cfg(feature = "local-llm")]
mod models;
mod plugins;
mod remote;
mod review;
mod run;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod serve_openai;
mod trust;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aiplug_testkit as kit;

/// What a run of the binary printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `aiplug args...` in `cwd` with `stdin` as standard input.
pub fn aiplug(cwd: &Path, args: &[&str], stdin: &[u8]) -> Run {
    aiplug_env(cwd, args, stdin, &[])
}

/// Like [`aiplug`], with environment changes (`None` removes the variable).
///
/// Unsigned plugins are allowed (`AIPLUG_ALLOW_UNSIGNED=1`): the tests
/// build their plugins on the fly. The trust tests remove the variable.
pub fn aiplug_env(cwd: &Path, args: &[&str], stdin: &[u8], env: &[(&str, Option<&str>)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aiplug"));
    command.env("AIPLUG_ALLOW_UNSIGNED", "1");
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = command
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aiplug starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("aiplug runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Stages `plugins/<name>` with its real manifest and `artefact` under `parent`.
pub fn example(parent: &Path, name: &str, artefact: &Path) -> PathBuf {
    let manifest =
        std::fs::read_to_string(kit::repo_root().join("plugins").join(name).join("plugin.toml")).unwrap();
    let entry = manifest
        .lines()
        .find_map(|l| l.strip_prefix("entry = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("manifest names its entry");
    kit::stage(parent, name, &manifest, artefact, entry)
}

/// A plugins directory with the three example plugins.
pub fn examples(parent: &Path) -> PathBuf {
    let dir = parent.join("plugins");
    example(&dir, "prompt-decorator", &kit::cargo_plugin("prompt-decorator"));
    example(
        &dir,
        "secret-redactor",
        &kit::c_plugin("plugins/secret-redactor/secret_redactor.c", &[]),
    );
    example(&dir, "go-format", &kit::go_plugin());
    dir
}

/// The test plugin with `config` lines, under `parent/<dir>`.
pub fn behaviour(parent: &Path, dir: &str, config: &str) -> PathBuf {
    let lib = kit::cargo_plugin("test-behaviour");
    let manifest = kit::manifest(
        "test-behaviour",
        "libtest_behaviour.so",
        &format!("[config]\n{config}\n"),
    );
    kit::stage(parent, dir, &manifest, &lib, "libtest_behaviour.so")
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn help_explains_where_plugins_come_from() {
    let dir = tempdir();
    let run = aiplug(dir.path(), &["--help"], b"");
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("plugin.toml"), "{}", run.stdout);
    for command in ["plugins", "doctor", "run", "filter"] {
        assert!(run.stdout.contains(command), "{command} missing from --help");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    let run = aiplug(dir.path(), &["run"], b"");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("TARGET") || run.stderr.contains("<TARGET>"),
        "{}",
        run.stderr
    );
}
