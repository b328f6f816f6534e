//! `aiplug plugins list|inspect|reload`.

use std::path::Path;
use std::process::ExitCode;

use aiplug_host::{Manifest, PluginInfo};
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
pub fn inspect(global: &Global, path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let host = super::host_builder(global)?.build();
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

/// Environment variable with the admin key `aiplug plugins reload` sends.
const ADMIN_KEY_ENV: &str = "AIPLUG_ADMIN_KEY";

/// `aiplug plugins reload [ID]`: asks a running server.
pub fn reload(global: &Global, id: Option<&str>, server: Option<&str>) -> anyhow::Result<ExitCode> {
    let base = match server {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let (config, _) = crate::config::Config::load(global.config.as_deref())?;
            let listen = config
                .server
                .as_ref()
                .and_then(|s| s.get("listen"))
                .and_then(|l| l.as_str())
                .unwrap_or("127.0.0.1:8080")
                .to_string();
            format!("http://{listen}")
        }
    };
    let url = match id {
        Some(id) => format!("{base}/admin/plugins/{id}/reload"),
        None => format!("{base}/admin/plugins/reload"),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let mut request = agent.post(&url);
    if let Ok(key) = std::env::var(ADMIN_KEY_ENV) {
        request = request.header("authorization", &format!("Bearer {key}"));
    }
    let mut response = request.send_empty().map_err(|e| {
        anyhow::anyhow!("cannot reach the server at {base}: {e} (is `aiplug serve` running? --server URL)")
    })?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| json!({"error": {"message": format!("unreadable answer ({e}): {text}")}}));
    if status != 200 {
        let message = body
            .pointer("/error/message")
            .and_then(|m| m.as_str())
            .unwrap_or("no message");
        eprintln!("reload failed (HTTP {status}): {message}");
        return Ok(ExitCode::from(1));
    }
    if let Some(plugin) = body.get("plugin") {
        println!(
            "{} {} {}",
            plugin["id"].as_str().unwrap_or("?"),
            plugin["version"].as_str().unwrap_or("?"),
            plugin["state"].as_str().unwrap_or("?")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let changes = body["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        println!("every plugin is up to date");
    }
    let mut refused = false;
    for change in &changes {
        let kind = change["change"].as_str().unwrap_or("?");
        let what = change
            .pointer("/plugin/id")
            .or_else(|| change.get("id"))
            .or_else(|| change.get("manifest"))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default();
        match change.get("error").and_then(|e| e.as_str()) {
            Some(error) => {
                refused |= kind.ends_with("refused");
                println!("{kind} {what}: {error}");
                if let Some(fix) = change.get("fix").and_then(|f| f.as_str()) {
                    println!("  fix: {fix}");
                }
            }
            None => println!("{kind} {what}"),
        }
    }
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}
