//! The output side of `aiplug review`: the `code-review` plugin's findings,
//! the report formats, the `--fail-on` exit status and the `--diff` reader.
//!
//! ```ignore
//! let output: ReviewOutput = serde_json::from_slice(&plugin_answer)?;
//! let report = Report {
//!     files: vec![FileReport { path, source, findings: output.findings, dropped: output.dropped }],
//!     model: output.model,
//! };
//! print!("{}", Format::Text.render(&report, color, None));
//! std::process::ExitCode::from(report.exit_code(FailOn(Severity::Error)))
//! ```

pub mod diff;
pub mod findings;
pub mod json;
pub mod rdjsonl;
pub mod sarif;
pub mod text;

use std::path::Path;

// The facade of the module, whole: the binary uses only part of it.
#[allow(unused_imports)]
pub use diff::{DiffError, DiffErrorKind, DiffFile};
#[allow(unused_imports)]
pub use findings::{
    exit_code, Counts, Dropped, FailOn, FileReport, Finding, Located, Report, ReviewOutput, Severity, Span,
    UnknownSeverity,
};

/// The `--format` of `aiplug review`. Defaults to [`Format::Text`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compiler-style diagnostics and a summary ([`text`]).
    #[default]
    Text,
    /// aiplug's own JSON report ([`json`]).
    Json,
    /// SARIF 2.1.0 for GitHub code scanning ([`sarif`]).
    Sarif,
    /// reviewdog's JSON Lines diagnostics ([`rdjsonl`]).
    Rdjsonl,
}

impl Format {
    /// Renders `report` in this format, ready to print to standard output.
    ///
    /// `color` applies to [`Format::Text`] only; `srcroot` (the directory
    /// relative paths start from) to [`Format::Sarif`] only.
    pub fn render(self, report: &Report, color: bool, srcroot: Option<&Path>) -> String {
        match self {
            Format::Text => text::render(report, color),
            Format::Json => json::render(report),
            Format::Sarif => sarif::render(report, srcroot),
            Format::Rdjsonl => rdjsonl::render(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::findings::tests::sample_report;

    #[test]
    fn every_format_renders_the_report() {
        let report = sample_report();
        let text = Format::Text.render(&report, false, None);
        assert!(text.starts_with("examples/buggy.go:4:2: info[nil-map]"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&Format::Json.render(&report, true, None)).unwrap();
        assert_eq!(json["summary"]["errors"], 1);
        let sarif: serde_json::Value =
            serde_json::from_str(&Format::Sarif.render(&report, false, None)).unwrap();
        assert_eq!(sarif["version"], "2.1.0");
        assert_eq!(Format::Rdjsonl.render(&report, true, None).lines().count(), 3);
        assert_eq!(Format::default(), Format::Text);
    }
}
