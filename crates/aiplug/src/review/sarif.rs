//! SARIF 2.1.0 for GitHub code scanning (`github/codeql-action/upload-sarif`)
//! and other SARIF viewers.
//!
//! One run whose driver is `aiplug`, one rule per distinct rule id (sorted,
//! so `ruleIndex` is stable), one result per finding. Paths are relative
//! URIs against `%SRCROOT%`; columns count Unicode code points
//! (`columnKind: unicodeCodePoints`). Each result carries a
//! `primaryLocationLineHash` fingerprint made from its rule, the text of its
//! line and how many identical (rule, text) pairs come before it in the
//! file: not from the line number, so an alert keeps its identity when code
//! above it moves.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{json, Map, Value};

use super::findings::{source_line, FileReport, Finding, Report, Severity};

/// The `$schema` the log names.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The base URI id result paths are relative to.
pub const SRCROOT: &str = "%SRCROOT%";
/// `tool.driver.informationUri` when the package names no repository.
const FALLBACK_INFORMATION_URI: &str = "https://example.invalid/aiplug";

/// The SARIF log for `report`, pretty-printed, ending in a newline. See
/// [`to_value`].
pub fn render(report: &Report, srcroot: Option<&Path>) -> String {
    let mut text = serde_json::to_string_pretty(&to_value(report, srcroot)).unwrap_or_default();
    text.push('\n');
    text
}

/// The SARIF log for `report`.
///
/// File paths should be relative to the repository root (`src/main.go`);
/// backslashes become `/` and a leading `./` goes. An absolute path becomes
/// a `file://` URI with no base id. `srcroot`, when given as an absolute
/// directory, is recorded as the `%SRCROOT%` base (GitHub supplies its own
/// checkout root when absent).
pub fn to_value(report: &Report, srcroot: Option<&Path>) -> Value {
    let rules = rules(report);
    let index: HashMap<&str, usize> = rules.keys().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut results = Vec::new();
    for file in &report.files {
        let mut seen: HashMap<(String, String), u32> = HashMap::new();
        for finding in file.sorted_findings() {
            let rule = finding.rule();
            let line_text = normalised_line(file, finding);
            let occurrence = seen.entry((rule.clone(), line_text.clone())).or_insert(0);
            let fingerprint = line_hash(&rule, &line_text, *occurrence);
            *occurrence += 1;
            let rule_index = index[rule.as_str()];
            results.push(result(file, finding, &rule, rule_index, &fingerprint));
        }
    }
    let rules: Vec<Value> = rules
        .iter()
        .map(|(id, severity)| {
            json!({
                "id": id,
                "name": pascal_case(id),
                "shortDescription": {"text": sentence_case(id)},
                "defaultConfiguration": {"level": level(*severity)},
            })
        })
        .collect();
    let mut root = json!({
        "description": {"text": "The directory `aiplug review` ran in; result paths are relative to it."}
    });
    if let Some(uri) = srcroot.filter(|p| p.is_absolute()).map(directory_uri) {
        root["uri"] = json!(uri);
    }
    let repository = env!("CARGO_PKG_REPOSITORY");
    let information_uri = if repository.is_empty() {
        FALLBACK_INFORMATION_URI
    } else {
        repository
    };
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "aiplug",
                    "informationUri": information_uri,
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "originalUriBaseIds": {SRCROOT: root},
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {"model": report.model},
        }]
    })
}

/// Every distinct (normalised) rule id with the highest severity it was
/// reported at, sorted by id.
fn rules(report: &Report) -> BTreeMap<String, Severity> {
    let mut rules = BTreeMap::new();
    for finding in report.findings() {
        let severity = rules.entry(finding.rule()).or_insert(finding.severity);
        *severity = (*severity).max(finding.severity);
    }
    rules
}

fn result(file: &FileReport, finding: &Finding, rule: &str, rule_index: usize, fingerprint: &str) -> Value {
    let located = finding.locate(&file.source);
    let mut region = Map::new();
    region.insert("startLine".into(), json!(located.line));
    region.insert("endLine".into(), json!(located.end_line));
    // A column only when it is more than a guess: the quote found on the
    // line, or the model's own column.
    let start = located
        .span
        .filter(|span| located.exact || finding.column == Some(span.column));
    if let Some(span) = start {
        region.insert("startColumn".into(), json!(span.column));
        if located.exact && located.end_line == located.line {
            region.insert("endColumn".into(), json!(span.column + span.width));
        }
    }
    if let Some(snippet) = snippet(&file.source, &located, start.map(|s| s.column)) {
        region.insert("snippet".into(), json!({"text": snippet}));
    }
    let (uri, base) = artifact_uri(&file.path);
    let mut artifact = json!({"uri": uri});
    if base {
        artifact["uriBaseId"] = json!(SRCROOT);
    }
    let mut text = finding.message.trim().to_string();
    if !finding.suggestion.trim().is_empty() {
        text.push_str("\nSuggestion: ");
        text.push_str(finding.suggestion.trim());
    }
    json!({
        "ruleId": rule,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": {"text": text},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": artifact,
                "region": region,
            }
        }],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint},
    })
}

/// The region's text: from `column` (or the line start) on the first line
/// to the end of the last line; exactly the quote when it was found on a
/// one-line finding.
fn snippet(source: &str, located: &super::findings::Located, column: Option<u32>) -> Option<String> {
    let mut lines = Vec::new();
    for n in located.line..=located.end_line {
        lines.push(source_line(source, n)?);
    }
    let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let skip = column.map_or(0, |c| c as usize - 1);
    text[0] = text[0].chars().skip(skip).collect();
    if let (true, Some(span)) = (located.exact && located.end_line == located.line, located.span) {
        text[0] = text[0].chars().take(span.width as usize).collect();
    }
    Some(text.join("\n"))
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// The line the finding starts on with runs of whitespace made one space and
/// the ends trimmed, so re-indenting does not change the fingerprint; the
/// quote when the line is not in the file.
fn normalised_line(file: &FileReport, finding: &Finding) -> String {
    let text = source_line(&file.source, finding.line).unwrap_or(&finding.quote);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 64-bit FNV-1a of (rule, line text, occurrence), 16 lower-case hex digits.
/// FNV is fixed by its definition, so the value never changes between
/// builds or platforms.
pub fn line_hash(rule: &str, line_text: &str, occurrence: u32) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let occurrence = occurrence.to_string();
    for part in [
        rule.as_bytes(),
        b"\0",
        line_text.as_bytes(),
        b"\0",
        occurrence.as_bytes(),
    ] {
        for &byte in part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

/// The `uri` for a path, and whether it is relative to `%SRCROOT%`.
fn artifact_uri(path: &str) -> (String, bool) {
    let mut path = path.replace('\\', "/");
    while let Some(rest) = path.strip_prefix("./") {
        path = rest.to_string();
    }
    let drive = path.len() >= 3 && path.as_bytes()[1] == b':' && path.as_bytes()[2] == b'/';
    if path.starts_with('/') {
        (format!("file://{}", percent_encode(&path, false)), false)
    } else if drive {
        (format!("file:///{}", percent_encode(&path, true)), false)
    } else {
        (percent_encode(&path, false), true)
    }
}

fn directory_uri(dir: &Path) -> String {
    let (mut uri, _) = artifact_uri(&dir.to_string_lossy());
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Percent-encodes every byte but unreserved characters, sub-delimiters,
/// `@` and `/` (and `:` when `keep_colon`): a relative reference whose
/// first segment holds a `:` would read as a scheme.
fn percent_encode(path: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(path.len());
    for &byte in path.as_bytes() {
        let c = byte as char;
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=@/".contains(c) || (keep_colon && c == ':') {
            out.push(c);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `nil-map-write` as `NilMapWrite`.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `nil-map-write` as `Nil map write`.
fn sentence_case(id: &str) -> String {
    let words = id.replace('-', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::findings::tests::sample_report;

    fn sarif() -> Value {
        to_value(&sample_report(), Some(Path::new("/work/repo")))
    }

    /// The official OASIS SARIF 2.1.0 schema (draft-04), from test data.
    fn validator() -> jsonschema::Validator {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sarif-schema-2.1.0.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    }

    fn schema_errors(log: &Value) -> Vec<String> {
        validator()
            .iter_errors(log)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    #[test]
    fn validates_against_the_sarif_2_1_0_schema() {
        let log = sarif();
        assert_eq!(schema_errors(&log), Vec::<String>::new(), "{log:#}");
        // Odd paths, no findings, no srcroot: still valid.
        let mut report = sample_report();
        report.files[0].path = "./dir with space/caf\u{e9}:x.go".into();
        let log = to_value(&report, None);
        assert_eq!(schema_errors(&log), Vec::<String>::new(), "{log:#}");
        report.files[0].findings.clear();
        assert_eq!(schema_errors(&to_value(&report, None)), Vec::<String>::new());
    }

    #[test]
    fn the_schema_check_catches_invalid_logs() {
        // So the validation test cannot pass by accident.
        let mut log = sarif();
        log["runs"][0]["results"][0]["level"] = json!("fatal");
        assert!(!schema_errors(&log).is_empty());
        let mut log = sarif();
        log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = json!(0);
        assert!(!schema_errors(&log).is_empty());
        let mut log = sarif();
        log["runs"][0]["tool"]["driver"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        assert!(!schema_errors(&log).is_empty());
    }

    #[test]
    fn has_what_github_code_scanning_needs() {
        let log = sarif();
        assert_eq!(log["$schema"], SCHEMA_URI);
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        let driver = &run["tool"]["driver"];
        assert_eq!(driver["name"], "aiplug");
        assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
        assert!(driver["informationUri"].as_str().unwrap().starts_with("https://"));
        assert_eq!(run["properties"]["model"], "deepseek-coder");
        assert_eq!(
            run["originalUriBaseIds"]["%SRCROOT%"]["uri"],
            "file:///work/repo/"
        );

        let rules = driver["rules"].as_array().unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["division-by-zero", "nil-map", "nil-map-write"]);
        assert_eq!(rules[2]["name"], "NilMapWrite");
        assert_eq!(rules[2]["shortDescription"]["text"], "Nil map write");
        assert_eq!(rules[2]["defaultConfiguration"]["level"], "error");
        assert_eq!(rules[1]["defaultConfiguration"]["level"], "note");

        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for result in results {
            let index = result["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index]["id"], result["ruleId"]);
            let location = &result["locations"][0]["physicalLocation"];
            assert_eq!(location["artifactLocation"]["uri"], "examples/buggy.go");
            assert_eq!(location["artifactLocation"]["uriBaseId"], "%SRCROOT%");
            let hash = result["partialFingerprints"]["primaryLocationLineHash"]
                .as_str()
                .unwrap();
            assert_eq!(hash.len(), 16);
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        }
        // Sorted by line: the info (a guessed span: no column), the error.
        let info = &results[0];
        assert_eq!(info["level"], "note");
        assert_eq!(info["ruleId"], "nil-map");
        let region = &info["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], 4);
        assert!(region.get("startColumn").is_none(), "{region}");
        assert_eq!(region["snippet"]["text"], "\tvar counts map[string]int");

        let error = &results[1];
        assert_eq!(error["level"], "error");
        assert_eq!(error["ruleId"], "nil-map-write");
        assert_eq!(
            error["message"]["text"],
            "assignment to entry in nil map\nSuggestion: initialise the map: counts := make(map[string]int)"
        );
        let region = &error["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], 6);
        assert_eq!(region["endLine"], 6);
        assert_eq!(region["startColumn"], 3);
        assert_eq!(region["endColumn"], 17);
        assert_eq!(region["snippet"]["text"], "counts[word]++");
        assert_eq!(results[2]["message"]["text"], "n may be zero");
    }

    #[test]
    fn fingerprints_survive_code_moving_and_tell_repeats_apart() {
        let report = sample_report();
        let hashes = |report: &Report| -> Vec<String> {
            let log = to_value(report, None);
            log["runs"][0]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r["partialFingerprints"]["primaryLocationLineHash"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        let before = hashes(&report);
        // Three lines inserted at the top, and the code re-indented.
        let mut moved = report.clone();
        let file = &mut moved.files[0];
        file.source = format!("// a\n// b\n// c\n{}", file.source.replace('\t', "    "));
        for finding in &mut file.findings {
            finding.line += 3;
            finding.end_line += 3;
            finding.column = None;
        }
        assert_eq!(hashes(&moved), before);
        // The same rule on two identical lines: two fingerprints.
        let mut repeated = report.clone();
        let file = &mut repeated.files[0];
        file.source.push_str("\treturn total / n\n");
        let mut again = file.findings[0].clone();
        again.line = 14;
        again.end_line = 14;
        file.findings.push(again);
        let hashes = hashes(&repeated);
        assert_eq!(hashes.len(), 4);
        assert_eq!(hashes[2], before[2]);
        assert_ne!(hashes[3], hashes[2]);
        // Fixed values: the hash is part of the contract with GitHub.
        assert_eq!(line_hash("a", "b", 0), "3fae77fc8499f6f2");
        assert_ne!(line_hash("a", "b", 1), line_hash("a", "b", 0));
    }

    #[test]
    fn columns_only_when_known() {
        let mut report = sample_report();
        report.files[0].findings.truncate(1);
        let region = |report: &Report| {
            to_value(report, None)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
                .clone()
        };
        let finding = &mut report.files[0].findings[0];
        finding.quote = "not there".into();
        // The model's column, the quote not on the line: from there on.
        finding.column = Some(9);
        assert_eq!(
            region(&report),
            json!({"startLine": 12, "endLine": 12, "startColumn": 9, "snippet": {"text": "total / n"}})
        );
        // A column past the line's text is no column.
        report.files[0].findings[0].column = Some(99);
        assert_eq!(
            region(&report),
            json!({"startLine": 12, "endLine": 12, "snippet": {"text": "\treturn total / n"}})
        );
    }

    #[test]
    fn paths_become_relative_uris() {
        assert_eq!(artifact_uri("src/main.go"), ("src/main.go".into(), true));
        assert_eq!(artifact_uri("./src\\main.go"), ("src/main.go".into(), true));
        assert_eq!(
            artifact_uri("dir with space/caf\u{e9}:x.go"),
            ("dir%20with%20space/caf%C3%A9%3Ax.go".into(), true)
        );
        assert_eq!(
            artifact_uri("/abs/a b.go"),
            ("file:///abs/a%20b.go".into(), false)
        );
        assert_eq!(
            artifact_uri("C:\\src\\a.go"),
            ("file:///C:/src/a.go".into(), false)
        );
        assert_eq!(directory_uri(Path::new("/work/repo")), "file:///work/repo/");
    }
}
