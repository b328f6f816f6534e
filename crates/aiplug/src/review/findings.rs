//! What the `code-review` plugin returns, and the report the output formats
//! take.
//!
//! The plugin answers `invoke` with a [`ReviewOutput`] as JSON:
//!
//! ```json
//! {"findings": [{"path": "main.go", "line": 12, "end_line": 12, "column": 5,
//!                "severity": "error", "rule_id": "nil-map-write",
//!                "message": "assignment to entry in nil map",
//!                "suggestion": "initialise the map", "quote": "counts[word]++"}],
//!  "dropped": {"line_out_of_range": 0, "quote_not_in_file": 0,
//!              "outside_changed_lines": 0, "malformed": 0, "duplicate": 0},
//!  "chunks": 1, "model": "deepseek-coder"}
//! ```
//!
//! The CLI puts one [`FileReport`] per reviewed file into a [`Report`], which
//! every output format renders.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// How serious a finding is. Ordered `Info < Warning < Error`.
///
/// Serialised in lower case (`"error"`); parsed case-insensitively, both by
/// [`FromStr`] and when deserialising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not necessarily wrong.
    Info,
    /// Probably wrong, or fragile.
    Warning,
    /// A bug.
    Error,
}

impl Severity {
    /// The lower-case name: `"error"`, `"warning"` or `"info"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is none of `error`, `warning`, `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSeverity(pub String);

impl fmt::Display for UnknownSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown severity {:?}: expected error, warning or info",
            self.0
        )
    }
}

impl std::error::Error for UnknownSeverity {}

impl FromStr for Severity {
    type Err = UnknownSeverity;

    /// Parses `error`, `warning` or `info` in any case, surrounding spaces
    /// ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(Severity::Error),
            "warning" => Ok(Severity::Warning),
            "info" => Ok(Severity::Info),
            _ => Err(UnknownSeverity(s.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The `--fail-on` threshold: findings of this severity or a higher one make
/// the review fail (see [`exit_code`]). Defaults to [`Severity::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailOn(pub Severity);

impl FailOn {
    /// Whether a finding of `severity` is at or above the threshold.
    pub fn fails(self, severity: Severity) -> bool {
        severity >= self.0
    }
}

impl Default for FailOn {
    fn default() -> Self {
        FailOn(Severity::Error)
    }
}

impl From<Severity> for FailOn {
    fn from(severity: Severity) -> Self {
        FailOn(severity)
    }
}

impl FromStr for FailOn {
    type Err = UnknownSeverity;

    /// Parses a severity name, as [`Severity::from_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(FailOn)
    }
}

/// The exit status for a review that ran to the end: 0 when no finding is
/// at or above `fail_on`, 1 when at least one is.
///
/// Status 2 (a usage or runtime error) is never returned here: the caller
/// decides it when the review could not run.
pub fn exit_code<'a>(findings: impl IntoIterator<Item = &'a Finding>, fail_on: FailOn) -> u8 {
    u8::from(findings.into_iter().any(|f| fail_on.fails(f.severity)))
}

/// One verified finding of the `code-review` plugin.
///
/// Lines are 1-based; `end_line` is inclusive. `column`, when the model gave
/// one, is the 1-based column in characters (a tab counts as one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The file, as the plugin was given it.
    pub path: String,
    /// First line of the finding.
    pub line: u32,
    /// Last line of the finding (inclusive); equal to `line` for one line.
    pub end_line: u32,
    /// 1-based character column on `line`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// How serious it is.
    pub severity: Severity,
    /// A short kebab-case rule name, e.g. `nil-map-write`. See
    /// [`Finding::rule`] for the normalised form the formats print.
    pub rule_id: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it; empty when the model had no suggestion.
    #[serde(default)]
    pub suggestion: String,
    /// The code the finding is about, copied from the file (the plugin has
    /// checked that it is there).
    pub quote: String,
}

impl Finding {
    /// The rule id as every format prints it: lower case, runs of characters
    /// other than ASCII letters and digits turned into one `-`, no leading or
    /// trailing `-`; `unnamed` when nothing is left. `Nil Map_Write` becomes
    /// `nil-map-write`, so a rule keeps one id across runs even when the
    /// model spells it differently.
    pub fn rule(&self) -> String {
        let mut id = String::with_capacity(self.rule_id.len());
        for c in self.rule_id.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(c.to_ascii_lowercase());
            } else if !id.is_empty() && !id.ends_with('-') {
                id.push('-');
            }
        }
        while id.ends_with('-') {
            id.pop();
        }
        if id.is_empty() {
            id.push_str("unnamed");
        }
        id
    }

    /// Where the finding is in `source` (the text of the file it is about),
    /// for the markers and columns the formats print. See [`Located`].
    pub fn locate(&self, source: &str) -> Located {
        let line = self.line.max(1);
        let end_line = self.end_line.max(line);
        let mut located = Located {
            line,
            end_line,
            span: None,
            exact: false,
        };
        let Some(text) = source_line(source, line) else {
            return located;
        };
        let chars: Vec<char> = text.chars().collect();
        let quote = self.quote.lines().map(str::trim).find(|l| !l.is_empty());
        if let Some(quote) = quote {
            let starts = match_starts(&chars, quote);
            let wanted = self.column.map_or(0, |c| c.saturating_sub(1) as usize);
            // The occurrence at or after the model's column, else the last
            // one before it.
            let start = starts
                .iter()
                .copied()
                .find(|&s| s >= wanted)
                .or_else(|| starts.last().copied());
            if let Some(start) = start {
                located.span = Some(Span {
                    column: start as u32 + 1,
                    width: quote.chars().count() as u32,
                });
                located.exact = true;
                return located;
            }
        }
        let content_end = chars
            .iter()
            .rposition(|c| !c.is_whitespace())
            .map_or(0, |i| i + 1);
        let start = match self.column {
            Some(c) if c >= 1 && (c as usize) <= content_end => c as usize - 1,
            _ => match chars.iter().position(|c| !c.is_whitespace()) {
                Some(first) => first,
                None => return located,
            },
        };
        located.span = Some(Span {
            column: start as u32 + 1,
            width: (content_end - start).max(1) as u32,
        });
        located
    }
}

/// Character positions in `haystack` where `needle` starts.
fn match_starts(haystack: &[char], needle: &str) -> Vec<usize> {
    let needle: Vec<char> = needle.chars().collect();
    if needle.is_empty() || needle.len() > haystack.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len())
        .filter(|&i| haystack[i..i + needle.len()] == needle[..])
        .collect()
}

/// Line `line` (1-based) of `source`, without its line ending; `None` past
/// the end.
pub fn source_line(source: &str, line: u32) -> Option<&str> {
    let index = (line as usize).checked_sub(1)?;
    let body = source.strip_suffix('\n').unwrap_or(source);
    body.split('\n')
        .nth(index)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Where a [`Finding`] sits in its file, worked out by [`Finding::locate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// First line (1-based).
    pub line: u32,
    /// Last line (inclusive), at least `line`.
    pub end_line: u32,
    /// The characters to mark on `line`; `None` when the line is blank or
    /// past the end of the file.
    pub span: Option<Span>,
    /// Whether `span` is the quoted code found on the line. When false the
    /// span is a guess: from the model's column, or the whole line without
    /// its indentation, to the end of the line's text.
    pub exact: bool,
}

/// A run of characters on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 1-based character column of the first character.
    pub column: u32,
    /// Number of characters, at least 1.
    pub width: u32,
}

/// Findings the plugin could not stand behind, counted by reason. None of
/// them is ever shown as a finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dropped {
    /// The line (or end line) is not in the file.
    pub line_out_of_range: u32,
    /// The quoted code is not in the file at that place.
    pub quote_not_in_file: u32,
    /// With `--diff`: about lines the change did not touch.
    pub outside_changed_lines: u32,
    /// Missing fields, an unknown severity, or not an object.
    pub malformed: u32,
    /// The same finding twice (overlapping chunks).
    pub duplicate: u32,
}

impl Dropped {
    /// Every dropped finding, whatever the reason.
    pub fn total(&self) -> u32 {
        self.unverified() + self.outside_changed_lines + self.duplicate
    }

    /// Findings dropped because they could not be verified against the file:
    /// out-of-range lines, quotes not in the file, malformed entries. These
    /// are what the text summary calls "unverified".
    pub fn unverified(&self) -> u32 {
        self.line_out_of_range + self.quote_not_in_file + self.malformed
    }
}

impl std::ops::AddAssign for Dropped {
    fn add_assign(&mut self, other: Dropped) {
        self.line_out_of_range += other.line_out_of_range;
        self.quote_not_in_file += other.quote_not_in_file;
        self.outside_changed_lines += other.outside_changed_lines;
        self.malformed += other.malformed;
        self.duplicate += other.duplicate;
    }
}

/// The JSON the `code-review` plugin returns for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewOutput {
    /// The verified findings.
    pub findings: Vec<Finding>,
    /// What was dropped and why; all zero when absent.
    #[serde(default)]
    pub dropped: Dropped,
    /// How many chunks the file was reviewed in; 0 when absent.
    #[serde(default)]
    pub chunks: u32,
    /// The model that reviewed it; empty when absent.
    #[serde(default)]
    pub model: String,
}

/// The review of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// The path to print: relative to the repository root for SARIF.
    pub path: String,
    /// The file's text, for source lines, markers and fingerprints.
    pub source: String,
    /// Its verified findings, in any order (formats sort them by position).
    pub findings: Vec<Finding>,
    /// What the plugin dropped for this file.
    pub dropped: Dropped,
}

impl FileReport {
    /// The findings ordered by position: line, column, end line, then
    /// severity (errors first) and rule.
    pub fn sorted_findings(&self) -> Vec<&Finding> {
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by(|a, b| {
            (a.line, a.column.unwrap_or(0), a.end_line)
                .cmp(&(b.line, b.column.unwrap_or(0), b.end_line))
                .then(b.severity.cmp(&a.severity))
                .then_with(|| a.rule_id.cmp(&b.rule_id))
        });
        sorted
    }
}

/// Everything `aiplug review` found, as the output formats take it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per reviewed file, in the order they were given.
    pub files: Vec<FileReport>,
    /// The model that did the review.
    pub model: String,
}

/// Findings counted by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Findings of severity error.
    pub errors: u32,
    /// Findings of severity warning.
    pub warnings: u32,
    /// Findings of severity info.
    pub infos: u32,
}

impl Counts {
    /// All findings.
    pub fn total(&self) -> u32 {
        self.errors + self.warnings + self.infos
    }
}

impl Report {
    /// Every finding of every file.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.files.iter().flat_map(|f| f.findings.iter())
    }

    /// The findings counted by severity.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for finding in self.findings() {
            match finding.severity {
                Severity::Error => counts.errors += 1,
                Severity::Warning => counts.warnings += 1,
                Severity::Info => counts.infos += 1,
            }
        }
        counts
    }

    /// The dropped findings of all files added up.
    pub fn dropped(&self) -> Dropped {
        let mut total = Dropped::default();
        for file in &self.files {
            total += file.dropped;
        }
        total
    }

    /// [`exit_code`] over every finding.
    pub fn exit_code(&self, fail_on: FailOn) -> u8 {
        exit_code(self.findings(), fail_on)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The source of the fixed report the format tests share.
    pub const BUGGY_GO: &str = "package main\n\nfunc count(words []string) map[string]int {\n\tvar counts map[string]int\n\tfor _, word := range words {\n\t\tcounts[word]++\n\t}\n\treturn counts\n}\n\nfunc average(total, n int) int {\n\treturn total / n\n}\n";

    /// A report on one file with an error, a warning and an info finding,
    /// and three dropped findings (two unverified).
    pub fn sample_report() -> Report {
        let finding =
            |line, end_line, column, severity, rule: &str, message: &str, suggestion: &str, quote: &str| {
                Finding {
                    path: "examples/buggy.go".into(),
                    line,
                    end_line,
                    column,
                    severity,
                    rule_id: rule.into(),
                    message: message.into(),
                    suggestion: suggestion.into(),
                    quote: quote.into(),
                }
            };
        Report {
            model: "deepseek-coder".into(),
            files: vec![FileReport {
                path: "examples/buggy.go".into(),
                source: BUGGY_GO.into(),
                findings: vec![
                    finding(
                        12,
                        12,
                        None,
                        Severity::Warning,
                        "division-by-zero",
                        "n may be zero",
                        "",
                        "total / n",
                    ),
                    finding(
                        6,
                        6,
                        Some(3),
                        Severity::Error,
                        "nil-map-write",
                        "assignment to entry in nil map",
                        "initialise the map: counts := make(map[string]int)",
                        "counts[word]++",
                    ),
                    finding(
                        4,
                        4,
                        None,
                        Severity::Info,
                        "Nil Map",
                        "counts is declared but never initialised",
                        "",
                        "not on the line",
                    ),
                ],
                dropped: Dropped {
                    line_out_of_range: 1,
                    quote_not_in_file: 1,
                    duplicate: 1,
                    ..Dropped::default()
                },
            }],
        }
    }

    fn with_severity(severity: Severity) -> Finding {
        let mut finding = sample_report().files[0].findings[0].clone();
        finding.severity = severity;
        finding
    }

    #[test]
    fn severities_are_ordered_and_parse_in_any_case() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
        assert_eq!("ERROR".parse::<Severity>(), Ok(Severity::Error));
        assert_eq!(" Warning ".parse::<Severity>(), Ok(Severity::Warning));
        assert_eq!("info".parse::<Severity>(), Ok(Severity::Info));
        let error = "fatal".parse::<Severity>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown severity \"fatal\": expected error, warning or info"
        );
        let parsed: Severity = serde_json::from_str("\"Error\"").unwrap();
        assert_eq!(parsed, Severity::Error);
        assert_eq!(serde_json::to_string(&Severity::Warning).unwrap(), "\"warning\"");
        assert!(serde_json::from_str::<Severity>("\"critical\"").is_err());
    }

    #[test]
    fn exit_code_follows_the_fail_on_threshold() {
        let error = [with_severity(Severity::Error)];
        let warning = [with_severity(Severity::Warning)];
        let info = [with_severity(Severity::Info)];
        let none: [Finding; 0] = [];
        // (findings, --fail-on error, --fail-on warning, --fail-on info)
        let cases: [(&[Finding], u8, u8, u8); 4] = [
            (&error, 1, 1, 1),
            (&warning, 0, 1, 1),
            (&info, 0, 0, 1),
            (&none, 0, 0, 0),
        ];
        for (findings, on_error, on_warning, on_info) in cases {
            assert_eq!(
                exit_code(findings, "error".parse().unwrap()),
                on_error,
                "{findings:?}"
            );
            assert_eq!(
                exit_code(findings, FailOn(Severity::Warning)),
                on_warning,
                "{findings:?}"
            );
            assert_eq!(
                exit_code(findings, FailOn::from(Severity::Info)),
                on_info,
                "{findings:?}"
            );
        }
        assert_eq!(FailOn::default(), FailOn(Severity::Error));
        let report = sample_report();
        assert_eq!(report.exit_code(FailOn(Severity::Error)), 1);
        let mut no_errors = report.clone();
        no_errors.files[0]
            .findings
            .retain(|f| f.severity != Severity::Error);
        assert_eq!(no_errors.exit_code(FailOn(Severity::Error)), 0);
        assert_eq!(no_errors.exit_code(FailOn(Severity::Warning)), 1);
    }

    #[test]
    fn plugin_output_round_trips_the_json_contract() {
        let json = r#"{"findings": [{"path": "a.go", "line": 12, "end_line": 13, "column": 5,
            "severity": "error", "rule_id": "nil-map-write", "message": "m", "suggestion": "",
            "quote": "counts[word]++"},
            {"path": "a.go", "line": 2, "end_line": 2, "severity": "INFO", "rule_id": "r",
            "message": "m", "quote": "q"}],
            "dropped": {"line_out_of_range": 1, "quote_not_in_file": 2, "outside_changed_lines": 3,
            "malformed": 4, "duplicate": 5}, "chunks": 2, "model": "deepseek-coder"}"#;
        let output: ReviewOutput = serde_json::from_str(json).unwrap();
        assert_eq!(output.findings.len(), 2);
        assert_eq!(output.findings[0].column, Some(5));
        assert_eq!(output.findings[0].end_line, 13);
        assert_eq!(output.findings[1].column, None);
        assert_eq!(output.findings[1].severity, Severity::Info);
        assert_eq!(output.findings[1].suggestion, "");
        assert_eq!(output.dropped.total(), 15);
        assert_eq!(output.dropped.unverified(), 7);
        assert_eq!((output.chunks, output.model.as_str()), (2, "deepseek-coder"));
        let again: ReviewOutput = serde_json::from_value(serde_json::to_value(&output).unwrap()).unwrap();
        assert_eq!(again, output);
        let value = serde_json::to_value(&output.findings[1]).unwrap();
        assert!(value.get("column").is_none(), "{value}");
        // Missing dropped counts are zero; a finding without a line is an error.
        let minimal: ReviewOutput = serde_json::from_str(r#"{"findings": []}"#).unwrap();
        assert_eq!(minimal.dropped, Dropped::default());
        let bad = r#"{"findings": [{"path": "a.go", "severity": "error", "rule_id": "r", "message": "m", "quote": "q"}]}"#;
        assert!(serde_json::from_str::<ReviewOutput>(bad).is_err());
    }

    #[test]
    fn rule_ids_are_normalised() {
        let mut finding = with_severity(Severity::Error);
        for (given, expected) in [
            ("nil-map-write", "nil-map-write"),
            ("Nil Map_Write", "nil-map-write"),
            ("  --x::y--  ", "x-y"),
            ("", "unnamed"),
            ("??", "unnamed"),
        ] {
            finding.rule_id = given.into();
            assert_eq!(finding.rule(), expected, "{given:?}");
        }
    }

    #[test]
    fn locate_finds_the_quote_and_falls_back_to_the_trimmed_line() {
        let report = sample_report();
        let findings = &report.files[0].findings;
        let source = BUGGY_GO;
        // The quote, at its place on the line (a tab is one column).
        let located = findings[1].locate(source);
        assert_eq!(located.span, Some(Span { column: 3, width: 14 }));
        assert!(located.exact);
        // The quote is not on the line: the line without its indentation.
        let located = findings[2].locate(source);
        assert_eq!(located.span, Some(Span { column: 2, width: 25 }));
        assert!(!located.exact);
        // The model's column picks among repeated quotes.
        let mut twice = findings[0].clone();
        twice.quote = "n".into();
        assert_eq!(twice.locate(source).span.unwrap().column, 7);
        twice.column = Some(14);
        assert_eq!(twice.locate(source).span.unwrap().column, 17);
        twice.column = Some(30);
        assert_eq!(twice.locate(source).span.unwrap().column, 17);
        // Past the end of the file or on a blank line: nothing to mark.
        twice.line = 99;
        twice.end_line = 99;
        assert_eq!(twice.locate(source).span, None);
        twice.line = 2;
        twice.end_line = 1;
        let located = twice.locate(source);
        assert_eq!((located.span, located.end_line), (None, 2));
    }

    #[test]
    fn source_lines_are_one_based_without_line_endings() {
        assert_eq!(source_line("a\r\nb\n", 1), Some("a"));
        assert_eq!(source_line("a\r\nb\n", 2), Some("b"));
        assert_eq!(source_line("a\r\nb\n", 3), None);
        assert_eq!(source_line("a\nb", 2), Some("b"));
        assert_eq!(source_line("a", 0), None);
        assert_eq!(source_line("", 1), Some(""));
    }
}
