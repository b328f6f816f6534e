//! `aiplug doctor PATH`: every load stage, as a table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aiplug_host::{plugin_dirs, Manifest, StageOutcome};
use serde_json::json;

use crate::output::table;
use crate::Global;

/// Runs the doctor on `path` and prints the report.
pub fn run(global: &Global, path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let host = super::host_builder(global)?.build();
    let report = host.doctor(path, &other_ids(global, path));
    let code = if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };

    if as_json {
        let rows: Vec<_> = report
            .rows
            .iter()
            .map(|row| match &row.outcome {
                StageOutcome::Passed(detail) => {
                    json!({"stage": row.stage.name(), "result": "ok", "detail": detail})
                }
                StageOutcome::Failed { cause, fix } => {
                    json!({"stage": row.stage.name(), "result": "failed", "cause": cause, "fix": fix})
                }
                StageOutcome::Skipped => json!({"stage": row.stage.name(), "result": "skipped"}),
            })
            .collect();
        let value = json!({"manifest": report.manifest_path, "ok": report.ok(), "stages": rows, "sha256": report.sha256});
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(code);
    }

    println!("aiplug doctor: {}", report.manifest_path.display());
    let mut rows = vec![vec![
        "STAGE".to_string(),
        "RESULT".to_string(),
        "DETAIL".to_string(),
    ]];
    for row in &report.rows {
        let stage = row.stage.name().to_string();
        match &row.outcome {
            StageOutcome::Passed(detail) => rows.push(vec![stage, "ok".into(), detail.clone()]),
            StageOutcome::Failed { cause, fix } => {
                rows.push(vec![stage, "FAILED".into(), cause.replace('\n', " ")]);
                rows.push(vec![String::new(), String::new(), format!("fix: {fix}")]);
            }
            StageOutcome::Skipped => {
                rows.push(vec![stage, "skipped".into(), "(an earlier stage failed)".into()])
            }
        }
    }
    print!("{}", table(&rows));
    // The pin hint, unless the manifest already pins exactly this artefact.
    let pinned = Manifest::from_path(&report.manifest_path)
        .ok()
        .and_then(|(manifest, _)| manifest.sha256);
    if let Some(sha) = &report.sha256 {
        if !pinned.is_some_and(|p| p.eq_ignore_ascii_case(sha)) {
            println!(
                "\nsha256 to pin in plugin.toml: sha256 = \"{sha}\" (or `aiplug plugins sign {} --key KEY --pin`, which pins and signs)",
                report.manifest_path.parent().unwrap_or(Path::new(".")).display()
            );
        }
    }
    println!(
        "{}",
        if report.ok() {
            "\nall stages passed"
        } else {
            "\nthe plugin cannot be loaded"
        }
    );
    Ok(code)
}

/// Ids claimed by the other plugins in the configured directories (manifest
/// only; nothing is loaded), so the doctor can report a duplicate id.
fn other_ids(global: &Global, target: &Path) -> HashMap<String, PathBuf> {
    let target = aiplug_host::manifest::manifest_path(target);
    let target = target.canonicalize().unwrap_or(target);
    let dirs = super::plugin_dirs(global).unwrap_or_default();
    let mut ids = HashMap::new();
    for dir in dirs.iter().flat_map(|d| plugin_dirs(d)) {
        let Ok((manifest, path)) = Manifest::from_path(&dir) else {
            continue;
        };
        if path.canonicalize().unwrap_or_else(|_| path.clone()) != target {
            ids.insert(manifest.id, path);
        }
    }
    ids
}
