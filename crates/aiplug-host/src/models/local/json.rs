//! Closing JSON that generation left unfinished. In JSON mode the grammar
//! keeps every token valid, but `max_tokens` (or a full context, or a stop
//! string) can end generation in the middle of an object; the shortest text
//! that completes it is appended, so the caller always gets parseable JSON
//! (`finish_reason` still says `length`).

/// Follows a JSON prefix character by character and knows the shortest
/// completion. It assumes the prefix is valid JSON so far (the grammar
/// guarantees that); on anything else it gives up and completes nothing.
#[derive(Debug, Default)]
pub(crate) struct JsonCloser {
    /// Open containers: `true` for an object, `false` for an array.
    stack: Vec<bool>,
    expect: Expect,
    scalar: Scalar,
    broken: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing yet: a top-level value.
    #[default]
    Start,
    /// A value (after `:`, or after `,` in an array).
    Value,
    /// A value or `]` (after `[`).
    ValueOrClose,
    /// A key or `}` (after `{`).
    KeyOrClose,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the container's end, after a value.
    CommaOrClose,
    /// The top-level value is complete.
    Done,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Scalar {
    #[default]
    None,
    /// Inside a string (`key`: an object key); `escape`: 0 none, 1 after a
    /// backslash, 2..=5 hex digits of `\u` still to come plus one.
    String { key: bool, escape: u8 },
    /// Inside a number; its last character.
    Number(char),
    /// Inside `true`/`false`/`null`: what is still to come.
    Literal(&'static str),
}

impl JsonCloser {
    /// Follows `text`.
    pub(crate) fn push_str(&mut self, text: &str) {
        for c in text.chars() {
            if self.broken {
                return;
            }
            self.push(c);
        }
    }

    fn push(&mut self, c: char) {
        match self.scalar.clone() {
            Scalar::String { key, escape } => {
                self.scalar = match (escape, c) {
                    (0, '"') => {
                        self.value_done(key);
                        Scalar::None
                    }
                    (0, '\\') => Scalar::String { key, escape: 1 },
                    (0, _) => Scalar::String { key, escape: 0 },
                    (1, 'u') => Scalar::String { key, escape: 5 },
                    (1, _) => Scalar::String { key, escape: 0 },
                    (2, _) => Scalar::String { key, escape: 0 },
                    (n, _) => Scalar::String { key, escape: n - 1 },
                };
                return;
            }
            Scalar::Number(_) if c.is_ascii_digit() || "+-.eE".contains(c) => {
                self.scalar = Scalar::Number(c);
                return;
            }
            Scalar::Number(_) => {
                self.scalar = Scalar::None;
                self.value_done(false);
            }
            Scalar::Literal(rest) => {
                match rest.strip_prefix(c) {
                    Some("") => {
                        self.scalar = Scalar::None;
                        self.value_done(false);
                    }
                    Some(more) => self.scalar = Scalar::Literal(more),
                    None => self.broken = true,
                }
                return;
            }
            Scalar::None => {}
        }
        if c.is_whitespace() {
            return;
        }
        let expect = self.expect;
        let wants_value = matches!(expect, Expect::Start | Expect::Value | Expect::ValueOrClose);
        match c {
            '{' if wants_value => {
                self.stack.push(true);
                self.expect = Expect::KeyOrClose;
            }
            '[' if wants_value => {
                self.stack.push(false);
                self.expect = Expect::ValueOrClose;
            }
            '"' if wants_value => {
                self.scalar = Scalar::String {
                    key: false,
                    escape: 0,
                }
            }
            '"' if matches!(expect, Expect::KeyOrClose | Expect::Key) => {
                self.scalar = Scalar::String { key: true, escape: 0 }
            }
            '-' | '0'..='9' if wants_value => self.scalar = Scalar::Number(c),
            't' if wants_value => self.scalar = Scalar::Literal("rue"),
            'f' if wants_value => self.scalar = Scalar::Literal("alse"),
            'n' if wants_value => self.scalar = Scalar::Literal("ull"),
            ':' if expect == Expect::Colon => self.expect = Expect::Value,
            ',' if expect == Expect::CommaOrClose => {
                self.expect = if self.stack.last() == Some(&true) {
                    Expect::Key
                } else {
                    Expect::Value
                }
            }
            '}' if self.stack.last() == Some(&true)
                && matches!(expect, Expect::KeyOrClose | Expect::CommaOrClose) =>
            {
                self.stack.pop();
                self.value_done(false);
            }
            ']' if self.stack.last() == Some(&false)
                && matches!(expect, Expect::ValueOrClose | Expect::CommaOrClose) =>
            {
                self.stack.pop();
                self.value_done(false);
            }
            _ => self.broken = true,
        }
    }

    /// A value (or key) ended.
    fn value_done(&mut self, key: bool) {
        self.expect = if key {
            Expect::Colon
        } else if self.stack.is_empty() {
            Expect::Done
        } else {
            Expect::CommaOrClose
        };
    }

    /// The shortest text that makes what was pushed a complete JSON value
    /// (empty when it already is, or when the prefix was not JSON).
    pub(crate) fn completion(&self) -> String {
        if self.broken {
            return String::new();
        }
        let mut out = String::new();
        let mut expect = self.expect;
        match &self.scalar {
            Scalar::None => {}
            Scalar::String { key, escape } => {
                match escape {
                    0 => {}
                    1 => out.push('n'),
                    n => out.extend(std::iter::repeat_n('0', usize::from(*n - 1))),
                }
                out.push('"');
                expect = if *key { Expect::Colon } else { Expect::CommaOrClose };
            }
            Scalar::Number(last) => {
                if matches!(last, '-' | '+' | '.' | 'e' | 'E') {
                    out.push('0');
                }
                expect = Expect::CommaOrClose;
            }
            Scalar::Literal(rest) => {
                out.push_str(rest);
                expect = Expect::CommaOrClose;
            }
        }
        match expect {
            Expect::Start => return "{}".into(),
            Expect::Value => out.push_str("null"),
            Expect::Key => out.push_str("\"\":null"),
            Expect::Colon => out.push_str(":null"),
            Expect::ValueOrClose | Expect::KeyOrClose | Expect::CommaOrClose | Expect::Done => {}
        }
        for object in self.stack.iter().rev() {
            out.push(if *object { '}' } else { ']' });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(prefix: &str) -> String {
        let mut closer = JsonCloser::default();
        closer.push_str(prefix);
        let done = format!("{prefix}{}", closer.completion());
        serde_json::from_str::<serde_json::Value>(&done)
            .unwrap_or_else(|e| panic!("{prefix:?} -> {done:?}: {e}"));
        done
    }

    #[test]
    fn every_prefix_of_a_document_closes_to_valid_json() {
        let doc = r#"{"name": "Tom \"the\" cat\u00e9\n", "age": -1.5e+3, "tags": ["a", true, false, null, {}],
            "nested": {"deep": [[1, 2], {"x": 0}]}, "empty": [], "z": 10}"#;
        for (i, _) in doc.char_indices() {
            close(&doc[..i]);
        }
        assert_eq!(close(doc), doc, "a complete document needs nothing");
    }

    #[test]
    fn completions_are_minimal() {
        assert_eq!(close(""), "{}");
        assert_eq!(close(r#"{"a"#), r#"{"a":null}"#);
        assert_eq!(close(r#"{"a": [1, "#), r#"{"a": [1, null]}"#);
        assert_eq!(close(r#"{"a": tr"#), r#"{"a": true}"#);
        assert_eq!(close(r#"{"a": 1, "#), r#"{"a": 1, "":null}"#);
    }

    #[test]
    fn text_that_is_not_json_gets_no_completion() {
        let mut closer = JsonCloser::default();
        closer.push_str("Sure! {");
        assert_eq!(closer.completion(), "");
    }
}
