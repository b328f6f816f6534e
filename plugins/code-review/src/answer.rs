//! Reading the model's answer: the chat response, the message text, the
//! JSON object in it (however the model wrapped it), and its findings.

use serde_json::Value;

/// The parts of a chat-completion response the review uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The `model` that answered, when the response names one.
    pub model: Option<String>,
    /// `choices[0].message.content` (text parts joined).
    pub content: String,
    /// Whether generation stopped at `max_tokens` (`finish_reason: length`).
    pub truncated: bool,
    /// Token counts and, from a local model, timings, for the log:
    /// `prompt 2400 tokens, answer 1024 tokens, prompt 9.1 s, generation 31.0 s`.
    pub usage: String,
}

/// Why an answer could not be read. `Display` says so for people; the
/// caller adds which model answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The host's response is not a chat completion (no `choices[0].message`).
    NotACompletion(String),
    /// The message text holds no JSON object.
    NotJson,
    /// JSON, but not `{"findings": [...]}`.
    WrongShape(String),
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::NotACompletion(why) => write!(f, "the response is not a chat completion: {why}"),
            AnswerError::NotJson => f.write_str("the answer is not JSON"),
            AnswerError::WrongShape(why) => {
                write!(
                    f,
                    "the answer is JSON of the wrong shape (expected {{\"findings\": [...]}}): {why}"
                )
            }
        }
    }
}

/// Reads a chat-completion response (JSON text).
pub fn read_response(response_json: &str) -> Result<Answer, AnswerError> {
    let response: Value = serde_json::from_str(response_json)
        .map_err(|e| AnswerError::NotACompletion(format!("not JSON ({e})")))?;
    let choice = response
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| AnswerError::NotACompletion("it has no choices".into()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| AnswerError::NotACompletion("choices[0] has no message".into()))?;
    let content = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        // Content parts: [{"type": "text", "text": "..."}].
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    Ok(Answer {
        model: response
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        content,
        truncated: choice.get("finish_reason").and_then(Value::as_str) == Some("length"),
        usage: usage(&response),
    })
}

/// `usage` and llama-server style `timings` of a response, for people.
fn usage(response: &Value) -> String {
    let number = |v: &Value, key: &str| v.get(key).and_then(Value::as_f64);
    let mut parts = Vec::new();
    if let Some(usage) = response.get("usage") {
        if let Some(n) = number(usage, "prompt_tokens") {
            parts.push(format!("prompt {n} tokens"));
        }
        if let Some(n) = number(usage, "completion_tokens") {
            parts.push(format!("answer {n} tokens"));
        }
    }
    if let Some(timings) = response.get("timings") {
        if let Some(ms) = number(timings, "prompt_ms") {
            parts.push(format!("prompt {:.1} s", ms / 1000.0));
        }
        if let Some(ms) = number(timings, "predicted_ms") {
            parts.push(format!("generation {:.1} s", ms / 1000.0));
        }
    }
    parts.join(", ")
}

/// The JSON value in a model's message: the whole text; else the inside of
/// a ```json fence; else the first object (`{"...`) in the text that parses,
/// prose around it ignored; else, for an answer cut off by `max_tokens`, its
/// complete part with the open brackets closed. `None` when none of these
/// parse.
pub fn extract_json(text: &str) -> Option<Value> {
    let text = text.trim().trim_start_matches('\u{feff}');
    let parse = |s: &str| serde_json::from_str::<Value>(s.trim()).ok();
    if let Some(v) = parse(text) {
        return Some(v);
    }
    if let Some(v) = fenced(text).and_then(parse) {
        return Some(v);
    }
    let starts = text
        .match_indices('{')
        .map(|(i, _)| i)
        .filter(|&i| text[i + 1..].trim_start().starts_with('"'));
    for start in starts.take(64) {
        let rest = &text[start..];
        match serde_json::Deserializer::from_str(rest)
            .into_iter::<Value>()
            .next()
        {
            Some(Ok(v)) => return Some(v),
            // The text ends inside this object: an answer cut short.
            Some(Err(e)) if e.is_eof() => return close_truncated(rest).and_then(|s| parse(&s)),
            _ => continue,
        }
    }
    None
}

/// The text inside the first ``` fence (the info string, e.g. `json`,
/// skipped); to the end of the text when the closing fence is missing.
fn fenced(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body = &after[after.find('\n')? + 1..];
    Some(match body.find("```") {
        Some(end) => &body[..end],
        None => body,
    })
}

/// `prefix` (starting with `{`) cut back to the last complete value inside
/// an array or object, with the brackets still open closed: the findings a
/// truncated answer did finish. `None` when nothing complete remains.
fn close_truncated(prefix: &str) -> Option<String> {
    let mut stack: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    // (byte offset after a closing bracket, the stack still open there)
    let mut last_complete: Option<(usize, Vec<char>)> = None;
    for (i, c) in prefix.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                if stack.pop() != Some(c) {
                    return None;
                }
                if stack.is_empty() {
                    // Complete: the caller would have parsed it.
                    return None;
                }
                last_complete = Some((i + 1, stack.clone()));
            }
            _ => {}
        }
    }
    let (end, open) = last_complete?;
    let mut closed = prefix[..end].to_string();
    closed.extend(open.iter().rev());
    Some(closed)
}

/// The findings of an answer's JSON: the items of `{"findings": [...]}`
/// (a bare array of findings is accepted too). Items are not checked here
/// (see `validate`).
pub fn findings(value: Value) -> Result<Vec<Value>, AnswerError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => match map.remove("findings") {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(AnswerError::WrongShape(format!(
                "\"findings\" is {}, not an array",
                kind(&other)
            ))),
            None => {
                let keys: Vec<&str> = map.keys().map(String::as_str).take(5).collect();
                Err(AnswerError::WrongShape(if keys.is_empty() {
                    "an empty object, no \"findings\"".to_string()
                } else {
                    format!("no \"findings\" key (keys: {})", keys.join(", "))
                }))
            }
        },
        other => Err(AnswerError::WrongShape(format!(
            "{}, not an object",
            kind(&other)
        ))),
    }
}

/// The findings of a message text (see [`extract_json`] and [`findings`]).
pub fn parse(content: &str) -> Result<Vec<Value>, AnswerError> {
    findings(extract_json(content).ok_or(AnswerError::NotJson)?)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first `max` characters of `text` for an error message, on one line
/// (newlines shown as `\n`), with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect::<String>().replace('\n', "\\n");
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FINDINGS: &str = r#"{"findings": [{"line": 3, "message": "m", "quote": "x"}]}"#;

    fn lines_of(v: Option<Value>) -> Vec<u64> {
        let items = findings(v.expect("JSON found")).unwrap();
        items.iter().map(|f| f["line"].as_u64().unwrap()).collect()
    }

    #[test]
    fn reads_a_chat_completion() {
        let response = json!({
            "id": "x", "model": "deepseek-v4-flash",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": FINDINGS}, "finish_reason": "stop"}],
        });
        let answer = read_response(&response.to_string()).unwrap();
        assert_eq!(answer.model.as_deref(), Some("deepseek-v4-flash"));
        assert_eq!(answer.content, FINDINGS);
        assert!(!answer.truncated);

        let parts = json!({"choices": [{"message": {"content": [{"type": "text", "text": "{}"}]}, "finish_reason": "length"}]});
        let answer = read_response(&parts.to_string()).unwrap();
        assert_eq!(
            (answer.content.as_str(), answer.model, answer.truncated),
            ("{}", None, true)
        );
        assert_eq!(answer.usage, "");

        let local = json!({"choices": [{"message": {"content": "{}"}}],
                           "usage": {"prompt_tokens": 2400, "completion_tokens": 12},
                           "timings": {"prompt_n": 2400, "prompt_ms": 9100.0, "predicted_n": 12, "predicted_ms": 310.5}});
        let answer = read_response(&local.to_string()).unwrap();
        assert_eq!(
            answer.usage,
            "prompt 2400 tokens, answer 12 tokens, prompt 9.1 s, generation 0.3 s"
        );

        for bad in ["nope", "{}", r#"{"choices": []}"#, r#"{"choices": [{}]}"#] {
            assert!(
                matches!(read_response(bad), Err(AnswerError::NotACompletion(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn extracts_json_from_messy_answers() {
        for text in [
            FINDINGS.to_string(),
            format!("  \n{FINDINGS}\n"),
            format!("```json\n{FINDINGS}\n```"),
            format!("Here are the bugs I found:\n```\n{FINDINGS}\n```\nHope this helps!"),
            format!("Sure! {FINDINGS} Let me know if you need more."),
            format!("```json\n{FINDINGS}"),
            format!("\u{feff}{FINDINGS}"),
            format!("{FINDINGS}\n(answer {{}} when there are none)"),
            format!("Use the {{shape}} asked for: {FINDINGS}"),
        ] {
            assert_eq!(lines_of(extract_json(&text)), [3], "{text}");
        }
    }

    #[test]
    fn salvages_the_complete_findings_of_a_truncated_answer() {
        let text = r#"{"findings": [{"line": 3, "message": "a } in a string", "quote": "x"}, {"line": 9, "message": "cut"#;
        assert_eq!(lines_of(extract_json(text)), [3]);
        let text = r#"{"findings": [{"line": 3, "message": "m", "quote": "x"}, {"line": 4, "message": "m", "quote": "y"},"#;
        assert_eq!(lines_of(extract_json(text)), [3, 4]);
        // Nothing complete: not JSON.
        assert_eq!(extract_json(r#"{"findings": [{"line": 3"#), None);
    }

    #[test]
    fn not_json_and_wrong_shapes() {
        assert_eq!(parse("I found no bugs."), Err(AnswerError::NotJson));
        assert_eq!(parse(""), Err(AnswerError::NotJson));
        assert_eq!(parse("{not json}"), Err(AnswerError::NotJson));
        for (text, why) in [
            (r#"{"findings": "none"}"#, "\"findings\" is a string"),
            (r#"{"bugs": []}"#, "no \"findings\" key (keys: bugs)"),
            (r#"{}"#, "an empty object"),
            (r#""findings""#, "a string, not an object"),
        ] {
            match parse(text) {
                Err(AnswerError::WrongShape(w)) => assert!(w.contains(why), "{text}: {w}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(parse(r#"{"findings": []}"#), Ok(vec![]));
        assert_eq!(parse(r#"[{"line": 1}]"#).unwrap().len(), 1);
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("ab\ncd", 10), "ab\\ncd");
        assert_eq!(excerpt(&"é".repeat(300), 200).chars().count(), 201);
    }
}
