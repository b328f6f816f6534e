//! `aiplug.toml`: the host's own configuration file.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use aiplug_host::models::table::{ModelEntry, ModelsConfig};
use aiplug_host::TrustPolicy;
use anyhow::Context as _;
use serde::Deserialize;

/// The config file looked for in the working directory when `--config` is
/// not given.
pub const DEFAULT_CONFIG: &str = "aiplug.toml";

/// The plugin directory used when neither `--plugins` nor the config names one.
pub const DEFAULT_PLUGINS_DIR: &str = "plugins";

/// `aiplug.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[plugins]`.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The model used when a request names none (see
    /// `aiplug_host::models::table` for the rule when unset).
    #[serde(default)]
    pub default_model: Option<String>,
    /// `[models.NAME]` entries added to (or replacing) the built-in ones.
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
    /// `[trust]`: whose plugins load.
    #[serde(default)]
    pub trust: TrustConfig,
    /// `[server]`: read by `aiplug serve` (its fields are checked there).
    #[serde(default)]
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub server: Option<toml::Value>,
}

/// `[plugins]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directories holding plugin directories, relative to the config file.
    /// Defaults to `["plugins"]`.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

/// `[trust]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The trust store: a directory of trusted public keys (`*.pub`),
    /// relative to the config file. Defaults to `$AIPLUG_HOME/trusted-keys`,
    /// else `~/.config/aiplug/trusted-keys`.
    #[serde(default)]
    pub keys_dir: Option<PathBuf>,
    /// Development mode: load unsigned plugins, check no signature.
    #[serde(default)]
    pub allow_unsigned: bool,
}

impl Config {
    /// Reads `explicit` (an error when missing), else `./aiplug.toml` when it
    /// exists, else the defaults. Returns the config and its directory.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok((Config::default(), PathBuf::from("."))),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Ok((config, base))
    }

    /// The models part, as the host's model table reads it.
    pub fn models_config(&self) -> ModelsConfig {
        ModelsConfig {
            default_model: self.default_model.clone(),
            models: self.models.clone(),
        }
    }

    /// The trust policy: `allow_unsigned` (from the config or the
    /// `--allow-unsigned` flag) is development mode; otherwise signatures
    /// are required, from the keys in `[trust] keys_dir` or the default
    /// store.
    pub fn trust_policy(&self, base: &Path, allow_unsigned: bool) -> TrustPolicy {
        if allow_unsigned || self.trust.allow_unsigned {
            return TrustPolicy::AllowUnsigned;
        }
        TrustPolicy::RequireSigned {
            keys_dir: self
                .trust
                .keys_dir
                .as_ref()
                .map_or_else(aiplug_host::trust::default_keys_dir, |dir| base.join(dir)),
        }
    }

    /// The plugin directories: `--plugins` flags win, then the config's
    /// (resolved against its directory), then `./plugins`.
    pub fn plugin_dirs(&self, base: &Path, flags: &[PathBuf]) -> Vec<PathBuf> {
        if !flags.is_empty() {
            return flags.to_vec();
        }
        if !self.plugins.dirs.is_empty() {
            return self.plugins.dirs.iter().map(|d| base.join(d)).collect();
        }
        vec![PathBuf::from(DEFAULT_PLUGINS_DIR)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_required_unless_development_mode_says_otherwise() {
        let base = Path::new("/etc/aiplug");
        let config: Config = toml::from_str("[trust]\nkeys_dir = \"keys\"\n").unwrap();
        assert_eq!(
            config.trust_policy(base, false),
            TrustPolicy::RequireSigned {
                keys_dir: PathBuf::from("/etc/aiplug/keys")
            }
        );
        assert_eq!(config.trust_policy(base, true), TrustPolicy::AllowUnsigned);
        let dev: Config = toml::from_str("[trust]\nallow_unsigned = true\n").unwrap();
        assert_eq!(dev.trust_policy(base, false), TrustPolicy::AllowUnsigned);
        assert!(matches!(
            Config::default().trust_policy(base, false),
            TrustPolicy::RequireSigned { keys_dir } if keys_dir.ends_with("trusted-keys")
        ));
        assert!(toml::from_str::<Config>("[trust]\nallow_unsinged = true\n").is_err());
    }

    #[test]
    fn flags_beat_config_beats_default() {
        let config: Config = toml::from_str("[plugins]\ndirs = [\"p1\", \"/abs\"]\n").unwrap();
        let base = Path::new("/etc/aiplug");
        assert_eq!(
            config.plugin_dirs(base, &[]),
            vec![PathBuf::from("/etc/aiplug/p1"), PathBuf::from("/abs")]
        );
        assert_eq!(
            config.plugin_dirs(base, &[PathBuf::from("x")]),
            vec![PathBuf::from("x")]
        );
        assert_eq!(
            Config::default().plugin_dirs(base, &[]),
            vec![PathBuf::from("plugins")]
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Config>("[plugins]\ndir = [\"p\"]\n").unwrap_err();
        assert!(err.to_string().contains("dir"), "{err}");
    }
}
