//! The plugin's `[config]` table (`plugin.toml`), as the host hands it to
//! `on_load` (JSON). Unknown keys are refused with their name.

use serde::Deserialize;

/// The review rules used when the config lists none: kinds of real bugs,
/// not style. Each becomes one bullet of the system prompt.
pub const DEFAULT_RULES: &[&str] = &[
    "unchecked errors: an error return ignored, discarded with _, or not checked before the result is used",
    "nil/null dereference: a pointer, interface, option or result used when it can be nil/null/None, \
     and writes to a nil map",
    "loop variables or variables shared across iterations captured by goroutines, threads or closures \
     that run after the variable changed",
    "division or modulo by zero reachable from input, e.g. the average of an empty list",
    "resource leaks: files, connections, locks or handles not released on every path, \
     and defer/close inside a loop that holds resources until the function returns",
    "data races: shared state written concurrently without synchronisation",
    "off-by-one errors in loop bounds, slicing and indexing; out-of-bounds access",
    "SQL, shell command or path injection from untrusted input",
    "hard-coded secrets: passwords, API keys, tokens or private keys in source",
];

/// `[config]` of the code-review plugin. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Model to ask. Defaults to `""`: the host's default model. An input's
    /// `model` overrides it.
    pub model: String,
    /// Sampling temperature, 0 to 2. Defaults to 0 (greedy: the same file
    /// gets the same review).
    pub temperature: f64,
    /// Most findings kept per chunk (the prompt asks for no more). Defaults
    /// to 20; 1 to 200.
    pub max_findings: usize,
    /// Review rules put in the prompt, one bullet each. Defaults to
    /// [`DEFAULT_RULES`]; an explicit list must not be empty.
    pub rules: Vec<String>,
    /// Most tokens the model may answer with, per chunk. Defaults to 1024;
    /// 64 to 32768. Counted against the context when sizing chunks.
    pub max_tokens: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            model: String::new(),
            temperature: 0.0,
            max_findings: 20,
            rules: DEFAULT_RULES.iter().map(|r| r.to_string()).collect(),
            max_tokens: 1024,
        }
    }
}

impl Config {
    /// Parses and checks the `[config]` JSON (`{}` gives the defaults).
    /// The error names the offending key and its allowed values.
    pub fn from_json(config_json: &str) -> Result<Config, String> {
        let text = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        let config: Config =
            serde_json::from_str(text).map_err(|e| format!("invalid [config] for code-review: {e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(format!(
                "[config] temperature = {} is out of range: use 0 to 2 (0 is greedy)",
                self.temperature
            ));
        }
        if !(1..=200).contains(&self.max_findings) {
            return Err(format!(
                "[config] max_findings = {} is out of range: use 1 to 200",
                self.max_findings
            ));
        }
        if !(64..=32_768).contains(&self.max_tokens) {
            return Err(format!(
                "[config] max_tokens = {} is out of range: use 64 to 32768",
                self.max_tokens
            ));
        }
        if self.rules.is_empty() {
            return Err(
                "[config] rules is empty: list at least one rule, or remove the key to use the defaults"
                    .to_string(),
            );
        }
        if let Some(i) = self.rules.iter().position(|r| r.trim().is_empty()) {
            return Err(format!("[config] rules[{i}] is empty: every rule needs text"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_the_defaults() {
        let config = Config::from_json("{}").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.model, "");
        assert_eq!(config.temperature, 0.0);
        assert_eq!(config.max_findings, 20);
        assert_eq!(config.rules.len(), DEFAULT_RULES.len());
        assert_eq!(Config::from_json("").unwrap(), Config::default());
    }

    #[test]
    fn keys_override_defaults() {
        let config = Config::from_json(
            r#"{"model":"deepseek-v4-flash","temperature":0.2,"max_findings":5,"rules":["only this"]}"#,
        )
        .unwrap();
        assert_eq!(config.model, "deepseek-v4-flash");
        assert_eq!(config.temperature, 0.2);
        assert_eq!(config.max_findings, 5);
        assert_eq!(config.rules, ["only this"]);
    }

    #[test]
    fn bad_config_names_the_key() {
        for (json, key) in [
            (r#"{"modle":"x"}"#, "modle"),
            (r#"{"temperature":3}"#, "temperature"),
            (r#"{"max_findings":0}"#, "max_findings"),
            (r#"{"rules":[]}"#, "rules"),
            (r#"{"rules":["a",""]}"#, "rules[1]"),
            (r#"{"max_tokens":1}"#, "max_tokens"),
            (r#"{"rules":"one"}"#, "sequence"),
        ] {
            let err = Config::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    /// The `[config]` shipped in plugin.toml spells out the defaults; they
    /// must not drift apart.
    #[test]
    fn the_shipped_manifest_documents_the_defaults() {
        let manifest = include_str!("../plugin.toml");
        let config = &manifest[manifest.find("\n[config]\n").expect("a [config] table")..];
        let value = |key: &str| {
            config
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("plugin.toml [config] lacks {key}"))
        };
        let defaults = Config::default();
        assert_eq!(value("model"), "\"\"");
        assert_eq!(value("temperature").parse::<f64>().unwrap(), defaults.temperature);
        assert_eq!(
            value("max_findings").parse::<usize>().unwrap(),
            defaults.max_findings
        );
        assert_eq!(value("max_tokens").parse::<u32>().unwrap(), defaults.max_tokens);
        let rules: Vec<String> = config
            .lines()
            .skip_while(|l| !l.starts_with("rules = ["))
            .skip(1)
            .take_while(|l| *l != "]")
            .map(|l| serde_json::from_str(l.trim().trim_end_matches(',')).unwrap())
            .collect();
        assert_eq!(rules, defaults.rules);
        assert!(manifest.contains("\nid = \"code-review\"\n"));
        assert!(manifest.contains("\ntasks = [\"code-review\"]\n"));
        assert!(manifest.contains("\nentry = \"libcode_review.so\"\n"));
    }
}
