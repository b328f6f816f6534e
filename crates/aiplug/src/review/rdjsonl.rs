//! reviewdog's rdjsonl: one `Diagnostic` of the Reviewdog Diagnostic Format
//! per line, for `reviewdog -f=rdjsonl`.
//!
//! Positions follow the format's definition: lines from 1, columns from 1
//! counted in UTF-8 bytes, the end position exclusive, and a range whose
//! start and end both lack a column covering whole lines, end line
//! included. `suggestions` is never written: a finding's suggestion is
//! prose, not replacement text for a range, so it goes into the message.

use serde::Serialize;

use super::findings::{source_line, FileReport, Finding, Report, Severity};

/// One `Diagnostic`.
#[derive(Debug, Serialize)]
struct Diagnostic<'a> {
    message: String,
    location: Location<'a>,
    severity: &'static str,
    source: Source,
    code: Code,
}

#[derive(Debug, Serialize)]
struct Location<'a> {
    path: &'a str,
    range: Range,
}

#[derive(Debug, Serialize)]
struct Range {
    start: Position,
    end: Position,
}

#[derive(Debug, Serialize)]
struct Position {
    line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Source {
    name: &'static str,
}

#[derive(Debug, Serialize)]
struct Code {
    value: String,
}

/// One JSON object per finding, each on its own line ending in `\n`, in
/// file order and by position within a file; empty when there are no
/// findings.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for file in &report.files {
        for finding in file.sorted_findings() {
            let diagnostic = diagnostic(file, finding);
            out.push_str(&serde_json::to_string(&diagnostic).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

fn diagnostic<'a>(file: &'a FileReport, finding: &Finding) -> Diagnostic<'a> {
    let mut message = finding.message.trim().to_string();
    if !finding.suggestion.trim().is_empty() {
        message.push_str("\nSuggestion: ");
        message.push_str(finding.suggestion.trim());
    }
    Diagnostic {
        message,
        location: Location {
            path: &file.path,
            range: range(&file.source, finding),
        },
        severity: match finding.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        },
        source: Source { name: "aiplug" },
        code: Code {
            value: finding.rule(),
        },
    }
}

/// The quote exactly when it is on a one-line finding's line; from the
/// quote or the model's column to the end of the last line otherwise; whole
/// lines when there is no column.
fn range(source: &str, finding: &Finding) -> Range {
    let located = finding.locate(source);
    let lines = Range {
        start: Position {
            line: located.line,
            column: None,
        },
        end: Position {
            line: located.end_line,
            column: None,
        },
    };
    let (Some(span), Some(text)) = (located.span, source_line(source, located.line)) else {
        return lines;
    };
    if !located.exact && finding.column != Some(span.column) {
        return lines;
    }
    let start = byte_column(text, span.column);
    if located.exact && located.end_line == located.line {
        return Range {
            start: Position {
                line: located.line,
                column: Some(start),
            },
            end: Position {
                line: located.line,
                column: Some(byte_column(text, span.column + span.width)),
            },
        };
    }
    let Some(last) = source_line(source, located.end_line) else {
        return lines;
    };
    Range {
        start: Position {
            line: located.line,
            column: Some(start),
        },
        end: Position {
            line: located.end_line,
            column: Some(last.len() as u32 + 1),
        },
    }
}

/// The 1-based byte column of 1-based character column `column` of `text`.
fn byte_column(text: &str, column: u32) -> u32 {
    let chars = column.saturating_sub(1) as usize;
    let bytes = text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i);
    bytes as u32 + 1
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::review::findings::tests::sample_report;

    fn lines(report: &Report) -> Vec<Value> {
        let text = render(report);
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines().map(|l| serde_json::from_str(l).expect(l)).collect()
    }

    #[test]
    fn one_diagnostic_per_line_in_reviewdogs_format() {
        let diagnostics = lines(&sample_report());
        assert_eq!(diagnostics.len(), 3);
        // A guessed span (quote not on the line, no column): whole lines.
        assert_eq!(
            diagnostics[0],
            json!({
                "message": "counts is declared but never initialised",
                "location": {"path": "examples/buggy.go",
                             "range": {"start": {"line": 4}, "end": {"line": 4}}},
                "severity": "INFO",
                "source": {"name": "aiplug"},
                "code": {"value": "nil-map"},
            })
        );
        // The quote found: its exact byte range, end exclusive.
        assert_eq!(
            diagnostics[1],
            json!({
                "message": "assignment to entry in nil map\nSuggestion: initialise the map: counts := make(map[string]int)",
                "location": {"path": "examples/buggy.go",
                             "range": {"start": {"line": 6, "column": 3}, "end": {"line": 6, "column": 17}}},
                "severity": "ERROR",
                "source": {"name": "aiplug"},
                "code": {"value": "nil-map-write"},
            })
        );
        assert_eq!(diagnostics[2]["severity"], "WARNING");
        assert_eq!(diagnostics[2]["message"], "n may be zero");
        for diagnostic in &diagnostics {
            assert!(diagnostic.get("suggestions").is_none(), "{diagnostic}");
        }
    }

    #[test]
    fn columns_count_utf8_bytes() {
        let mut report = sample_report();
        let file = &mut report.files[0];
        file.source = "let s = \"é𐐀\"; bad(s)\nnext line\n".into();
        file.findings.truncate(1);
        file.findings[0].line = 1;
        file.findings[0].end_line = 1;
        file.findings[0].quote = "bad(s)".into();
        let diagnostics = lines(&report);
        // "bad" is the 15th character but starts at byte 19 (é is 2 bytes,
        // 𐐀 is 4).
        assert_eq!(
            diagnostics[0]["location"]["range"],
            json!({"start": {"line": 1, "column": 19}, "end": {"line": 1, "column": 25}})
        );
        // Over two lines with the model's column: to the end of the last line.
        let finding = &mut report.files[0].findings[0];
        finding.end_line = 2;
        finding.quote = "no such code".into();
        finding.column = Some(11);
        assert_eq!(
            lines(&report)[0]["location"]["range"],
            json!({"start": {"line": 1, "column": 12}, "end": {"line": 2, "column": 10}})
        );
        // A column past the line's text: whole lines.
        report.files[0].findings[0].column = Some(99);
        assert_eq!(
            lines(&report)[0]["location"]["range"],
            json!({"start": {"line": 1}, "end": {"line": 2}})
        );
    }

    #[test]
    fn no_findings_no_lines() {
        let mut report = sample_report();
        report.files[0].findings.clear();
        assert_eq!(render(&report), "");
    }
}
