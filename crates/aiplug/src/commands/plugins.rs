//! `aiplug plugins list|inspect`.

use std::path::Path;
use std::process::ExitCode;

use aiplug_host::{HostBuilder, Manifest, PluginInfo};
use serde_json::json;

use crate::output::table;
use crate::Global;

/// `aiplug plugins list`.
pub fn list(global: &Global, as_json: bool) -> anyhow::Result<ExitCode> {
    let (host, _refused) = super::load_host(global)?; // failures are listed below
    let plugins = host.plugins();
    if as_json {
        let items: Vec<_> = plugins.iter().map(PluginInfo::to_json).collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    if plugins.is_empty() {
        let dirs = super::plugin_dirs(global)?;
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        println!("no plugins found in {}", dirs.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["ID", "VERSION", "KIND", "HOOKS", "TASKS", "PRIORITY", "STATE"]
        .map(String::from)
        .to_vec()];
    for p in &plugins {
        rows.push(vec![
            p.id.clone(),
            dash(&p.version),
            p.kind.to_string(),
            dash(&p.hooks.iter().map(|h| h.name()).collect::<Vec<_>>().join(",")),
            dash(&p.tasks.join(",")),
            p.priority.to_string(),
            p.state.to_string(),
        ]);
    }
    print!("{}", table(&rows));
    for p in plugins.iter().filter(|p| p.diagnosis.is_some()) {
        println!(
            "\n{} ({}): {}",
            p.id,
            p.manifest_path.display(),
            p.diagnosis.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `aiplug plugins inspect PATH`.
pub fn inspect(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let host = HostBuilder::new().build();
    let info = match host.load(path) {
        Ok(info) => info,
        Err(error) => {
            eprintln!(
                "{error}\n  fix: {}\n  (`aiplug doctor {}` shows every stage)",
                error.fix(),
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let (manifest, _) = Manifest::from_path(path)?;
    let mut value = info.to_json();
    value["description"] = json!(manifest.description);
    value["entry"] = json!(manifest.entry_path(&info.manifest_path));
    value["unloadable"] = json!(manifest.unloadable);
    value["limits"] = json!({
        "max_concurrency": manifest.limits.max_concurrency,
        "timeout_ms": manifest.limits.timeout_ms,
        "requests_per_second": manifest.limits.requests_per_second,
        "memory_mb": manifest.limits.memory_mb,
    });
    value["capabilities"] = json!({ "models": manifest.capabilities.models });
    value["config"] = serde_json::from_str(&manifest.config_json())?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    let field = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => dash(s),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    for key in [
        "id",
        "version",
        "kind",
        "state",
        "description",
        "manifest",
        "entry",
        "sha256",
        "hooks",
        "tasks",
        "priority",
        "unloadable",
        "limits",
        "capabilities",
        "config",
    ] {
        rows.push(vec![format!("{key}:"), field(&value[key])]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}
