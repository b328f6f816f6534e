//! The prompt: a byte-stable system message (the rules and the JSON shape
//! to answer with) and a user message with the code, numbered with the
//! file's real line numbers.

use serde_json::{json, Value};

use crate::chunk::Chunk;
use crate::lang::Language;

/// Bytes of prompt per token assumed when sizing chunks. Measured: the
/// review prompt for examples/buggy.go is 2.7 bytes per token with the
/// default local model's tokenizer (SmolLM2; tabs and line numbers cost);
/// larger models' tokenizers pack code better (3.5 to 4), so this errs
/// toward chunks that fit.
pub const CHARS_PER_TOKEN: f64 = 2.75;

/// Tokens the chat template adds around each message, and some slack for
/// the per-chunk parts of the user message.
const TEMPLATE_TOKENS: usize = 64;

/// The fewest tokens of source a chunk may have; a smaller budget means the
/// context is too small to review anything.
pub const MIN_SOURCE_TOKENS: usize = 128;

/// The example answer in the system prompt. Its code is deliberately
/// unlike any file under review, so a model that copies it verbatim gets a
/// finding whose quote is not in the file (dropped), not a false positive.
const EXAMPLE: &str = r#"{"findings": [{"line": 7, "end_line": 7, "severity": "error", "rule_id": "unchecked-error", "message": "the error from strconv.Atoi is discarded, so a malformed port silently becomes 0", "suggestion": "port, err := strconv.Atoi(s); if err != nil { return fmt.Errorf(\"bad port %q: %w\", s, err) }", "quote": "port, _ := strconv.Atoi(s)"}]}"#;

/// The system message. It depends only on the configuration, so it is the
/// same for every file and chunk (model servers' prefix caches hit).
pub fn system_message(rules: &[String], max_findings: usize) -> String {
    let mut s = String::from(
        "You are a meticulous senior engineer reviewing code for real bugs: defects that make the \
         program crash, compute wrong results, leak resources, race, or open a security hole. \
         Ignore style, naming, formatting, comments and missing documentation.\n\nLook for:\n",
    );
    for rule in rules {
        s.push_str("- ");
        s.push_str(rule.trim());
        s.push('\n');
    }
    s.push_str("\nAnswer with one json object and nothing else, in exactly this shape (an example):\n");
    s.push_str(EXAMPLE);
    s.push_str(&format!(
        "\n\nFields of each finding:\n\
         - line, end_line: the numbers shown left of the \"|\" for the first and last line of the problem.\n\
         - severity: \"error\" (it will fail), \"warning\" (it can fail), or \"info\" (a risk worth a look).\n\
         - rule_id: a short kebab-case name for the kind of bug, such as nil-map-write, \
         division-by-zero, unchecked-error, defer-in-loop, loop-variable-capture, sql-injection.\n\
         - message: what is wrong and when it goes wrong, in one or two sentences.\n\
         - suggestion: the fix, as code or one sentence; \"\" if none.\n\
         - quote: the code the finding is about, copied exactly from that line, without the line number.\n\n\
         Report at most {max_findings} findings, most severe first, each about code you were shown. \
         Do not report a problem you cannot point to. If the code has no bugs, answer {{\"findings\": []}}.\n"
    ));
    s
}

/// Numbers `lines` (the file's lines `first..`) as `  12 | code`, with the
/// numbers right-aligned to `width`.
pub fn numbered(lines: &[&str], first: usize, width: usize) -> String {
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + width + 4).sum());
    for (i, line) in lines.iter().enumerate() {
        let n = first + i;
        if line.is_empty() {
            out.push_str(&format!("{n:>width$} |\n"));
        } else {
            out.push_str(&format!("{n:>width$} | {line}\n"));
        }
    }
    out
}

/// The width of the number column for a file of `line_count` lines.
pub fn number_width(line_count: usize) -> usize {
    line_count.to_string().len().max(3)
}

/// What one chunk's user message says besides the code.
pub struct UserMessage<'a> {
    /// The file's path as the caller gave it.
    pub path: &'a str,
    /// Its language.
    pub language: &'a Language,
    /// The lines shown.
    pub chunk: Chunk,
    /// How many lines the file has.
    pub total_lines: usize,
    /// In diff mode: the changed ranges that fall in the chunk.
    pub changed: Option<&'a [(usize, usize)]>,
}

impl UserMessage<'_> {
    /// The user message with `code` (the chunk's numbered lines).
    pub fn render(&self, code: &str) -> String {
        let Chunk { start, end } = self.chunk;
        let mut s = format!(
            "Review this {} file for bugs.\nPath: {}\n",
            self.language.name, self.path
        );
        if start == 1 && end == self.total_lines {
            s.push_str(&format!("Lines: 1-{end} (the whole file)\n"));
        } else {
            s.push_str(&format!(
                "Lines: {start}-{end} of {} (a part of the file; code outside it exists but is not shown)\n",
                self.total_lines
            ));
        }
        if let Some(changed) = self.changed {
            s.push_str("Changed lines: ");
            s.push_str(&ranges_text(changed));
            s.push_str(
                "\nOnly report bugs on the changed lines (or caused by them); the other lines are context.\n",
            );
        }
        s.push_str(&format!("\n```{}\n{code}```\n\n", self.language.id));
        s.push_str("Answer with the json object {\"findings\": [...]} described above.");
        s
    }
}

/// `3-5, 9, 12-20`, at most 20 ranges (then `and N more`).
fn ranges_text(ranges: &[(usize, usize)]) -> String {
    const SHOWN: usize = 20;
    let mut parts: Vec<String> = ranges
        .iter()
        .take(SHOWN)
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect();
    if ranges.len() > SHOWN {
        parts.push(format!("and {} more", ranges.len() - SHOWN));
    }
    parts.join(", ")
}

/// The chat request for one chunk: JSON mode, the configured temperature
/// and answer length. The model is chosen by the `infer` call, not here.
pub fn request(system: &str, user: &str, temperature: f64, max_tokens: u32) -> Value {
    json!({
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        // A schema whose top level must be {"findings": [...]}: servers and the
        // local provider constrain the answer to it; DeepSeek (json_object
        // only) gets plain JSON mode and the shape from the prompt.
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "review",
            "schema": {"type": "object", "required": ["findings"],
                       "properties": {"findings": {"type": "array"}}},
        }},
        "temperature": temperature,
        "max_tokens": max_tokens,
    })
}

/// Estimated tokens of `bytes` bytes of prompt text.
pub fn tokens(bytes: usize) -> usize {
    (bytes as f64 / CHARS_PER_TOKEN).ceil() as usize
}

/// How many bytes of numbered source one chunk may have, for a model with
/// `context_tokens` of context that answers with up to `max_tokens`, when
/// the rest of the prompt takes `overhead_bytes`. Leaves a tenth of the
/// source budget as a margin for the estimate. An error (for people) when
/// the context is too small.
pub fn source_budget(
    context_tokens: usize,
    max_tokens: usize,
    overhead_bytes: usize,
) -> Result<usize, String> {
    let overhead = tokens(overhead_bytes) + TEMPLATE_TOKENS;
    let left = context_tokens.saturating_sub(overhead + max_tokens);
    if left < MIN_SOURCE_TOKENS {
        return Err(format!(
            "a context of {context_tokens} tokens is too small to review code: the prompt takes about \
             {overhead} and the answer up to {max_tokens}, leaving {left} for the source (at least \
             {MIN_SOURCE_TOKENS} needed); pass the model's real context_tokens, or lower max_tokens or \
             the number of rules in the plugin's [config]"
        ));
    }
    Ok((left as f64 * CHARS_PER_TOKEN * 0.9) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go() -> Language {
        Language::lookup("go").unwrap()
    }

    #[test]
    fn the_example_quote_is_not_in_the_sample_file() {
        // A model that copies the example must not "find" a bug in the sample.
        let example: Value = serde_json::from_str(EXAMPLE).unwrap();
        let quote = example["findings"][0]["quote"].as_str().unwrap();
        assert!(!include_str!("../../../examples/buggy.go").contains(quote));
    }

    #[test]
    fn numbering_uses_real_line_numbers() {
        let text = numbered(&["package main", "", "\tx := 1"], 11, 4);
        assert_eq!(text, "  11 | package main\n  12 |\n  13 | \tx := 1\n");
        assert_eq!(numbered(&[], 1, 3), "");
        assert_eq!(number_width(9), 3);
        assert_eq!(number_width(12_345), 5);
    }

    #[test]
    fn system_message_has_rules_json_and_an_example() {
        let rules = vec!["rule one".to_string(), "  rule two ".to_string()];
        let s = system_message(&rules, 7);
        assert!(s.contains("- rule one\n- rule two\n"), "{s}");
        // DeepSeek's JSON mode wants the word "json" and an example.
        assert!(s.contains("json"));
        let example = s.lines().find(|l| l.starts_with("{\"findings\"")).unwrap();
        let parsed: Value = serde_json::from_str(example).unwrap();
        let finding = &parsed["findings"][0];
        for key in [
            "line",
            "end_line",
            "severity",
            "rule_id",
            "message",
            "suggestion",
            "quote",
        ] {
            assert!(!finding[key].is_null(), "the example lacks {key}");
        }
        assert!(s.contains("at most 7 findings"));
        // Stable: the same config gives the same bytes.
        assert_eq!(s, system_message(&rules, 7));
    }

    #[test]
    fn user_message_shows_path_language_range_and_code() {
        let lang = go();
        let code = numbered(&["func main() {}"], 1, 3);
        let whole = UserMessage {
            path: "examples/buggy.go",
            language: &lang,
            chunk: Chunk { start: 1, end: 1 },
            total_lines: 1,
            changed: None,
        }
        .render(&code);
        assert!(whole.contains("Review this Go file"), "{whole}");
        assert!(whole.contains("Path: examples/buggy.go"));
        assert!(whole.contains("the whole file"));
        assert!(whole.contains("```go\n  1 | func main() {}\n```"), "{whole}");
        assert!(!whole.contains("Changed lines"));

        let part = UserMessage {
            path: "a.go",
            language: &lang,
            chunk: Chunk { start: 40, end: 80 },
            total_lines: 200,
            changed: Some(&[(41, 41), (50, 55)]),
        }
        .render("");
        assert!(part.contains("Lines: 40-80 of 200"), "{part}");
        assert!(part.contains("Changed lines: 41, 50-55\n"), "{part}");
    }

    #[test]
    fn many_changed_ranges_are_abbreviated() {
        let ranges: Vec<(usize, usize)> = (1..=25).map(|i| (i * 2, i * 2)).collect();
        let text = ranges_text(&ranges);
        assert!(text.ends_with("40, and 5 more"), "{text}");
    }

    #[test]
    fn request_is_json_mode_with_config_sampling() {
        let r = request("sys", "user", 0.0, 1024);
        assert_eq!(r["response_format"]["type"], "json_schema");
        assert_eq!(
            r["response_format"]["json_schema"]["schema"]["required"][0],
            "findings"
        );
        assert_eq!(r["temperature"], 0.0);
        assert_eq!(r["max_tokens"], 1024);
        assert_eq!(r["messages"][0]["role"], "system");
        assert_eq!(r["messages"][1]["content"], "user");
        assert!(r.get("model").is_none());
    }

    #[test]
    fn budget_leaves_room_for_prompt_and_answer() {
        // 4096 - (1273 + 64) - 1024 = 1735 tokens, 90% of 1735 * 2.75 bytes.
        assert_eq!(source_budget(4096, 1024, 3500).unwrap(), 4294);
        let err = source_budget(1500, 1024, 1400).unwrap_err();
        assert!(err.contains("1500 tokens is too small"), "{err}");
    }
}
