//! Turning the model's raw findings into findings that can be printed as
//! fact: each names a line of the file and quotes code that is really
//! there. What fails a check is dropped and counted by reason.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::chunk::Chunk;

/// Lines a quote may be away from the line the model gave (models are
/// often off by one or two); the finding is moved to where the quote is.
pub const SLACK: usize = 2;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A risk worth a look.
    Info,
    /// Can go wrong.
    Warning,
    /// Will go wrong.
    Error,
}

impl Severity {
    /// Reads what the model said: `error`, `warning`, `info` in any case,
    /// and common synonyms (`critical`/`high` → error, `medium` → warning,
    /// `low`/`note` → info). Anything else, or nothing, is a warning.
    pub fn normalise(value: Option<&Value>) -> Severity {
        let word = value
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match word.as_str() {
            "error" | "err" | "critical" | "high" | "fatal" | "severe" | "major" | "blocker" | "bug" => {
                Severity::Error
            }
            "info" | "information" | "informational" | "note" | "low" | "minor" | "hint" => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// A validated finding, as the plugin outputs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file's path as the caller gave it.
    pub path: String,
    /// First line (1-based), where the quote starts.
    pub line: usize,
    /// Last line (1-based, `>= line`).
    pub end_line: usize,
    /// Column (1-based, in characters) where the quote starts on `line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// How bad it is.
    pub severity: Severity,
    /// Kebab-case kind of bug (see [`rule_id`]).
    pub rule_id: String,
    /// What is wrong.
    pub message: String,
    /// The fix; may be empty.
    pub suggestion: String,
    /// The code the finding is about, exactly as in the file.
    pub quote: String,
}

/// Why a raw finding was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not an object, or a required field (`line`, `message`) missing or of
    /// the wrong type; the text says which.
    Malformed(String),
    /// `line` or `end_line` outside the file or the chunk the model saw.
    LineOutOfRange,
    /// The quote is empty, too short to verify, or not in the file near
    /// the line given.
    QuoteNotInFile,
}

/// Dropped findings by reason (the output's `dropped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Lines outside the file or the chunk.
    pub line_out_of_range: usize,
    /// Quotes not found (or empty).
    pub quote_not_in_file: usize,
    /// Valid, but not on a changed line (diff mode).
    pub outside_changed_lines: usize,
    /// Not a finding object, or fields missing or of the wrong type.
    pub malformed: usize,
    /// The same line, rule and quote as a finding already kept.
    pub duplicate: usize,
}

impl Dropped {
    /// All drops together.
    pub fn total(&self) -> usize {
        self.line_out_of_range
            + self.quote_not_in_file
            + self.outside_changed_lines
            + self.malformed
            + self.duplicate
    }
}

/// Normalises a model's rule name to a stable kebab-case id: lowercase,
/// words of camelCase split, every run of other characters one `-`, no
/// `-` at either end, at most 64 characters; `general` when nothing is left.
pub fn rule_id(raw: &str) -> String {
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut id = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            // nilMap → nil-map; SQLInjection → sql-injection
            let boundary = c.is_ascii_uppercase()
                && prev.is_some_and(|p| {
                    p.is_ascii_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
                });
            if boundary && !id.ends_with('-') {
                id.push('-');
            }
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    id.truncate(64);
    let id = id.trim_matches('-');
    if id.is_empty() {
        "general".to_string()
    } else {
        id.to_string()
    }
}

/// Collapses every run of whitespace to one space and trims the ends.
pub fn normalise_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A whole number from a JSON number or a numeric string.
fn whole_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The first of `keys` present (and not null) in `object`.
fn field<'v>(object: &'v serde_json::Map<String, Value>, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().find_map(|k| object.get(*k).filter(|v| !v.is_null()))
}

/// Checks one raw finding from the answer for `chunk` of the file `lines`
/// (`path` is copied into it). On success the finding's line, end line and
/// column are where its quote really is.
pub fn check(raw: &Value, path: &str, lines: &[&str], chunk: Chunk) -> Result<Finding, Rejection> {
    let malformed = |why: &str| Rejection::Malformed(why.to_string());
    let object = raw.as_object().ok_or_else(|| malformed("not an object"))?;
    let line = field(object, &["line", "start_line"])
        .ok_or_else(|| malformed("no line"))
        .and_then(|v| whole_number(v).ok_or_else(|| malformed("line is not a whole number")))?;
    let end_line = match field(object, &["end_line", "endLine"]) {
        None => line,
        Some(v) => whole_number(v).ok_or_else(|| malformed("end_line is not a whole number"))?,
    }
    .max(line);
    let message = match field(object, &["message", "description"]) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) | None => return Err(malformed("no message")),
        Some(_) => return Err(malformed("message is not a string")),
    };
    let quote = match field(object, &["quote", "code"]) {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Some models quote several lines as a list.
        Some(Value::Array(parts)) if parts.iter().all(Value::is_string) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        Some(_) => return Err(malformed("quote is not a string")),
    };
    let suggestion = match field(object, &["suggestion", "fix"]) {
        Some(Value::String(s)) => s.trim().to_string(),
        _ => String::new(),
    };
    let rule = match field(object, &["rule_id", "rule", "ruleId", "category"]) {
        Some(Value::String(s)) => rule_id(s),
        _ => rule_id(""),
    };

    let in_range = |l: i64| l >= 1 && (l as usize) <= lines.len() && chunk.contains(l as usize);
    if !in_range(line) || !in_range(end_line) {
        return Err(Rejection::LineOutOfRange);
    }
    let (line, end_line) = (line as usize, end_line as usize);
    let window = Chunk {
        start: line.saturating_sub(SLACK).max(chunk.start),
        end: (end_line + SLACK).min(chunk.end),
    };
    let span = locate(&quote, lines, window, line, end_line).ok_or(Rejection::QuoteNotInFile)?;
    // Keep the model's extent when the quote starts its range (e.g. a whole
    // loop quoted by its first line); else the quote's lines.
    let end_line = if span.start.0 == line && span.end.0 <= end_line {
        end_line
    } else {
        span.end.0
    };
    Ok(Finding {
        path: path.to_string(),
        line: span.start.0,
        end_line,
        column: Some(span.start.1 + 1),
        severity: Severity::normalise(field(object, &["severity", "level"])),
        rule_id: rule,
        message,
        suggestion,
        quote: span.text(lines),
    })
}

/// Where a quote is: (line 1-based, char index 0-based) of its first and
/// last character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: (usize, usize),
    end: (usize, usize),
}

impl Span {
    /// The file's text of the span.
    fn text(&self, lines: &[&str]) -> String {
        let mut out = Vec::new();
        for l in self.start.0..=self.end.0 {
            let chars = lines[l - 1].chars();
            let from = if l == self.start.0 { self.start.1 } else { 0 };
            let piece: String = if l == self.end.0 {
                chars.take(self.end.1 + 1).skip(from).collect()
            } else {
                chars.skip(from).collect()
            };
            out.push(piece);
        }
        out.join("\n")
    }
}

/// Whether a quote says enough to be checked: three characters or more,
/// one of them a letter or digit (`}` or `)` alone prove nothing).
fn verifiable(quote: &str) -> bool {
    quote.chars().count() >= 3 && quote.chars().any(char::is_alphanumeric)
}

/// The quote's variants, tried in order: as given; without line-number
/// prefixes (`  12 | `) copied from the prompt; without wrapping backticks
/// or quotes; without a trailing `...`.
fn variants(quote: &str) -> Vec<String> {
    let mut out = vec![normalise_space(quote)];
    let unnumbered = quote.lines().map(strip_number).collect::<Vec<_>>().join("\n");
    out.push(normalise_space(&unnumbered));
    let unwrapped = out[1]
        .trim_matches(|c| c == '`' || c == '"' || c == '\'')
        .trim()
        .to_string();
    out.push(unwrapped.clone());
    let unellipsed = unwrapped
        .trim_end_matches("...")
        .trim_end_matches('…')
        .trim_start_matches("...")
        .trim_start_matches('…')
        .trim()
        .to_string();
    out.push(unellipsed);
    out.dedup();
    out.retain(|q| verifiable(q));
    out
}

/// `  12 | code` → `code`; other lines unchanged.
fn strip_number(line: &str) -> &str {
    let trimmed = line.trim_start();
    let digits = trimmed.len() - trimmed.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return line;
    }
    match trimmed[digits..].trim_start().strip_prefix('|') {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
        None => line,
    }
}

/// Finds `quote` (whitespace-insensitive) in `window`, nearest to the
/// model's `line..=end_line`; the earliest of equally near ones.
fn locate(quote: &str, lines: &[&str], window: Chunk, line: usize, end_line: usize) -> Option<Span> {
    if window.start > window.end {
        return None;
    }
    // The window's text with whitespace runs collapsed, and where each byte
    // of it came from (line, char index).
    let mut text = String::new();
    let mut origin: Vec<(usize, usize)> = Vec::new();
    let mut pending_space: Option<(usize, usize)> = None;
    for l in window.start..=window.end {
        for (col, c) in lines[l - 1].chars().enumerate() {
            if c.is_whitespace() {
                pending_space.get_or_insert((l, col));
                continue;
            }
            if let Some(at) = pending_space.take() {
                if !text.is_empty() {
                    text.push(' ');
                    origin.push(at);
                }
            }
            text.push(c);
            origin.extend(std::iter::repeat_n((l, col), c.len_utf8()));
        }
        // A line break is whitespace too.
        pending_space.get_or_insert((l, lines[l - 1].chars().count()));
    }
    let distance = |at: usize| {
        if (line..=end_line).contains(&at) {
            0
        } else {
            at.abs_diff(line).min(at.abs_diff(end_line))
        }
    };
    variants(quote).iter().find_map(|q| {
        text.match_indices(q.as_str())
            .map(|(i, m)| Span {
                start: origin[i],
                end: origin[i + m.len() - 1],
            })
            .min_by_key(|s| (distance(s.start.0), s.start))
    })
}

/// Collects the findings of every chunk: checks them, keeps those on
/// changed lines (diff mode), drops duplicates, and counts what it drops.
pub struct Collector<'a> {
    path: &'a str,
    lines: &'a [&'a str],
    changed: Option<&'a [(usize, usize)]>,
    max_per_chunk: usize,
    findings: Vec<Finding>,
    seen: HashMap<(usize, String, String), usize>,
    dropped: Dropped,
}

/// What one chunk's answer contributed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkReport {
    /// New findings kept.
    pub kept: usize,
    /// Findings dropped (any reason, duplicates included).
    pub dropped: usize,
    /// Valid findings ignored because the chunk already had `max_findings`.
    pub over_limit: usize,
}

impl<'a> Collector<'a> {
    /// A collector for the file `lines` at `path`; `changed` limits
    /// findings to those ranges (1-based, inclusive); at most
    /// `max_per_chunk` findings are kept from one chunk.
    pub fn new(
        path: &'a str,
        lines: &'a [&'a str],
        changed: Option<&'a [(usize, usize)]>,
        max_per_chunk: usize,
    ) -> Collector<'a> {
        Collector {
            path,
            lines,
            changed,
            max_per_chunk,
            findings: Vec::new(),
            seen: HashMap::new(),
            dropped: Dropped::default(),
        }
    }

    /// Adds the raw findings the model gave for `chunk`.
    pub fn add(&mut self, chunk: Chunk, raw: &[Value]) -> ChunkReport {
        let before = self.dropped.total();
        let mut report = ChunkReport::default();
        for item in raw {
            let finding = match check(item, self.path, self.lines, chunk) {
                Ok(f) => f,
                Err(Rejection::Malformed(_)) => {
                    self.dropped.malformed += 1;
                    continue;
                }
                Err(Rejection::LineOutOfRange) => {
                    self.dropped.line_out_of_range += 1;
                    continue;
                }
                Err(Rejection::QuoteNotInFile) => {
                    self.dropped.quote_not_in_file += 1;
                    continue;
                }
            };
            if let Some(changed) = self.changed {
                if !changed
                    .iter()
                    .any(|&(a, b)| finding.line <= b && a <= finding.end_line)
                {
                    self.dropped.outside_changed_lines += 1;
                    continue;
                }
            }
            let key = (
                finding.line,
                finding.rule_id.clone(),
                normalise_space(&finding.quote),
            );
            if let Some(&i) = self.seen.get(&key) {
                self.dropped.duplicate += 1;
                let kept = &mut self.findings[i];
                kept.severity = kept.severity.max(finding.severity);
                continue;
            }
            if report.kept == self.max_per_chunk {
                report.over_limit += 1;
                continue;
            }
            self.seen.insert(key, self.findings.len());
            self.findings.push(finding);
            report.kept += 1;
        }
        report.dropped = self.dropped.total() - before;
        report
    }

    /// The findings sorted by line, then rule id (then column and message,
    /// for a stable order), and the drop counts.
    pub fn finish(mut self) -> (Vec<Finding>, Dropped) {
        self.findings.sort_by(|a, b| {
            (a.line, &a.rule_id, a.column, &a.message).cmp(&(b.line, &b.rule_id, b.column, &b.message))
        });
        (self.findings, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "package main\n\nfunc main() {\n\tcounts := map[string]int(nil)\n\tcounts[\"a\"]++\n\tfmt.Println(counts)\n}\n";

    fn lines() -> Vec<&'static str> {
        FILE.lines().collect()
    }

    fn whole() -> Chunk {
        Chunk { start: 1, end: 7 }
    }

    fn finding(line: i64, quote: &str) -> Value {
        json!({"line": line, "end_line": line, "severity": "error", "rule_id": "nil-map-write",
               "message": "write to a nil map", "suggestion": "make it", "quote": quote})
    }

    #[test]
    fn a_correct_finding_is_kept_with_its_column() {
        let f = check(&finding(5, "counts[\"a\"]++"), "m.go", &lines(), whole()).unwrap();
        assert_eq!(
            f,
            Finding {
                path: "m.go".into(),
                line: 5,
                end_line: 5,
                column: Some(2),
                severity: Severity::Error,
                rule_id: "nil-map-write".into(),
                message: "write to a nil map".into(),
                suggestion: "make it".into(),
                quote: "counts[\"a\"]++".into(),
            }
        );
    }

    #[test]
    fn lines_outside_the_file_or_chunk_are_dropped() {
        for line in [0, -3, 8, 1000] {
            assert_eq!(
                check(&finding(line, "counts"), "m.go", &lines(), whole()),
                Err(Rejection::LineOutOfRange),
                "{line}"
            );
        }
        let chunk = Chunk { start: 1, end: 4 };
        assert_eq!(
            check(&finding(5, "counts[\"a\"]++"), "m.go", &lines(), chunk),
            Err(Rejection::LineOutOfRange)
        );
        let far_end = json!({"line": 5, "end_line": 99, "message": "m", "quote": "counts"});
        assert_eq!(
            check(&far_end, "m.go", &lines(), whole()),
            Err(Rejection::LineOutOfRange)
        );
    }

    #[test]
    fn quotes_not_in_the_file_are_dropped() {
        for quote in ["counts[\"b\"]++", "", "   ", "}", "x", "os.Exit(1)"] {
            assert_eq!(
                check(&finding(5, quote), "m.go", &lines(), whole()),
                Err(Rejection::QuoteNotInFile),
                "{quote:?}"
            );
        }
        let no_quote = json!({"line": 5, "message": "m"});
        assert_eq!(
            check(&no_quote, "m.go", &lines(), whole()),
            Err(Rejection::QuoteNotInFile)
        );
        // Three lines away is beyond the slack.
        assert_eq!(
            check(&finding(1, "counts[\"a\"]++"), "m.go", &lines(), whole()),
            Err(Rejection::QuoteNotInFile)
        );
        // The slack does not reach outside the chunk the model saw.
        let chunk = Chunk { start: 1, end: 4 };
        assert_eq!(
            check(&finding(4, "counts[\"a\"]++"), "m.go", &lines(), chunk),
            Err(Rejection::QuoteNotInFile)
        );
    }

    #[test]
    fn off_by_one_lines_are_corrected() {
        for claimed in [3, 4, 6, 7] {
            let f = check(&finding(claimed, "counts[\"a\"]++"), "m.go", &lines(), whole()).unwrap();
            assert_eq!(
                (f.line, f.end_line, f.column),
                (5, 5, Some(2)),
                "claimed {claimed}"
            );
        }
    }

    #[test]
    fn quotes_match_whatever_the_whitespace_and_wrapping() {
        for quote in [
            "counts[\"a\"]++",
            "  counts[\"a\"]++  ",
            "`counts[\"a\"]++`",
            "   5 | \tcounts[\"a\"]++",
            "counts[\"a\"]++ ...",
            "counts := map[string]int(nil)\n  counts[\"a\"]++",
            "counts :=   map[string]int(nil) counts[\"a\"]++",
        ] {
            let f = check(&finding(5, quote), "m.go", &lines(), whole());
            assert!(f.is_ok(), "{quote:?}: {f:?}");
        }
        // A two-line quote spans two lines and starts where it starts.
        let f = check(
            &finding(4, "counts := map[string]int(nil)\n\tcounts[\"a\"]++"),
            "m.go",
            &lines(),
            whole(),
        )
        .unwrap();
        assert_eq!((f.line, f.end_line, f.column), (4, 5, Some(2)));
        assert_eq!(f.quote, "counts := map[string]int(nil)\n\tcounts[\"a\"]++");
        // The quote is the file's text, not the model's spacing.
        let f = check(&finding(6, "fmt.Println( counts )"), "m.go", &lines(), whole());
        assert_eq!(f, Err(Rejection::QuoteNotInFile));
        let f = check(&finding(6, "fmt.Println(counts)"), "m.go", &lines(), whole()).unwrap();
        assert_eq!(f.quote, "fmt.Println(counts)");
    }

    #[test]
    fn the_models_extent_is_kept_when_the_quote_starts_it() {
        let whole_fn = json!({"line": 3, "end_line": 7, "message": "m", "quote": "func main() {"});
        let f = check(&whole_fn, "m.go", &lines(), whole()).unwrap();
        assert_eq!((f.line, f.end_line), (3, 7));
        // A backwards range is read as one line.
        let backwards = json!({"line": 5, "end_line": 2, "message": "m", "quote": "counts[\"a\"]"});
        let f = check(&backwards, "m.go", &lines(), whole()).unwrap();
        assert_eq!((f.line, f.end_line), (5, 5));
    }

    #[test]
    fn malformed_findings() {
        for raw in [
            json!("line 5 is wrong"),
            json!(5),
            json!({"message": "no line", "quote": "counts"}),
            json!({"line": "five", "message": "m", "quote": "counts"}),
            json!({"line": 4.5, "message": "m", "quote": "counts"}),
            json!({"line": 5, "end_line": [6], "message": "m", "quote": "counts"}),
            json!({"line": 5, "quote": "counts"}),
            json!({"line": 5, "message": "", "quote": "counts"}),
            json!({"line": 5, "message": {"text": "m"}, "quote": "counts"}),
            json!({"line": 5, "message": "m", "quote": 12}),
        ] {
            assert!(
                matches!(
                    check(&raw, "m.go", &lines(), whole()),
                    Err(Rejection::Malformed(_))
                ),
                "{raw}"
            );
        }
        // Lenient where the meaning is clear.
        let f = check(
            &json!({"line": "5", "end_line": 5.0, "message": "m", "quote": ["counts[\"a\"]++"]}),
            "m.go",
            &lines(),
            whole(),
        )
        .unwrap();
        assert_eq!(
            (f.line, f.rule_id.as_str(), f.severity),
            (5, "general", Severity::Warning)
        );
    }

    #[test]
    fn severities_are_normalised() {
        for (said, want) in [
            (json!("error"), Severity::Error),
            (json!("ERROR"), Severity::Error),
            (json!(" Warning "), Severity::Warning),
            (json!("info"), Severity::Info),
            (json!("critical"), Severity::Error),
            (json!("high"), Severity::Error),
            (json!("medium"), Severity::Warning),
            (json!("low"), Severity::Info),
            (json!("note"), Severity::Info),
            (json!("catastrophic"), Severity::Warning),
            (json!(3), Severity::Warning),
            (json!(""), Severity::Warning),
        ] {
            assert_eq!(Severity::normalise(Some(&said)), want, "{said}");
        }
        assert_eq!(Severity::normalise(None), Severity::Warning);
        assert_eq!(serde_json::to_string(&Severity::Warning).unwrap(), "\"warning\"");
    }

    #[test]
    fn rule_ids_are_normalised() {
        for (said, want) in [
            ("nil-map-write", "nil-map-write"),
            ("Nil map write", "nil-map-write"),
            ("  nil_map_write!! ", "nil-map-write"),
            ("NilMapWrite", "nil-map-write"),
            ("SQLInjection", "sql-injection"),
            ("CWE-369: Divide By Zero", "cwe-369-divide-by-zero"),
            ("unchecked error / ignored", "unchecked-error-ignored"),
            ("", "general"),
            ("???", "general"),
            ("défaut", "d-faut"),
        ] {
            assert_eq!(rule_id(said), want, "{said:?}");
        }
        assert!(rule_id(&"a".repeat(100)).len() <= 64);
    }

    #[test]
    fn duplicates_are_merged_and_counted() {
        let lines = lines();
        let mut c = Collector::new("m.go", &lines, None, 20);
        let mut warning = finding(5, "counts[\"a\"]++");
        warning["severity"] = json!("warning");
        let first = c.add(Chunk { start: 1, end: 5 }, &[warning]);
        assert_eq!((first.kept, first.dropped), (1, 0));
        // The next chunk (overlapping) reports it again, one line off and as an error.
        let second = c.add(
            Chunk { start: 3, end: 7 },
            &[finding(6, "counts[\"a\"]++"), finding(6, "fmt.Println(counts)")],
        );
        assert_eq!((second.kept, second.dropped), (1, 1));
        let (findings, dropped) = c.finish();
        assert_eq!(findings.len(), 2);
        assert_eq!(dropped.duplicate, 1);
        assert_eq!(
            findings[0].severity,
            Severity::Error,
            "the higher severity is kept"
        );
        // A different rule on the same line is not a duplicate.
        let mut c = Collector::new("m.go", &lines, None, 20);
        let mut other = finding(5, "counts[\"a\"]++");
        other["rule_id"] = json!("race");
        c.add(whole(), &[finding(5, "counts[\"a\"]++"), other]);
        assert_eq!(c.finish().0.len(), 2);
    }

    #[test]
    fn changed_lines_limit_findings() {
        let lines = lines();
        let changed = [(5, 5)];
        let mut c = Collector::new("m.go", &lines, Some(&changed), 20);
        let multi = json!({"line": 3, "end_line": 7, "message": "m", "quote": "func main() {"});
        c.add(
            whole(),
            &[
                finding(5, "counts[\"a\"]++"),
                finding(6, "fmt.Println(counts)"),
                multi,
            ],
        );
        let (findings, dropped) = c.finish();
        let kept: Vec<usize> = findings.iter().map(|f| f.line).collect();
        assert_eq!(kept, [3, 5], "a finding spanning a changed line is kept");
        assert_eq!(dropped.outside_changed_lines, 1);
    }

    #[test]
    fn findings_are_sorted_and_capped_per_chunk() {
        let lines = lines();
        let mut c = Collector::new("m.go", &lines, None, 2);
        let mut race = finding(5, "counts[\"a\"]++");
        race["rule_id"] = json!("a-race");
        let report = c.add(
            whole(),
            &[
                finding(6, "fmt.Println(counts)"),
                finding(5, "counts[\"a\"]++"),
                race,
            ],
        );
        assert_eq!((report.kept, report.over_limit), (2, 1));
        let (findings, _) = c.finish();
        let order: Vec<(usize, &str)> = findings.iter().map(|f| (f.line, f.rule_id.as_str())).collect();
        assert_eq!(order, [(5, "nil-map-write"), (6, "nil-map-write")]);

        let mut c = Collector::new("m.go", &lines, None, 20);
        let mut race = finding(5, "counts[\"a\"]++");
        race["rule_id"] = json!("a-race");
        c.add(
            whole(),
            &[
                finding(6, "fmt.Println(counts)"),
                finding(5, "counts[\"a\"]++"),
                race,
            ],
        );
        let (findings, _) = c.finish();
        let order: Vec<(usize, &str)> = findings.iter().map(|f| (f.line, f.rule_id.as_str())).collect();
        assert_eq!(order, [(5, "a-race"), (5, "nil-map-write"), (6, "nil-map-write")]);
    }
}
