//! `prompt-decorator`: a request filter that puts a configured system prompt
//! in front of every chat request and a configured instruction at its end.
//!
//! Prefix-cache friendly by construction: the system text is byte-stable
//! (placeholders are refused there at load), and varying text (`{date}`) may
//! only appear in `suffix`, which is appended to the last user message, so
//! everything before it stays identical between requests.
//!
//! Config (`[config]` in plugin.toml):
//! - `system` (string, optional): system prompt. Prepended to an existing
//!   leading system message, or inserted as the first message.
//! - `suffix` (string, optional): appended to the last user message, after a
//!   blank line. `{date}` becomes today's UTC date (YYYY-MM-DD).
//!
//! A request that already starts with the configured system text is not
//! decorated twice (a request can pass the filters again when a plugin calls
//! a model through the host).

use aiplug_sdk::{export_plugin, Context, Error, Hooks, Level, Plugin, Verdict};
use serde_json::{Map, Value};

/// The filter and its configuration.
pub struct PromptDecorator {
    system: Option<String>,
    suffix: Option<String>,
}

impl PromptDecorator {
    /// Builds the decorator from the `[config]` JSON; refuses placeholders in
    /// `system` and fields of the wrong type.
    pub fn from_config(config_json: &str) -> Result<PromptDecorator, Error> {
        let config: Map<String, Value> = serde_json::from_str(config_json)
            .map_err(|e| Error::new(format!("config is not a JSON object: {e}")))?;
        let text = |key: &str| -> Result<Option<String>, Error> {
            match config.get(key) {
                None => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(Error::new(format!(
                    "config `{key}` must be a string, found {other}"
                ))),
            }
        };
        if let Some(unknown) = config.keys().find(|k| !matches!(k.as_str(), "system" | "suffix")) {
            return Err(Error::new(format!(
                "unknown config key `{unknown}` (known: system, suffix)"
            )));
        }
        let system = text("system")?;
        if system.as_deref().is_some_and(|s| s.contains("{date}")) {
            return Err(Error::new(
                "config `system` contains {date}: the system prompt must be byte-stable so the model server's prefix cache hits; put varying text in `suffix`",
            ));
        }
        Ok(PromptDecorator {
            system,
            suffix: text("suffix")?,
        })
    }

    /// Decorates a chat request; `None` when there is nothing to change.
    pub fn decorate(&self, request_json: &str, today: &str) -> Result<Option<String>, Error> {
        if self.system.is_none() && self.suffix.is_none() {
            return Ok(None);
        }
        let mut request: Value = serde_json::from_str(request_json)
            .map_err(|e| Error::new(format!("request is not JSON: {e}")))?;
        let messages = request
            .get_mut("messages")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::new("request has no `messages` array"))?;

        if let Some(system) = &self.system {
            if already_decorated(messages, system) {
                return Ok(None);
            }
            match messages.first_mut() {
                Some(first) if first.get("role").and_then(Value::as_str) == Some("system") => {
                    let existing = first.get("content").and_then(Value::as_str).unwrap_or("");
                    first["content"] = Value::String(format!("{system}\n\n{existing}"));
                }
                _ => messages.insert(0, serde_json::json!({"role": "system", "content": system})),
            }
        }
        if let Some(suffix) = &self.suffix {
            let suffix = suffix.replace("{date}", today);
            if let Some(last_user) = messages
                .iter_mut()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            {
                append_text(last_user, &suffix);
            }
        }
        serde_json::to_string(&request)
            .map(Some)
            .map_err(|e| Error::new(format!("cannot serialise the request: {e}")))
    }
}

fn already_decorated(messages: &[Value], system: &str) -> bool {
    messages.first().is_some_and(|m| {
        m.get("role").and_then(Value::as_str) == Some("system")
            && m.get("content")
                .and_then(Value::as_str)
                .is_some_and(|c| c.starts_with(system))
    })
}

/// Appends `text` to a message whose content is a string or a list of parts.
fn append_text(message: &mut Value, text: &str) {
    match message.get_mut("content") {
        Some(Value::String(content)) => {
            content.push_str("\n\n");
            content.push_str(text);
        }
        Some(Value::Array(parts)) => parts.push(serde_json::json!({"type": "text", "text": text})),
        _ => message["content"] = Value::String(text.to_string()),
    }
}

/// Today's UTC date as YYYY-MM-DD (civil-from-days, proleptic Gregorian).
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

impl Plugin for PromptDecorator {
    const ID: &'static str = "prompt-decorator";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const HOOKS: Hooks = Hooks::ON_REQUEST;

    fn load(ctx: &Context<'_>, config_json: &str) -> Result<Self, Error> {
        let decorator = PromptDecorator::from_config(config_json)?;
        ctx.log(Level::Debug, "prompt-decorator configured");
        Ok(decorator)
    }

    fn on_request(&self, _ctx: &Context<'_>, request_json: &str) -> Result<Verdict, Error> {
        Ok(match self.decorate(request_json, &today_utc())? {
            Some(rewritten) => Verdict::Rewrite(rewritten),
            None => Verdict::Continue,
        })
    }
}

export_plugin!(PromptDecorator);

#[cfg(test)]
mod tests {
    use super::*;

    fn decorator(config: &str) -> PromptDecorator {
        PromptDecorator::from_config(config).unwrap()
    }

    #[test]
    fn inserts_system_first_and_suffix_last() {
        let d = decorator(r#"{"system":"Be terse.","suffix":"(Today is {date}.)"}"#);
        let out = d
            .decorate(
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
                "2026-11-29",
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            r#"{"model":"m","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"hi\n\n(Today is 2026-11-29.)"}]}"#
        );
    }

    #[test]
    fn system_prefix_is_byte_stable_across_days() {
        let d = decorator(r#"{"system":"Be terse.","suffix":"{date}"}"#);
        let req = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let a = d.decorate(req, "2026-11-29").unwrap().unwrap();
        let b = d.decorate(req, "2026-11-30").unwrap().unwrap();
        let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        // Everything up to the varying date is identical.
        assert!(a[..common].contains("hi\\n\\n2026-11-"), "{a}");
    }

    #[test]
    fn prepends_to_an_existing_system_message_and_is_idempotent() {
        let d = decorator(r#"{"system":"Rules."}"#);
        let req = r#"{"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"x"}]}"#;
        let once = d.decorate(req, "d").unwrap().unwrap();
        assert!(once.contains(r#""content":"Rules.\n\nBe kind.""#), "{once}");
        assert_eq!(d.decorate(&once, "d").unwrap(), None);
    }

    #[test]
    fn content_parts_get_a_text_part() {
        let d = decorator(r#"{"suffix":"end"}"#);
        let out = d
            .decorate(
                r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#,
                "d",
            )
            .unwrap()
            .unwrap();
        assert!(out.ends_with(r#"{"type":"text","text":"end"}]}]}"#), "{out}");
    }

    #[test]
    fn bad_config_is_refused_with_the_key() {
        let err = PromptDecorator::from_config(r#"{"system":"Today is {date}"}"#)
            .err()
            .unwrap();
        assert!(err.message().contains("byte-stable"));
        let err = PromptDecorator::from_config(r#"{"sytem":"x"}"#).err().unwrap();
        assert!(err.message().contains("sytem"));
        let err = PromptDecorator::from_config(r#"{"system":3}"#).err().unwrap();
        assert!(err.message().contains("system"));
    }

    #[test]
    fn request_without_messages_is_an_error() {
        let d = decorator(r#"{"system":"x"}"#);
        assert!(d.decorate(r#"{"prompt":"hi"}"#, "d").is_err());
    }

    #[test]
    fn today_is_a_date() {
        let t = today_utc();
        assert_eq!(t.len(), 10);
        assert!(t.starts_with("20"));
    }
}
