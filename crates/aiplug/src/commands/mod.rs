//! One module per command; shared plumbing here.

pub mod doctor;
pub mod infer;
pub mod models;
pub mod plugins;
pub mod review;
pub mod run;
#[cfg(feature = "server")]
pub mod serve;
pub mod trust;

use std::io::Read;
use std::path::{Path, PathBuf};

use aiplug_host::models::table::ModelTable;
use aiplug_host::{Host, HostBuilder, LoadError};
use anyhow::Context as _;

use crate::config::Config;
use crate::Global;

/// The plugin directories the options and config name.
pub fn plugin_dirs(global: &Global) -> anyhow::Result<Vec<PathBuf>> {
    let (config, base) = Config::load(global.config.as_deref())?;
    Ok(config.plugin_dirs(&base, &global.plugins))
}

/// The trust policy of the config and `--allow-unsigned`.
pub fn trust_policy(global: &Global) -> anyhow::Result<aiplug_host::TrustPolicy> {
    let (config, base) = Config::load(global.config.as_deref())?;
    Ok(config.trust_policy(&base, global.allow_unsigned))
}

/// A host builder with the configured trust policy: what every command
/// that loads plugins starts from.
pub fn host_builder(global: &Global) -> anyhow::Result<HostBuilder> {
    Ok(HostBuilder::new().trust(trust_policy(global)?))
}

/// The model table from the built-in entries and the config file.
pub fn model_table(global: &Global) -> anyhow::Result<ModelTable> {
    let (config, _) = Config::load(global.config.as_deref())?;
    Ok(ModelTable::build(&config.models_config(), &|name| {
        std::env::var(name).ok()
    })?)
}

/// A host with the configured models and every plugin of the configured
/// directories loaded. Refused plugins are returned for the caller to
/// report; the host keeps the rest.
pub fn load_host(global: &Global) -> anyhow::Result<(Host, Vec<LoadError>)> {
    load_host_observed(global, None)
}

/// [`load_host`] with an observer of every hook and model call (metrics).
pub fn load_host_observed(
    global: &Global,
    observer: Option<std::sync::Arc<dyn aiplug_host::Observer>>,
) -> anyhow::Result<(Host, Vec<LoadError>)> {
    let dirs = plugin_dirs(global)?;
    let table = model_table(global)?;
    let mut builder = host_builder(global)?;
    if let Some(observer) = observer {
        builder = builder.observer(observer);
    }
    for (name, model) in table.models {
        builder = builder.model(name, model);
    }
    let host = builder.default_model(table.default).build();
    let mut refused = Vec::new();
    for dir in &dirs {
        if !dir.is_dir() {
            if global.plugins.contains(dir) {
                anyhow::bail!("plugin directory {} does not exist", dir.display());
            }
            tracing::info!(dir = %dir.display(), "plugin directory does not exist; skipped");
            continue;
        }
        refused.extend(host.load_dir(dir).into_iter().filter_map(Result::err));
    }
    Ok((host, refused))
}

/// Prints one warning per refused plugin to stderr.
pub fn warn_refused(refused: &[LoadError]) {
    for error in refused {
        eprintln!("warning: {error}\n  fix: {}", error.fix());
    }
}

/// Reads `path`, or standard input for `-` or none.
pub fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            Ok(bytes)
        }
    }
}
