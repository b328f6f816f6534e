//! Compiler-style diagnostics for a terminal or a log:
//!
//! ```text
//! examples/buggy.go:23:5: error[nil-map-write]: assignment to entry in nil map
//!    |
//! 23 |     counts[word]++
//!    |     ^^^^^^^^^^^^^^
//!    = suggestion: initialise the map: counts := make(map[string]int)
//!
//! 1 finding (1 error) in 1 file; 2 unverified findings dropped
//! ```
//!
//! The marker sits under the quoted code when it is on the line, else under
//! the line without its indentation. Tabs are shown as four spaces.

use std::fmt::Write as _;

use super::findings::{source_line, FileReport, Finding, Report, Severity};

/// At most this many source lines are shown for a finding over several.
const MAX_LINES: u32 = 4;
/// Tabs in source lines are shown as this many spaces.
const TAB_WIDTH: usize = 4;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const GUTTER: &str = "\x1b[1;34m";

fn severity_color(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "\x1b[1;31m",
        Severity::Warning => "\x1b[1;33m",
        Severity::Info => "\x1b[1;34m",
    }
}

/// ANSI colouring that is a no-op when off.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(self, style: &str, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// Renders `report` as diagnostics followed by a summary line (see
/// [`summary`]), each line ending in `\n`.
///
/// With `color`, severities are red (error), yellow (warning) or blue
/// (info), and locations and rule ids bold, in ANSI escapes. The caller
/// decides: on when standard output is a terminal and `NO_COLOR` is unset.
/// Control characters in the model's text are shown as `\u{fffd}`, so a
/// finding cannot send escapes to the terminal.
pub fn render(report: &Report, color: bool) -> String {
    let paint = Paint(color);
    let mut out = String::new();
    for file in &report.files {
        for finding in file.sorted_findings() {
            diagnostic(&mut out, file, finding, paint);
            out.push('\n');
        }
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

/// The closing line: `3 findings (2 errors, 1 warning) in 1 file; 2
/// unverified findings dropped`, or `no findings in 2 files`. Findings
/// dropped as unverified (lines out of range, quotes not in the file,
/// malformed) and, with `--diff`, those outside the changed lines are
/// counted; duplicates merged from overlapping chunks are not.
pub fn summary(report: &Report) -> String {
    let counts = report.counts();
    let dropped = report.dropped();
    let mut line = if counts.total() == 0 {
        "no findings".to_string()
    } else {
        let mut parts = Vec::new();
        if counts.errors > 0 {
            parts.push(plural(counts.errors, "error", "errors"));
        }
        if counts.warnings > 0 {
            parts.push(plural(counts.warnings, "warning", "warnings"));
        }
        if counts.infos > 0 {
            parts.push(plural(counts.infos, "info", "info"));
        }
        format!(
            "{} ({})",
            plural(counts.total(), "finding", "findings"),
            parts.join(", ")
        )
    };
    let files = u32::try_from(report.files.len()).unwrap_or(u32::MAX);
    let _ = write!(line, " in {}", plural(files, "file", "files"));
    if dropped.unverified() > 0 {
        let _ = write!(
            line,
            "; {} dropped",
            plural(dropped.unverified(), "unverified finding", "unverified findings")
        );
    }
    if dropped.outside_changed_lines > 0 {
        let _ = write!(
            line,
            "; {} outside the changed lines skipped",
            plural(dropped.outside_changed_lines, "finding", "findings")
        );
    }
    line
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn diagnostic(out: &mut String, file: &FileReport, finding: &Finding, paint: Paint) {
    let located = finding.locate(&file.source);
    let color = severity_color(finding.severity);
    let location = match located.span {
        Some(span) => format!("{}:{}:{}:", file.path, located.line, span.column),
        None => format!("{}:{}:", file.path, located.line),
    };
    let _ = writeln!(
        out,
        "{} {}[{}]: {}",
        paint.paint(BOLD, &clean(&location)),
        paint.paint(color, finding.severity.as_str()),
        paint.paint(BOLD, &finding.rule()),
        clean(&finding.message).replace('\n', " "),
    );

    let last = located.end_line.min(located.line + MAX_LINES - 1);
    let shown: Vec<(u32, &str)> = (located.line..=last)
        .map_while(|n| source_line(&file.source, n).map(|text| (n, text)))
        .collect();
    let width = last.to_string().len();
    let pad = " ".repeat(width);
    let bar = paint.paint(GUTTER, "|");
    if !shown.is_empty() {
        let _ = writeln!(out, "{pad} {bar}");
    }
    for (n, text) in &shown {
        let number = paint.paint(GUTTER, &format!("{n:>width$}"));
        let _ = writeln!(out, "{}", format!("{number} {bar} {}", display(text)).trim_end());
        if *n == located.line {
            if let Some(span) = located.span {
                let chars: Vec<char> = text.chars().collect();
                let start = (span.column as usize - 1).min(chars.len());
                let end = (start + span.width as usize).min(chars.len());
                let indent = display_width(&chars[..start]);
                let carets = display_width(&chars[start..end]).max(1);
                let _ = writeln!(
                    out,
                    "{pad} {bar} {}{}",
                    " ".repeat(indent),
                    paint.paint(color, &"^".repeat(carets))
                );
            }
        }
    }
    if located.end_line > last && !shown.is_empty() {
        let _ = writeln!(out, "{}", paint.paint(GUTTER, &format!("{:>width$}", "...")));
    }
    if !finding.suggestion.trim().is_empty() {
        let equals = paint.paint(GUTTER, "=");
        let continuation = format!("{pad}   {}", " ".repeat("suggestion: ".len()));
        let suggestion = clean(finding.suggestion.trim());
        let mut lines = suggestion.lines();
        let _ = writeln!(
            out,
            "{pad} {equals} suggestion: {}",
            lines.next().unwrap_or_default()
        );
        for line in lines {
            let _ = writeln!(out, "{}", format!("{continuation}{line}").trim_end());
        }
    }
}

/// `text` with control characters other than newlines and tabs replaced.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// A source line as shown: tabs expanded, control characters replaced.
fn display(text: &str) -> String {
    clean(text).replace('\t', &" ".repeat(TAB_WIDTH))
}

fn display_width(chars: &[char]) -> usize {
    chars.iter().map(|&c| if c == '\t' { TAB_WIDTH } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::findings::tests::sample_report;
    use crate::review::findings::{Dropped, Report};

    const EXPECTED: &str = "\
examples/buggy.go:4:2: info[nil-map]: counts is declared but never initialised
  |
4 |     var counts map[string]int
  |     ^^^^^^^^^^^^^^^^^^^^^^^^^

examples/buggy.go:6:3: error[nil-map-write]: assignment to entry in nil map
  |
6 |         counts[word]++
  |         ^^^^^^^^^^^^^^
  = suggestion: initialise the map: counts := make(map[string]int)

examples/buggy.go:12:9: warning[division-by-zero]: n may be zero
   |
12 |     return total / n
   |            ^^^^^^^^^

3 findings (1 error, 1 warning, 1 info) in 1 file; 2 unverified findings dropped
";

    #[test]
    fn renders_compiler_style_diagnostics_and_a_summary() {
        assert_eq!(render(&sample_report(), false), EXPECTED);
    }

    #[test]
    fn colours_only_when_asked() {
        let plain = render(&sample_report(), false);
        assert!(!plain.contains('\x1b'));
        let coloured = render(&sample_report(), true);
        assert!(
            coloured.contains("\x1b[1;31merror\x1b[0m[\x1b[1mnil-map-write\x1b[0m]"),
            "{coloured}"
        );
        assert!(coloured.contains("\x1b[1;33mwarning\x1b[0m"));
        assert!(coloured.contains("\x1b[1;34minfo\x1b[0m"));
        assert!(coloured.contains("\x1b[1mexamples/buggy.go:6:3:\x1b[0m"));
        // Without the escapes it is the plain text.
        let mut stripped = String::new();
        let mut rest = coloured.as_str();
        while let Some(at) = rest.find('\x1b') {
            stripped.push_str(&rest[..at]);
            rest = &rest[at + rest[at..].find('m').unwrap() + 1..];
        }
        stripped.push_str(rest);
        assert_eq!(stripped, plain);
    }

    #[test]
    fn summary_counts_findings_files_and_what_was_dropped() {
        let mut report = sample_report();
        assert_eq!(
            summary(&report),
            "3 findings (1 error, 1 warning, 1 info) in 1 file; 2 unverified findings dropped"
        );
        report.files[0].findings.truncate(1);
        report.files[0].dropped = Dropped {
            malformed: 1,
            outside_changed_lines: 4,
            ..Dropped::default()
        };
        report.files.push(report.files[0].clone());
        assert_eq!(
            summary(&report),
            "2 findings (2 warnings) in 2 files; 2 unverified findings dropped; \
             8 findings outside the changed lines skipped"
        );
        let clean = Report {
            files: vec![Default::default()],
            model: String::new(),
        };
        assert_eq!(summary(&clean), "no findings in 1 file");
        assert_eq!(render(&clean, false), "no findings in 1 file\n");
    }

    #[test]
    fn unverifiable_findings_are_never_shown_only_counted() {
        // Only what is in `findings` is printed; dropped ones appear in the
        // summary alone, whatever their number.
        let mut report = sample_report();
        report.files[0].findings.clear();
        report.files[0].dropped.quote_not_in_file = 5;
        let text = render(&report, false);
        assert_eq!(text, "no findings in 1 file; 6 unverified findings dropped\n");
    }

    #[test]
    fn long_findings_suggestions_and_escapes() {
        let mut report = sample_report();
        let file = &mut report.files[0];
        file.findings.truncate(1);
        let finding = &mut file.findings[0];
        finding.line = 3;
        finding.end_line = 9;
        finding.column = None;
        finding.quote = "func count".into();
        finding.message = "bad\x1b[31m loop\nsecond".into();
        finding.suggestion = "first\nsecond line".into();
        let text = render(&report, false);
        let expected = "\
examples/buggy.go:3:1: warning[division-by-zero]: bad\u{fffd}[31m loop second
  |
3 | func count(words []string) map[string]int {
  | ^^^^^^^^^^
4 |     var counts map[string]int
5 |     for _, word := range words {
6 |         counts[word]++
...
  = suggestion: first
                second line
";
        assert!(text.starts_with(expected), "{text}");
        // A line past the end of the file: the header alone.
        let finding = &mut report.files[0].findings[0];
        finding.line = 40;
        finding.end_line = 40;
        finding.suggestion.clear();
        let text = render(&report, false);
        assert!(
            text.starts_with("examples/buggy.go:40: warning[division-by-zero]: "),
            "{text}"
        );
        assert_eq!(text.lines().nth(1), Some(""));
    }
}
