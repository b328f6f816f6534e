//! One review: the input, the chunks, a model call per chunk, and the
//! validated, merged findings. Runs against any [`ModelHost`], so the whole
//! flow is testable without the aiplug host.

use aiplug_sdk::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::answer::{self, AnswerError};
use crate::chunk::{self, Chunk};
use crate::config::Config;
use crate::lang::Language;
use crate::prompt::{self, UserMessage};
use crate::validate::{Collector, Dropped, Finding};

/// Context length assumed when the input gives none, in tokens.
pub const DEFAULT_CONTEXT_TOKENS: usize = 4096;

/// Characters of a bad answer shown in the error.
const EXCERPT_CHARS: usize = 200;

/// Characters of each answer written to the host's debug log.
const ANSWER_LOG_CHARS: usize = 4000;

/// What the review needs from the host: model calls, cancellation, a log.
pub trait ModelHost {
    /// Runs a chat request (JSON) on `model` (`""`: the host's default) and
    /// returns the chat response (JSON).
    fn infer(&self, model: &str, request_json: &str) -> Result<String, Error>;
    /// Whether the caller gave up or the deadline passed.
    fn cancelled(&self) -> bool;
    /// A debug-level note for the host's log.
    fn note(&self, message: &str);
}

/// The `code-review` task's input (JSON). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The file's path, copied into every finding.
    pub path: String,
    /// The whole file's text.
    pub source: String,
    /// The language (id, name or extension); defaults to the one the
    /// path's extension (or `#!` line) says.
    #[serde(default)]
    pub language: Option<String>,
    /// 1-based inclusive line ranges: only findings touching them are kept
    /// and only chunks touching them are reviewed (diff mode). `None`:
    /// the whole file.
    #[serde(default)]
    pub changed_lines: Option<Vec<(usize, usize)>>,
    /// Overrides the configured model.
    #[serde(default)]
    pub model: Option<String>,
    /// The model's context length in tokens, for sizing chunks; defaults to
    /// [`DEFAULT_CONTEXT_TOKENS`].
    #[serde(default)]
    pub context_tokens: Option<usize>,
    /// Overrides the configured `max_tokens` (answer length per chunk),
    /// 64 to 32768: a caller on a slow local model may want less.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// The task's output (JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// Validated findings, sorted by line then rule id.
    pub findings: Vec<Finding>,
    /// What was dropped, by reason.
    pub dropped: Dropped,
    /// How many chunks were reviewed (model calls made).
    pub chunks: usize,
    /// The model that answered: the name asked for (input or config), else
    /// the name the host's response gives for its default model; `""` when
    /// the default model was asked and no call was made.
    pub model: String,
}

impl Input {
    /// Parses the task input; the error says which field is wrong.
    pub fn from_json(input: &[u8]) -> Result<Input, Error> {
        let input: Input = serde_json::from_slice(input).map_err(|e| {
            Error::new(format!(
                "invalid code-review input: {e}; expected {{\"path\": \"...\", \"source\": \"...\"}} with \
                 optional language, changed_lines [[from, to], ...], model, context_tokens, max_tokens"
            ))
        })?;
        input.check()?;
        Ok(input)
    }

    fn check(&self) -> Result<(), Error> {
        if self.path.trim().is_empty() {
            return Err(Error::new("invalid code-review input: path is empty"));
        }
        if let Some(at) = self.source.find('\0') {
            let line = self.source[..at].matches('\n').count() + 1;
            return Err(Error::new(format!(
                "{}: the source has a NUL byte on line {line}: it looks like a binary file, not source code",
                self.path
            )));
        }
        for (i, &(from, to)) in self.changed_lines.iter().flatten().enumerate() {
            if from == 0 || to < from {
                return Err(Error::new(format!(
                    "invalid code-review input: changed_lines[{i}] = [{from}, {to}] is not a range of \
                     lines (1-based, first <= last)"
                )));
            }
        }
        if let Some(n) = self.max_tokens.filter(|n| !(64..=32_768).contains(n)) {
            return Err(Error::new(format!(
                "invalid code-review input: max_tokens = {n} is out of range: use 64 to 32768"
            )));
        }
        if self.context_tokens == Some(0) {
            return Err(Error::new(
                "invalid code-review input: context_tokens must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Reviews `input` with `config`, calling the model through `host`.
pub fn review(config: &Config, input: &Input, host: &dyn ModelHost) -> Result<Output, Error> {
    let lines: Vec<&str> = input.source.lines().collect();
    let model = input
        .model
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(&config.model)
        .trim();
    let changed: Option<Vec<(usize, usize)>> = input.changed_lines.as_ref().map(|ranges| {
        let mut ranges = ranges.clone();
        ranges.sort_unstable();
        ranges
    });
    let mut output = Output {
        findings: Vec::new(),
        dropped: Dropped::default(),
        chunks: 0,
        model: model.to_string(),
    };
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Ok(output);
    }

    let language = Language::detect(&input.path, input.language.as_deref(), &input.source);
    let system = prompt::system_message(&config.rules, config.max_findings);
    let width = prompt::number_width(lines.len());
    let whole = Chunk {
        start: 1,
        end: lines.len(),
    };
    // The prompt around the code; the part that varies per chunk (the line
    // range, changed lines) is at most this long.
    let overhead = system.len()
        + UserMessage {
            path: &input.path,
            language: &language,
            chunk: whole,
            total_lines: lines.len(),
            changed: changed.as_deref(),
        }
        .render("")
        .len()
        + 64;
    let context = input.context_tokens.unwrap_or(DEFAULT_CONTEXT_TOKENS);
    let max_tokens = input.max_tokens.unwrap_or(config.max_tokens);
    let budget = prompt::source_budget(context, max_tokens as usize, overhead)
        .map_err(|e| Error::new(format!("{}: {e}", input.path)))?;
    let mut chunks = chunk::plan(&lines, budget, chunk::OVERLAP);
    if let Some(changed) = &changed {
        chunks.retain(|c| changed.iter().any(|&(a, b)| c.overlaps(a, b)));
    }

    let mut collector = Collector::new(&input.path, &lines, changed.as_deref(), config.max_findings);
    for (i, &chunk) in chunks.iter().enumerate() {
        if host.cancelled() {
            return Err(Error::cancelled(format!(
                "{}: review cancelled before chunk {} of {} (lines {}-{})",
                input.path,
                i + 1,
                chunks.len(),
                chunk.start,
                chunk.end
            )));
        }
        let in_chunk: Option<Vec<(usize, usize)>> = changed.as_ref().map(|ranges| {
            ranges
                .iter()
                .filter(|&&(a, b)| chunk.overlaps(a, b))
                .map(|&(a, b)| (a.max(chunk.start), b.min(chunk.end)))
                .collect()
        });
        let code = prompt::numbered(&lines[chunk.start - 1..chunk.end], chunk.start, width);
        let user = UserMessage {
            path: &input.path,
            language: &language,
            chunk,
            total_lines: lines.len(),
            changed: in_chunk.as_deref(),
        }
        .render(&code);
        let request = prompt::request(&system, &user, config.temperature, max_tokens);
        let where_ = format!("{} (lines {}-{})", input.path, chunk.start, chunk.end);
        let (answer, raw) = ask(host, model, &request.to_string(), &where_)?;
        let report = collector.add(chunk, &raw);
        host.note(&format!(
            "chunk {}/{} {where_}: {} findings from the model, {} kept, {} dropped{}{}; {}",
            i + 1,
            chunks.len(),
            raw.len(),
            report.kept,
            report.dropped,
            if report.over_limit > 0 {
                format!(", {} over max_findings", report.over_limit)
            } else {
                String::new()
            },
            if answer.truncated {
                " (answer cut at max_tokens)"
            } else {
                ""
            },
            answer.usage
        ));
        if let (true, Some(answered)) = (model.is_empty(), answer.model) {
            output.model = answered;
        }
        output.chunks += 1;
    }
    (output.findings, output.dropped) = collector.finish();
    Ok(output)
}

/// Asks `model` (through `host`) to review one chunk (`where_` names it in
/// errors) and reads the raw findings out of its answer.
fn ask(
    host: &dyn ModelHost,
    model: &str,
    request: &str,
    where_: &str,
) -> Result<(answer::Answer, Vec<serde_json::Value>), Error> {
    let response = host.infer(model, request).map_err(|e| {
        let message = format!("reviewing {where_}: {}", e.message());
        match e.kind() {
            ErrorKind::Cancelled => Error::cancelled(message),
            _ => Error::new(message),
        }
    })?;
    // The name the caller asked for, else the one the response gives.
    let named = |answered: Option<&str>| match Some(model).filter(|m| !m.is_empty()).or(answered) {
        Some(name) => format!("model \"{name}\""),
        None => "the default model".to_string(),
    };
    let answer = answer::read_response(&response).map_err(|e| {
        Error::new(format!(
            "reviewing {where_}: {} gave a bad response: {e}: \"{}\"",
            named(None),
            answer::excerpt(&response, EXCERPT_CHARS)
        ))
    })?;
    host.note(&format!(
        "answer for {where_}: {}",
        answer::excerpt(&answer.content, ANSWER_LOG_CHARS)
    ));
    let raw = answer::parse(&answer.content).map_err(|e| {
        let what = match e {
            AnswerError::NotJson if answer.content.trim().is_empty() => "an empty message".to_string(),
            AnswerError::WrongShape(why) => format!("JSON of the wrong shape ({why})"),
            _ => "something that is not JSON".to_string(),
        };
        Error::new(format!(
            "{} answered {where_} with {what}; expected {{\"findings\": [...]}}. The answer starts: \"{}\"",
            named(answer.model.as_deref()),
            answer::excerpt(&answer.content, EXCERPT_CHARS)
        ))
    })?;
    Ok((answer, raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::cell::{Cell, RefCell};

    /// A host that answers each call with the next scripted content.
    struct Scripted {
        answers: RefCell<Vec<Result<String, Error>>>,
        requests: RefCell<Vec<(String, Value)>>,
        cancel_after: Option<usize>,
        calls: Cell<usize>,
    }

    impl Scripted {
        fn new(contents: &[&str]) -> Scripted {
            Scripted {
                answers: RefCell::new(contents.iter().rev().map(|c| Ok(completion(c))).collect()),
                requests: RefCell::new(Vec::new()),
                cancel_after: None,
                calls: Cell::new(0),
            }
        }

        fn user_message(&self, i: usize) -> String {
            self.requests.borrow()[i].1["messages"][1]["content"]
                .as_str()
                .unwrap()
                .to_string()
        }
    }

    fn completion(content: &str) -> String {
        json!({
            "id": "c1", "object": "chat.completion", "model": "deepseek-v4-flash",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        })
        .to_string()
    }

    impl ModelHost for Scripted {
        fn infer(&self, model: &str, request_json: &str) -> Result<String, Error> {
            self.calls.set(self.calls.get() + 1);
            self.requests
                .borrow_mut()
                .push((model.to_string(), serde_json::from_str(request_json).unwrap()));
            self.answers
                .borrow_mut()
                .pop()
                .unwrap_or_else(|| Ok(completion(r#"{"findings": []}"#)))
        }
        fn cancelled(&self) -> bool {
            self.cancel_after.is_some_and(|n| self.calls.get() >= n)
        }
        fn note(&self, _: &str) {}
    }

    const BUGGY: &str = include_str!("../../../examples/buggy.go");

    fn input(source: &str) -> Input {
        Input {
            path: "examples/buggy.go".into(),
            source: source.into(),
            language: None,
            changed_lines: None,
            model: None,
            context_tokens: None,
            max_tokens: None,
        }
    }

    fn line_of(source: &str, needle: &str) -> usize {
        source.lines().position(|l| l.contains(needle)).expect(needle) + 1
    }

    #[test]
    fn reviews_a_file_in_one_call() {
        let nil_map = line_of(BUGGY, "r.Totals[o.Customer] += o.Amount");
        let answer = json!({"findings": [
            {"line": nil_map, "end_line": nil_map, "severity": "error", "rule_id": "Nil Map Write",
             "message": "r.Totals is nil", "suggestion": "r.Totals = map[string]int{}",
             "quote": "r.Totals[o.Customer] += o.Amount"},
            {"line": 500, "message": "out of range", "quote": "x := 1"},
            {"line": 3, "message": "invented", "quote": "panic(\"boom\")"},
            {"message": "no line"},
        ]})
        .to_string();
        let host = Scripted::new(&[&format!("```json\n{answer}\n```")]);
        let output = review(&Config::default(), &input(BUGGY), &host).unwrap();

        let request = &host.requests.borrow()[0];
        assert_eq!(request.0, "", "the host's default model");
        assert_eq!(request.1["response_format"]["type"], "json_schema");
        assert_eq!(request.1["temperature"], 0.0);
        let user = host.user_message(0);
        assert!(user.contains("Review this Go file"), "{user}");
        assert!(
            user.contains(&format!("{nil_map:>3} | \t\tr.Totals[o.Customer] += o.Amount\n")),
            "{user}"
        );

        let out = serde_json::to_value(&output).unwrap();
        assert_eq!(out["chunks"], 1);
        assert_eq!(out["model"], "deepseek-v4-flash");
        assert_eq!(
            out["findings"],
            json!([{"path": "examples/buggy.go", "line": nil_map, "end_line": nil_map, "column": 3,
                    "severity": "error", "rule_id": "nil-map-write", "message": "r.Totals is nil",
                    "suggestion": "r.Totals = map[string]int{}", "quote": "r.Totals[o.Customer] += o.Amount"}])
        );
        assert_eq!(
            out["dropped"],
            json!({"line_out_of_range": 1, "quote_not_in_file": 1, "outside_changed_lines": 0,
                   "malformed": 1, "duplicate": 0})
        );
    }

    /// A Go file of `n` small functions, each with the same bug on its own line.
    fn big_file(n: usize) -> String {
        let mut s = String::from("package main\n");
        for i in 0..n {
            s.push_str(&format!(
                "\n// f{i} adds an item to the cache.\nfunc f{i}(m map[string]int) {{\n\tvar c{i} map[string]int\n\tc{i}[\"k\"] = {i}\n}}\n"
            ));
        }
        s
    }

    /// Answers each request with the nil-map bug of every function it shows.
    struct Reviewer;

    impl ModelHost for Reviewer {
        fn infer(&self, _: &str, request_json: &str) -> Result<String, Error> {
            let request: Value = serde_json::from_str(request_json).unwrap();
            let user = request["messages"][1]["content"].as_str().unwrap();
            let findings: Vec<Value> = user
                .lines()
                .filter_map(|l| l.split_once(" | "))
                .filter(|(_, code)| code.contains("[\"k\"] ="))
                .map(|(n, code)| {
                    json!({"line": n.trim().parse::<usize>().unwrap(), "severity": "error",
                           "rule_id": "nil-map-write", "message": "nil map", "quote": code.trim()})
                })
                .collect();
            Ok(completion(&json!({ "findings": findings }).to_string()))
        }
        fn cancelled(&self) -> bool {
            false
        }
        fn note(&self, _: &str) {}
    }

    #[test]
    fn a_large_file_is_reviewed_in_chunks_without_duplicates() {
        let n = 120;
        let source = big_file(n);
        let mut input = input(&source);
        input.context_tokens = Some(3000);
        let output = review(&Config::default(), &input, &Reviewer).unwrap();
        assert!(output.chunks > 2, "{} chunks", output.chunks);
        // One finding per function, at its real line, whichever chunk saw it.
        assert_eq!(output.findings.len(), n);
        for (i, f) in output.findings.iter().enumerate() {
            assert_eq!(f.line, line_of(&source, &format!("c{i}[\"k\"] = {i}")));
        }
        assert_eq!(
            output.dropped.quote_not_in_file + output.dropped.line_out_of_range,
            0
        );
    }

    #[test]
    fn overlapping_chunks_report_once() {
        // Chunks end before a function's comment and repeat the 3 lines
        // before it, the bug line among them: every chunk after the first
        // reports a bug the previous one did.
        let source = big_file(60);
        let mut input = input(&source);
        input.context_tokens = Some(3000);
        let output = review(&Config::default(), &input, &Reviewer).unwrap();
        assert!(output.chunks > 1);
        assert_eq!(output.dropped.duplicate, output.chunks - 1);
        let mut lines: Vec<usize> = output.findings.iter().map(|f| f.line).collect();
        lines.dedup();
        assert_eq!(lines.len(), 60, "one finding per bug");
    }

    #[test]
    fn diff_mode_reviews_only_changed_chunks_and_keeps_only_changed_lines() {
        let source = big_file(120);
        let target = line_of(&source, "c100[\"k\"] = 100");
        let mut input = input(&source);
        input.context_tokens = Some(3000);
        input.changed_lines = Some(vec![(target - 1, target)]);
        let host = RecordingReviewer::default();
        let output = review(&Config::default(), &input, &host).unwrap();
        assert_eq!(output.chunks, 1, "only the chunk with the change");
        assert_eq!(output.findings.len(), 1);
        assert_eq!(output.findings[0].line, target);
        assert!(output.dropped.outside_changed_lines > 0);
        let user = host.users.borrow()[0].clone();
        assert!(
            user.contains(&format!("Changed lines: {}-{target}\n", target - 1)),
            "{user}"
        );

        // No changed lines at all: nothing to review.
        input.changed_lines = Some(vec![]);
        let output = review(&Config::default(), &input, &Reviewer).unwrap();
        assert_eq!((output.chunks, output.findings.len()), (0, 0));
    }

    #[derive(Default)]
    struct RecordingReviewer {
        users: RefCell<Vec<String>>,
    }

    impl ModelHost for RecordingReviewer {
        fn infer(&self, model: &str, request_json: &str) -> Result<String, Error> {
            let request: Value = serde_json::from_str(request_json).unwrap();
            self.users
                .borrow_mut()
                .push(request["messages"][1]["content"].as_str().unwrap().to_string());
            Reviewer.infer(model, request_json)
        }
        fn cancelled(&self) -> bool {
            false
        }
        fn note(&self, _: &str) {}
    }

    #[test]
    fn a_non_json_answer_is_an_error_naming_the_model_and_showing_the_answer() {
        let host = Scripted::new(&["I think line 12 has a bug, but the rest looks fine to me."]);
        let err = review(&Config::default(), &input(BUGGY), &host).unwrap_err();
        let msg = err.message();
        assert!(msg.contains("model \"deepseek-v4-flash\""), "{msg}");
        assert!(msg.contains("not JSON"), "{msg}");
        assert!(msg.contains("\"I think line 12 has a bug"), "{msg}");
        assert!(msg.contains("examples/buggy.go"), "{msg}");

        let host = Scripted::new(&[r#"{"bugs": [{"line": 1}]}"#]);
        let err = review(&Config::default(), &input(BUGGY), &host).unwrap_err();
        assert!(err.message().contains("wrong shape"), "{}", err.message());
        assert!(err.message().contains("{\"bugs\""), "{}", err.message());

        let long = format!("{{\"findings\": {}", "x".repeat(1000));
        let host = Scripted::new(&[&long]);
        let err = review(&Config::default(), &input(BUGGY), &host).unwrap_err();
        assert!(err.message().len() < 600, "{}", err.message());
    }

    #[test]
    fn model_errors_and_cancellation_keep_their_kind() {
        let host = Scripted::new(&[]);
        host.answers
            .borrow_mut()
            .push(Err(Error::new("401 Unauthorized: check DEEPSEEK_API_KEY")));
        let mut input = input(BUGGY);
        input.model = Some("deepseek-v4-flash".into());
        let err = review(&Config::default(), &input, &host).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert!(err.message().contains("DEEPSEEK_API_KEY"), "{}", err.message());
        assert_eq!(
            host.requests.borrow()[0].0,
            "deepseek-v4-flash",
            "the input's model wins"
        );

        // The output names the model asked for, not the provider's id for it.
        let host = Scripted::new(&[r#"{"findings": []}"#]);
        let config = Config {
            model: "reviewer".into(),
            ..Config::default()
        };
        let output = review(&config, &super::tests::input(BUGGY), &host).unwrap();
        assert_eq!(output.model, "reviewer");
        assert_eq!(host.requests.borrow()[0].0, "reviewer");

        let host = Scripted::new(&[]);
        host.answers.borrow_mut().push(Err(Error::cancelled("deadline")));
        let err = review(&Config::default(), &input, &host).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);

        let mut host = Scripted::new(&[]);
        host.cancel_after = Some(1);
        let mut big = super::tests::input(&big_file(120));
        big.context_tokens = Some(3000);
        let err = review(&Config::default(), &big, &host).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert!(err.message().contains("before chunk 2"), "{}", err.message());
        assert_eq!(host.calls.get(), 1);
    }

    #[test]
    fn empty_files_need_no_model() {
        for source in ["", "\n\n  \n"] {
            let host = Scripted::new(&[]);
            let output = review(&Config::default(), &input(source), &host).unwrap();
            assert_eq!((output.chunks, output.findings.len()), (0, 0));
            assert_eq!(host.calls.get(), 0);
        }
    }

    #[test]
    fn a_context_too_small_is_an_error() {
        let mut input = input(BUGGY);
        input.context_tokens = Some(1200);
        let err = review(&Config::default(), &input, &Scripted::new(&[])).unwrap_err();
        assert!(err.message().contains("too small"), "{}", err.message());
    }

    /// The rows of examples/README.md's bug table: (line, code on it).
    fn readme_bugs() -> Vec<(usize, String)> {
        include_str!("../../../examples/README.md")
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim().trim_matches('|').split('|').map(str::trim).collect();
                let line = cells.first()?.parse().ok()?;
                Some((line, cells.get(2)?.trim_matches('`').to_string()))
            })
            .collect()
    }

    #[test]
    fn the_examples_readme_points_at_the_bugs_and_a_right_review_keeps_them() {
        let bugs = readme_bugs();
        assert_eq!(bugs.len(), 5, "{bugs:?}");
        let lines: Vec<&str> = BUGGY.lines().collect();
        for (line, code) in &bugs {
            assert!(
                lines[line - 1].contains(code.as_str()),
                "buggy.go:{line} is not `{code}`"
            );
        }
        // A model that reports each bug, one line off, gets all five through.
        let findings: Vec<Value> = bugs
            .iter()
            .map(|(line, code)| {
                json!({"line": line + 1, "severity": "error", "rule_id": "bug",
                                       "message": "a bug", "quote": code})
            })
            .collect();
        let host = Scripted::new(&[&json!({ "findings": findings }).to_string()]);
        let output = review(&Config::default(), &input(BUGGY), &host).unwrap();
        let found: Vec<usize> = output.findings.iter().map(|f| f.line).collect();
        let want: Vec<usize> = bugs.iter().map(|b| b.0).collect();
        assert_eq!(found, want);
        assert_eq!(output.dropped, Dropped::default());
    }

    #[test]
    fn input_is_checked() {
        let ok = Input::from_json(br#"{"path": "a.go", "source": "x", "changed_lines": [[1, 2], [5, 5]]}"#)
            .unwrap();
        assert_eq!(ok.changed_lines, Some(vec![(1, 2), (5, 5)]));
        let tight = Input::from_json(br#"{"path": "a.go", "source": "x := 1", "max_tokens": 300}"#).unwrap();
        let host = Scripted::new(&[]);
        review(&Config::default(), &tight, &host).unwrap();
        assert_eq!(host.requests.borrow()[0].1["max_tokens"], 300);
        for (json, want) in [
            (r#"{"path": "a.go"}"#, "missing field `source`"),
            (
                r#"{"path": "a.go", "source": "", "sorce": ""}"#,
                "unknown field `sorce`",
            ),
            (
                r#"{"path": "a.go", "source": "", "changed_lines": [[3, 1]]}"#,
                "changed_lines[0] = [3, 1]",
            ),
            (
                r#"{"path": "a.go", "source": "", "changed_lines": [[0, 1]]}"#,
                "changed_lines[0]",
            ),
            (r#"{"path": "", "source": ""}"#, "path is empty"),
            (
                r#"{"path": "a.bin", "source": "ab\ncd\u0000"}"#,
                "NUL byte on line 2",
            ),
            (
                r#"{"path": "a.go", "source": "", "context_tokens": 0}"#,
                "context_tokens",
            ),
            (
                r#"{"path": "a.go", "source": "", "max_tokens": 1}"#,
                "max_tokens = 1",
            ),
            ("not json", "invalid code-review input"),
        ] {
            let err = Input::from_json(json.as_bytes()).unwrap_err();
            assert!(err.message().contains(want), "{json}: {}", err.message());
        }
    }
}
