//! `aiplug run` (invoke) and `aiplug filter` (request filters).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use aiplug_host::CallOptions;

use crate::Global;

fn options(session: Option<String>, timeout_ms: Option<u64>) -> CallOptions {
    let mut options = CallOptions::new();
    options.session_id = session;
    if let Some(ms) = timeout_ms {
        options = options.timeout(Duration::from_millis(ms));
    }
    options
}

/// Writes `bytes` to stdout, ending with a newline on a terminal.
fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    if std::io::stdout().is_terminal() && !bytes.ends_with(b"\n") {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

/// `aiplug run TARGET [INPUT|-]`.
pub fn run(
    global: &Global,
    target: &str,
    input: Option<&Path>,
    text: Option<String>,
    session: Option<String>,
    timeout_ms: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let input = match text {
        Some(text) => text.into_bytes(),
        None => super::read_input(input)?,
    };
    let (host, refused) = super::load_host(global)?;
    super::warn_refused(&refused);
    match host.invoke(target, &input, &options(session, timeout_ms)) {
        Ok(output) => {
            print_bytes(&output)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `aiplug filter [REQUEST|-]`.
pub fn filter(global: &Global, input: Option<&Path>, session: Option<String>) -> anyhow::Result<ExitCode> {
    let request = super::read_input(input)?;
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&request) {
        anyhow::bail!("the request is not JSON: {e}");
    }
    let (host, refused) = super::load_host(global)?;
    super::warn_refused(&refused);
    match host.filter_request(&request, &options(session, None)) {
        Ok(filtered) => {
            print_bytes(&filtered)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}
