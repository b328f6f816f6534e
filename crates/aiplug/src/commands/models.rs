//! `aiplug models` and `aiplug models pull`.

use std::io::IsTerminal;
use std::process::ExitCode;

use aiplug_host::models::pull::{pull, PullEvent, PullSource};
use aiplug_host::models::weights::models_dir;
use serde_json::json;

use crate::output::table;
use crate::Global;

/// `aiplug models [--json]`.
pub fn list(global: &Global, as_json: bool) -> anyhow::Result<ExitCode> {
    let models = super::model_table(global)?;
    let infos: Vec<_> = models
        .models
        .iter()
        .map(|(name, m)| (name.clone(), m.info()))
        .collect();
    if as_json {
        let items: Vec<_> = infos
            .iter()
            .map(|(name, i)| {
                json!({
                    "name": name, "provider": i.provider, "upstream": i.upstream,
                    "context_length": i.context_length, "loaded": i.loaded, "size_bytes": i.size_bytes,
                    "sha256": i.sha256, "notes": i.notes, "default": *name == models.default,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ["NAME", "PROVIDER", "MODEL", "CONTEXT", "LOADED", "SIZE", "SHA256"]
            .map(String::from)
            .to_vec(),
    ];
    for (name, info) in &infos {
        let marker = if *name == models.default { " *" } else { "" };
        rows.push(vec![
            format!("{name}{marker}"),
            info.provider.clone(),
            info.upstream.clone(),
            info.context_length.map_or("-".into(), |c| c.to_string()),
            if info.loaded { "yes" } else { "no" }.into(),
            info.size_bytes.map_or("-".into(), human_size),
            info.sha256
                .as_deref()
                .map_or("-".into(), |s| s[..12.min(s.len())].to_string()),
        ]);
    }
    print!("{}", table(&rows));
    println!("\n* default: {} ({})", models.default, models.default_reason);
    for (name, info) in &infos {
        for note in &info.notes {
            println!("{name}: {note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `aiplug models pull NAME|PATH|URL`.
pub fn pull_model(source: &str) -> anyhow::Result<ExitCode> {
    let source = PullSource::parse(source)?;
    let dest = models_dir();
    std::fs::create_dir_all(&dest)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let pulled = pull(&source, &dest, &mut |event| match event {
        PullEvent::Step(step) => match &bar {
            Some(bar) => bar.set_message(step),
            None => eprintln!("{step}"),
        },
        PullEvent::Progress { done, total } => {
            if let Some(bar) = &bar {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
        }
        _ => {}
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let pulled = pulled?;
    let state = if pulled.unchanged {
        "already there"
    } else {
        "pulled"
    };
    println!(
        "{}: {state}: {} (sha256 {})",
        pulled.name,
        pulled.path.display(),
        pulled.sha256
    );
    for note in &pulled.notes {
        println!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
