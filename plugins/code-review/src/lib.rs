//! `code-review`: a native aiplug plugin that reviews a source file for
//! bugs with a model and returns findings that can be printed as fact.
//!
//! It serves the `code-review` task through `invoke`. Input and output are
//! JSON (see [`Input`] and [`Output`]):
//!
//! ```json
//! {"path": "examples/buggy.go", "source": "package main\n...", "language": "go",
//!  "changed_lines": [[10, 14]], "model": "deepseek-v4-flash", "context_tokens": 8192}
//! ```
//!
//! (`path` and `source` are required; `max_tokens` may also override the
//! configured answer length.) The output:
//!
//! ```json
//! {"findings": [{"path": "examples/buggy.go", "line": 84, "end_line": 84, "column": 3,
//!                "severity": "error", "rule_id": "nil-map-write", "message": "...",
//!                "suggestion": "...", "quote": "r.Totals[o.Customer] += o.Amount"}],
//!  "dropped": {"line_out_of_range": 0, "quote_not_in_file": 1, "outside_changed_lines": 0,
//!              "malformed": 0, "duplicate": 0},
//!  "chunks": 1, "model": "deepseek-v4-flash"}
//! ```
//!
//! How: the file, numbered with its real line numbers, goes to the model in
//! chunks that fit its context ([`chunk`]) with the configured rules and
//! the JSON shape to answer with ([`prompt`]; JSON mode); the answer's JSON
//! is dug out of whatever the model wrapped it in ([`answer`]); each finding
//! must name a line of the chunk and quote code that is on that line, give
//! or take two ([`validate`]), and what fails is dropped and counted.
//!
//! Config (`[config]` in plugin.toml, all optional): see [`Config`].

#![deny(missing_docs)]

pub mod answer;
pub mod chunk;
pub mod config;
pub mod lang;
pub mod prompt;
pub mod review;
pub mod validate;

use aiplug_sdk::{export_plugin, Context, Error, Hooks, Level, Plugin};

pub use config::Config;
pub use review::{review, Input, ModelHost, Output};
pub use validate::{Dropped, Finding, Severity};

/// The task this plugin serves.
pub const TASK: &str = "code-review";

/// The plugin: its configuration, fixed for the loaded version.
pub struct CodeReview {
    config: Config,
}

impl CodeReview {
    /// The plugin with `config`.
    pub fn new(config: Config) -> CodeReview {
        CodeReview { config }
    }
}

/// The aiplug host, as the review sees it.
struct Host<'c, 'a>(&'c Context<'a>);

impl ModelHost for Host<'_, '_> {
    fn infer(&self, model: &str, request_json: &str) -> Result<String, Error> {
        self.0.infer(model, request_json)
    }

    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    fn note(&self, message: &str) {
        self.0.log(Level::Debug, message);
    }
}

impl Plugin for CodeReview {
    const ID: &'static str = "code-review";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const TASKS: &'static [&'static str] = &[TASK];
    const HOOKS: Hooks = Hooks::INVOKE;

    fn load(ctx: &Context<'_>, config_json: &str) -> Result<Self, Error> {
        let config = Config::from_json(config_json).map_err(Error::new)?;
        ctx.log(
            Level::Debug,
            &format!(
                "code-review configured: model {:?}, {} rules, max_findings {}",
                config.model,
                config.rules.len(),
                config.max_findings
            ),
        );
        Ok(CodeReview::new(config))
    }

    fn invoke(&self, ctx: &Context<'_>, input: &[u8]) -> Result<Vec<u8>, Error> {
        if let Some(task) = ctx.task().filter(|t| *t != TASK) {
            return Err(Error::unsupported(format!(
                "task {task:?}: code-review serves only {TASK:?}"
            )));
        }
        let input = Input::from_json(input)?;
        let output = review(&self.config, &input, &Host(ctx))?;
        serde_json::to_vec(&output).map_err(|e| Error::new(format!("cannot serialise the findings: {e}")))
    }
}

export_plugin!(CodeReview);
