//! `aiplug keys generate`, `aiplug plugins sign`, `aiplug plugins verify`.

use std::path::Path;
use std::process::ExitCode;

use aiplug_host::manifest::{manifest_path, Manifest};
use aiplug_host::trust::{self, TrustPolicy};
use anyhow::{bail, Context as _};

use crate::config::Config;
use crate::Global;

/// `aiplug keys generate NAME [--dir DIR] [--trust]`.
pub fn generate(
    global: &Global,
    name: &str,
    dir: Option<&Path>,
    add_to_store: bool,
) -> anyhow::Result<ExitCode> {
    let dir = dir.map_or_else(trust::default_private_dir, Path::to_path_buf);
    let made = trust::generate(&dir, name)?;
    println!("key id {}", made.key_id);
    println!(
        "  private key: {} (mode 0600: keep it secret)",
        made.private_path.display()
    );
    println!("  public key:  {}", made.public_path.display());
    let keys_dir = keys_dir(global)?;
    if add_to_store {
        let trusted = add_to_trust_store(&made.public_path, &keys_dir)?;
        println!("  trusted:     {}", trusted.display());
    } else {
        println!(
            "hosts load what this key signs once its public key is in their trust store, e.g.: cp {} {}/",
            made.public_path.display(),
            keys_dir.display()
        );
    }
    println!(
        "sign a plugin with: aiplug plugins sign DIR --key {} --pin",
        made.private_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `aiplug keys trust PUBLIC_KEY`.
pub fn trust_key(global: &Global, public_key: &Path) -> anyhow::Result<ExitCode> {
    let key = trust::read_public_key(public_key)?;
    let trusted = add_to_trust_store(public_key, &keys_dir(global)?)?;
    println!("trusted key {} ({})", trust::key_id(&key), trusted.display());
    Ok(ExitCode::SUCCESS)
}

/// Copies the public key file `public` into the store `keys_dir` under its
/// own name; the same key already there is fine, another one is an error.
fn add_to_trust_store(public: &Path, keys_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let name = public
        .file_name()
        .with_context(|| format!("{} is not a file", public.display()))?;
    let trusted = keys_dir.join(name);
    let bytes = std::fs::read(public).with_context(|| format!("cannot read {}", public.display()))?;
    if trusted.exists() {
        if std::fs::read(&trusted).ok().as_deref() == Some(bytes.as_slice()) {
            return Ok(trusted);
        }
        bail!(
            "{} already exists in the trust store and holds another key: remove it first or rename the new one",
            trusted.display()
        );
    }
    std::fs::create_dir_all(keys_dir)
        .with_context(|| format!("cannot create the trust store {}", keys_dir.display()))?;
    std::fs::write(&trusted, bytes).with_context(|| format!("cannot write {}", trusted.display()))?;
    Ok(trusted)
}

/// `aiplug plugins sign DIR --key FILE [--pin]`.
pub fn sign(dir: &Path, key_path: &Path, pin: bool) -> anyhow::Result<ExitCode> {
    let key = trust::read_signing_key(key_path)?;
    let path = manifest_path(dir);
    let (manifest, path, mut bytes) = Manifest::read(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let entry = manifest.entry_path(&path);
    let artefact = std::fs::read(&entry).with_context(|| {
        format!(
            "cannot read the artefact {} that plugin.toml names: build the plugin first",
            entry.display()
        )
    })?;
    let actual = trust::sha256_hex(&artefact);
    let pinned_ok = manifest
        .sha256
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(&actual));
    if !pinned_ok {
        if !pin {
            match &manifest.sha256 {
                None => bail!(
                    "{} pins no sha256 of its artefact, so a signature would not cover the code: \
                     add `sha256 = \"{actual}\"`, or run again with --pin",
                    path.display()
                ),
                Some(old) => bail!(
                    "{} pins sha256 {old}, but {} is {actual}: if you rebuilt it, run again with --pin",
                    path.display(),
                    entry.display()
                ),
            }
        }
        let text = String::from_utf8(bytes).context("plugin.toml is not UTF-8")?;
        bytes = with_pin(&text, &actual).into_bytes();
        // Checked before it replaces the file: the edit must still parse.
        Manifest::parse(std::str::from_utf8(&bytes)?, &path).map_err(|e| anyhow::anyhow!("{e}"))?;
        write_atomically(&path, &bytes)?;
        println!("pinned {} sha256 {actual} in {}", entry.display(), path.display());
    }
    let signature = trust::sign_manifest(&bytes, &key);
    let sig_path = path.with_file_name(trust::SIGNATURE_FILE);
    write_atomically(&sig_path, signature.as_bytes())?;
    println!(
        "signed {} with key {}\n  signature: {}",
        path.display(),
        trust::key_id(&key.verifying_key()),
        sig_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `aiplug plugins verify DIR`: against the configured trust store, even
/// in development mode (that is what it is for).
pub fn verify(global: &Global, dir: &Path) -> anyhow::Result<ExitCode> {
    let keys_dir = keys_dir(global)?;
    match trust::verify(dir, &keys_dir) {
        Ok(detail) => {
            println!("ok: {detail}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("refused at the integrity stage: {error}\n  fix: {}", error.fix());
            Ok(ExitCode::from(1))
        }
    }
}

/// The configured trust store, whatever the policy.
fn keys_dir(global: &Global) -> anyhow::Result<std::path::PathBuf> {
    let (config, base) = Config::load(global.config.as_deref())?;
    Ok(match config.trust_policy(&base, false) {
        TrustPolicy::RequireSigned { keys_dir } => keys_dir,
        TrustPolicy::AllowUnsigned => trust::default_keys_dir(),
    })
}

/// `text` with its top-level `sha256` set to `sha`: an existing line is
/// replaced, else the pin goes right after `entry` (before any table).
fn with_pin(text: &str, sha: &str) -> String {
    let pin = format!("sha256 = \"{sha}\"");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let top_level = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let key_of = |line: &str| line.split('=').next().map(|k| k.trim().to_string());
    if let Some(i) = (0..top_level).find(|&i| key_of(&lines[i]).as_deref() == Some("sha256")) {
        lines[i] = pin;
    } else {
        let at = (0..top_level)
            .find(|&i| key_of(&lines[i]).as_deref() == Some("entry"))
            .map_or(top_level, |i| i + 1);
        lines.insert(at, pin);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Writes `path` whole or not at all (a temp file renamed over it), so a
/// watching host never reads half a manifest or signature.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_replaces_an_old_one_or_follows_entry_at_top_level() {
        let fresh = "id = \"x\"\nentry = \"libx.so\"\nkind = \"native\"\n[config]\nsha256 = \"not me\"\n";
        assert_eq!(
            with_pin(fresh, "ab"),
            "id = \"x\"\nentry = \"libx.so\"\nsha256 = \"ab\"\nkind = \"native\"\n[config]\nsha256 = \"not me\"\n"
        );
        let old = "id = \"x\"\nsha256 = \"00\"\nentry = \"libx.so\"\n";
        assert_eq!(
            with_pin(old, "ab"),
            "id = \"x\"\nsha256 = \"ab\"\nentry = \"libx.so\"\n"
        );
    }
}
