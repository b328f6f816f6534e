//! aiplug's own JSON report:
//!
//! ```json
//! {"model": "deepseek-coder",
//!  "files": [{"path": "main.go", "findings": [...], "dropped": {...}}],
//!  "summary": {"errors": 1, "warnings": 0, "infos": 0, "dropped": 2}}
//! ```
//!
//! Findings have the plugin's shape ([`Finding`]), with `path` set to the
//! file's path as given to `aiplug review`; `dropped` has [`Dropped`]'s
//! fields, and `summary.dropped` is the total of every file's counts.

use serde::Serialize;

use super::findings::{Dropped, Finding, Report};

#[derive(Serialize)]
struct JsonReport<'a> {
    model: &'a str,
    files: Vec<JsonFile<'a>>,
    summary: Summary,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    findings: Vec<Finding>,
    dropped: Dropped,
}

#[derive(Serialize)]
struct Summary {
    errors: u32,
    warnings: u32,
    infos: u32,
    dropped: u32,
}

/// The report as pretty-printed JSON ending in a newline: files in the order
/// given, findings by position, rule ids normalised as by [`Finding::rule`].
pub fn render(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(&json_report(report)).unwrap_or_default();
    text.push('\n');
    text
}

fn json_report(report: &Report) -> JsonReport<'_> {
    let counts = report.counts();
    JsonReport {
        model: &report.model,
        files: report
            .files
            .iter()
            .map(|file| JsonFile {
                path: &file.path,
                findings: file
                    .sorted_findings()
                    .into_iter()
                    .map(|f| Finding {
                        path: file.path.clone(),
                        rule_id: f.rule(),
                        ..f.clone()
                    })
                    .collect(),
                dropped: file.dropped,
            })
            .collect(),
        summary: Summary {
            errors: counts.errors,
            warnings: counts.warnings,
            infos: counts.infos,
            dropped: report.dropped().total(),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::review::findings::tests::sample_report;
    use crate::review::findings::ReviewOutput;
    use serde_json::Value;

    #[test]
    fn reports_files_findings_and_a_summary() {
        let value: Value = serde_json::from_str(&render(&sample_report())).unwrap();
        assert_eq!(value["model"], "deepseek-coder");
        assert_eq!(
            value["summary"],
            json!({"errors": 1, "warnings": 1, "infos": 1, "dropped": 3})
        );
        let file = &value["files"][0];
        assert_eq!(file["path"], "examples/buggy.go");
        assert_eq!(
            file["dropped"],
            json!({"line_out_of_range": 1, "quote_not_in_file": 1, "outside_changed_lines": 0,
                   "malformed": 0, "duplicate": 1})
        );
        let lines: Vec<u64> = file["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [4, 6, 12]);
        assert_eq!(
            file["findings"][1],
            json!({"path": "examples/buggy.go", "line": 6, "end_line": 6, "column": 3,
                   "severity": "error", "rule_id": "nil-map-write",
                   "message": "assignment to entry in nil map",
                   "suggestion": "initialise the map: counts := make(map[string]int)",
                   "quote": "counts[word]++"})
        );
        // The file's findings read back as the plugin's own types.
        let back: ReviewOutput = serde_json::from_value(file.clone()).unwrap();
        assert_eq!(back.findings.len(), 3);
        assert_eq!(back.dropped.total(), 3);
    }

    #[test]
    fn finding_paths_are_the_files_path_and_rule_ids_normalised() {
        let mut report = sample_report();
        report.files[0].findings[0].path = "buggy.go".into();
        let value: Value = serde_json::from_str(&render(&report)).unwrap();
        for finding in value["files"][0]["findings"].as_array().unwrap() {
            assert_eq!(finding["path"], "examples/buggy.go");
        }
        assert_eq!(value["files"][0]["findings"][0]["rule_id"], "nil-map");
        // Keys in the documented order.
        let text = render(&report);
        let model = text.find("\"model\"").unwrap();
        let files = text.find("\"files\"").unwrap();
        let summary = text.find("\"summary\"").unwrap();
        assert!(model < files && files < summary, "{text}");
    }
}
