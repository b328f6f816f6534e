//! `aiplug review`: code review through the `code-review` plugin, for
//! terminals and CI.
//!
//! Exit status: 0 clean, 1 findings at or above `--fail-on`, 2 usage or
//! runtime error (a file that cannot be reviewed, no code-review plugin, a
//! model that fails or answers nonsense).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aiplug_host::{CallError, CallOptions, Host};
use serde_json::json;

use crate::review::{diff, FailOn, FileReport, Format, Report, ReviewOutput};
use crate::Global;

/// The task the review plugin serves.
const TASK: &str = "code-review";

/// Answer budget per chunk on local models.
const LOCAL_MAX_TOKENS: u32 = 384;

/// `aiplug review` options.
pub struct ReviewArgs {
    /// Files to review; with `diff`, diff files (`-` or none: stdin).
    pub paths: Vec<PathBuf>,
    /// Review a unified diff instead of whole files.
    pub diff: bool,
    /// Output format.
    pub format: Format,
    /// Exit 1 when a finding is at least this severe.
    pub fail_on: FailOn,
    /// Model name.
    pub model: Option<String>,
    /// Language, instead of guessing from the extension.
    pub lang: Option<String>,
}

/// A failure that exits 2, with the message to print.
struct Fatal(String);

/// `aiplug review PATH... [--diff]`.
pub fn run(global: &Global, args: ReviewArgs) -> anyhow::Result<ExitCode> {
    match review(global, &args) {
        Ok(code) => Ok(code),
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(2))
        }
    }
}

fn review(global: &Global, args: &ReviewArgs) -> Result<ExitCode, Fatal> {
    let targets = targets(args)?;
    let fatal = |e: anyhow::Error| Fatal(format!("{e:#}"));
    let table = super::model_table(global).map_err(fatal)?;
    let (host, refused) = super::load_host(global).map_err(fatal)?;
    super::warn_refused(&refused);
    let model = args.model.clone().unwrap_or_else(|| table.default.clone());
    if args.model.is_none() {
        eprintln!("model: {model} ({})", table.default_reason);
    }
    let info = host.models().into_iter().find(|m| m.name == model);
    let context_tokens = info.as_ref().and_then(|m| m.context_length).unwrap_or(4096);
    // Small local models rarely have more to say than this, and a long
    // answer on two CPU cores takes minutes; remote models keep the
    // plugin's configured budget.
    let max_tokens = info
        .as_ref()
        .filter(|m| m.provider == "local")
        .map(|_| LOCAL_MAX_TOKENS);

    let mut report = Report {
        files: Vec::new(),
        model: model.clone(),
    };
    for target in targets {
        let Some(source) = read_source(&target.path)? else {
            eprintln!("{}: empty file, nothing to review", target.path.display());
            continue;
        };
        let mut input = json!({
            "path": display_path(&target.path),
            "source": source,
            "model": model,
            "context_tokens": context_tokens,
        });
        if let Some(max_tokens) = max_tokens {
            input["max_tokens"] = json!(max_tokens);
        }
        if let Some(lang) = &args.lang {
            input["language"] = json!(lang);
        }
        if let Some(changed) = &target.changed_lines {
            input["changed_lines"] = json!(changed);
        }
        let output = call_plugin(&host, &target.path, &input)?;
        report.files.push(FileReport {
            path: display_path(&target.path),
            source,
            findings: output.findings,
            dropped: output.dropped,
        });
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let srcroot = std::env::current_dir().ok();
    print!("{}", args.format.render(&report, color, srcroot.as_deref()));
    Ok(ExitCode::from(report.exit_code(args.fail_on)))
}

/// One file to review, and for `--diff` the lines that changed.
struct Target {
    path: PathBuf,
    changed_lines: Option<Vec<(u32, u32)>>,
}

fn targets(args: &ReviewArgs) -> Result<Vec<Target>, Fatal> {
    if !args.diff {
        if args.paths.is_empty() {
            return Err(Fatal(
                "name the files to review (or pass --diff and a diff on stdin)".into(),
            ));
        }
        return Ok(args
            .paths
            .iter()
            .map(|p| Target {
                path: p.clone(),
                changed_lines: None,
            })
            .collect());
    }
    let mut text = String::new();
    let sources: Vec<Option<&Path>> = if args.paths.is_empty() {
        vec![None]
    } else {
        args.paths.iter().map(|p| Some(p.as_path())).collect()
    };
    for source in sources {
        let bytes = super::read_input(source).map_err(|e| Fatal(format!("{e:#}")))?;
        text.push_str(&String::from_utf8_lossy(&bytes));
        text.push('\n');
    }
    let files = diff::parse(&text).map_err(|e| Fatal(format!("cannot read the diff: {e}")))?;
    if files.is_empty() {
        eprintln!("the diff adds or changes no lines: nothing to review");
    }
    Ok(files
        .into_iter()
        .map(|f| Target {
            path: PathBuf::from(f.path),
            changed_lines: Some(f.added),
        })
        .collect())
}

/// The file's text; `None` when it is empty. Missing, unreadable and binary
/// files are errors.
fn read_source(path: &Path) -> Result<Option<String>, Fatal> {
    let bytes = std::fs::read(path).map_err(|e| {
        Fatal(match e.kind() {
            std::io::ErrorKind::NotFound => format!("{}: no such file", path.display()),
            _ => format!("{}: cannot read: {e}", path.display()),
        })
    })?;
    if bytes.contains(&0) {
        return Err(Fatal(format!(
            "{}: is a binary file, not source code",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Fatal(format!(
            "{}: is not UTF-8 text (binary or another encoding)",
            path.display()
        ))
    })?;
    Ok((!text.trim().is_empty()).then_some(text))
}

fn call_plugin(host: &Host, path: &Path, input: &serde_json::Value) -> Result<ReviewOutput, Fatal> {
    let spinner = std::io::stderr().is_terminal().then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message(format!("reviewing {} …", path.display()));
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    });
    let input = serde_json::to_vec(input).map_err(|e| Fatal(e.to_string()))?;
    let result = host.invoke(TASK, &input, &CallOptions::new());
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let output = result.map_err(|e| {
        Fatal(match e {
            CallError::NotFound { .. } => format!(
                "no loaded plugin serves the {TASK:?} task: build and stage it with scripts/build-plugins.sh \
                 (it goes to target/plugins), or point --plugins at a directory that has it"
            ),
            // The plugin's message already names the file (and the lines).
            CallError::Failed { message, .. } => message,
            other => format!("{}: {other}", path.display()),
        })
    })?;
    serde_json::from_slice(&output).map_err(|e| {
        Fatal(format!(
            "the {TASK} plugin answered something that is not a review ({e}): {}",
            String::from_utf8_lossy(&output[..output.len().min(200)])
        ))
    })
}

/// Paths as the user gave them, with forward slashes.
fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
