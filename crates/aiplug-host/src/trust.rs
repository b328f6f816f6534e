//! Trust: whose code the host loads.
//!
//! A plugin is signed with an ed25519 key: `plugin.toml.sig`, next to the
//! manifest, holds a detached signature over the manifest's exact bytes,
//! and the manifest pins the artefact by `sha256`, so one signature covers
//! both. The host checks it at the integrity stage against its trust store,
//! a directory of trusted public keys (`*.pub`, PEM), read at every load so
//! a key added or removed there counts from the next load or reload on.
//!
//! Secure by default: [`TrustPolicy::default`] requires a valid signature
//! from a trusted key ([`default_keys_dir`]). [`TrustPolicy::AllowUnsigned`]
//! is development mode.
//!
//! Keys are standard PEM files (PKCS#8 private keys, SPKI public keys), so
//! `openssl pkey` reads them too. A key is named by its id: the first 16
//! hex digits of the SHA-256 of its 32 raw public-key bytes.
//!
//! Why `ed25519-dalek`: the RustCrypto/dalek implementation most of the
//! ecosystem verifies with (constant-time, no unsafe in the signing path),
//! with PKCS#8/PEM encodings through the `pkcs8` crates of the same family.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Deserialize;

use crate::error::IntegrityError;

/// The signature file, next to `plugin.toml`.
pub const SIGNATURE_FILE: &str = "plugin.toml.sig";

/// Which plugins the host loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPolicy {
    /// Only plugins whose manifest carries a valid signature by a key in
    /// the directory `keys_dir`.
    RequireSigned {
        /// The trust store: a directory of `*.pub` files.
        keys_dir: PathBuf,
    },
    /// Any plugin, signed or not (signatures are not checked): development
    /// only. Hosts say so loudly at start.
    AllowUnsigned,
}

impl Default for TrustPolicy {
    /// Signatures required, from the keys in [`default_keys_dir`].
    fn default() -> TrustPolicy {
        TrustPolicy::RequireSigned {
            keys_dir: default_keys_dir(),
        }
    }
}

/// The trust store when none is configured: `$AIPLUG_HOME/trusted-keys`,
/// else `aiplug/trusted-keys` in the user's config directory
/// (`~/.config/aiplug/trusted-keys` on Linux). Not under the cache
/// directory where models go: a cache may be wiped, a trust decision not.
pub fn default_keys_dir() -> PathBuf {
    user_dir(dirs::config_dir(), "trusted-keys")
}

/// Where `aiplug keys generate` writes key pairs: `$AIPLUG_HOME/keys`, else
/// `aiplug/keys` in the user's data directory (`~/.local/share/aiplug/keys`
/// on Linux), never a cache that may be wiped.
pub fn default_private_dir() -> PathBuf {
    user_dir(dirs::data_dir(), "keys")
}

fn user_dir(base: Option<PathBuf>, leaf: &str) -> PathBuf {
    match std::env::var_os("AIPLUG_HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(leaf),
        None => base.map_or_else(
            || crate::models::weights::aiplug_home().join(leaf),
            |b| b.join("aiplug").join(leaf),
        ),
    }
}

/// Why a key file or a key pair could not be used or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A private key that others can read is refused: anyone who can read
    /// it can sign plugins.
    #[error("the private key {} is readable by others (mode {mode:03o}): run `chmod 600 {}`", path.display(), path.display())]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a key of the expected kind.
    #[error("{} is not an ed25519 {kind} key in PEM form: {reason}", path.display())]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// "private" or "public".
        kind: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// `generate` does not overwrite a key.
    #[error("{} already exists: pick another name or remove it first (signatures made with it stop verifying)", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The key name is not a plain file name.
    #[error("key name {0:?} must be letters, digits, '-', '_' or '.', not starting with '.'")]
    BadName(String),
    /// The system's random source failed.
    #[error("cannot get random bytes for a key: {0}")]
    Random(String),
}

/// Lowercase hex SHA-256, the form in which manifests pin artefacts.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::pipeline::sha256_hex(bytes)
}

/// The id a key is known by: 16 hex digits of the SHA-256 of its raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    crate::pipeline::sha256_hex(key.as_bytes())[..16].to_string()
}

/// A key pair written by [`generate`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The private key (PKCS#8 PEM, mode 0600).
    pub private_path: PathBuf,
    /// The public key (SPKI PEM), for trust stores.
    pub public_path: PathBuf,
    /// See [`key_id`].
    pub key_id: String,
}

/// Makes a fresh key pair `dir/NAME.key` (mode 0600) and `dir/NAME.pub`;
/// never overwrites.
pub fn generate(dir: &Path, name: &str) -> Result<GeneratedKey, KeyError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(KeyError::BadName(name.to_string()));
    }
    let private_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::NotAKey {
        path: private_path.clone(),
        kind: "private",
        reason: e.to_string(),
    })?;
    write_private(&private_path, private_pem.as_bytes()).map_err(io(&private_path))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::NotAKey {
            path: public_path.clone(),
            kind: "public",
            reason: e.to_string(),
        })?;
    std::fs::write(&public_path, public_pem).map_err(io(&public_path))?;
    Ok(GeneratedKey {
        private_path,
        public_path,
        key_id: key_id(&key.verifying_key()),
    })
}

/// Creates `path` readable by its owner only, from the first byte on.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// Reads a private key, refusing one whose file others can read.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::NotAKey {
        path: path.to_path_buf(),
        kind: "private",
        reason: e.to_string(),
    })
}

/// Reads a public key (`*.pub`).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::NotAKey {
        path: path.to_path_buf(),
        kind: "public",
        reason: e.to_string(),
    })
}

/// The text of a `plugin.toml.sig` for `manifest` (its exact bytes).
pub fn sign_manifest(manifest: &[u8], key: &SigningKey) -> String {
    let signature = key.sign(manifest);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# aiplug plugin signature: ed25519 over the exact bytes of plugin.toml"
    );
    let _ = writeln!(text, "key_id = \"{}\"", key_id(&key.verifying_key()));
    let _ = writeln!(
        text,
        "signature = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    );
    text
}

/// A parsed `plugin.toml.sig`.
#[derive(Debug, Clone)]
pub struct SignatureFile {
    /// The id of the key that signed.
    pub key_id: String,
    /// The signature.
    pub signature: Signature,
}

impl SignatureFile {
    /// Parses the file's text; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<SignatureFile, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            key_id: String,
            signature: String,
        }
        let raw: Raw = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.signature.trim())
            .map_err(|e| format!("signature is not base64: {e}"))?;
        let bytes: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "signature is {} bytes; an ed25519 signature is 64 (truncated?)",
                bytes.len()
            )
        })?;
        Ok(SignatureFile {
            key_id: raw.key_id,
            signature: Signature::from_bytes(&bytes),
        })
    }
}

/// A key of the trust store.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// See [`key_id`].
    pub id: String,
    /// Its file in the store.
    pub path: PathBuf,
    /// The key.
    pub key: VerifyingKey,
}

/// Reads every `*.pub` of the trust store. A missing or unreadable
/// directory, or a file in it that is not a public key, is an error: a
/// store that silently trusts nothing (or less than meant) hides mistakes.
pub fn read_trust_store(dir: &Path) -> Result<Vec<TrustedKey>, IntegrityError> {
    let store_error = |reason: String| IntegrityError::TrustStore {
        dir: dir.to_path_buf(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        store_error(if e.kind() == std::io::ErrorKind::NotFound {
            "it does not exist".to_string()
        } else {
            format!("it cannot be read: {e}")
        })
    })?;
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| store_error(format!("it cannot be read: {e}")))?
            .path();
        if path.extension().is_none_or(|e| e != "pub") {
            continue;
        }
        let key = read_public_key(&path).map_err(|e| store_error(e.to_string()))?;
        keys.push(TrustedKey {
            id: key_id(&key),
            path,
            key,
        });
    }
    keys.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(keys)
}

/// The integrity stage's signature check of the manifest at
/// `manifest_path`, whose bytes are `manifest` (the very bytes that were
/// parsed: no window for the file to change in between). `pinned` says
/// whether the manifest pins the artefact's sha256. Returns a one-line
/// description of what was verified.
pub(crate) fn check(
    policy: &TrustPolicy,
    manifest_path: &Path,
    manifest: &[u8],
    pinned: bool,
) -> Result<String, IntegrityError> {
    let TrustPolicy::RequireSigned { keys_dir } = policy else {
        return Ok("signature not checked (unsigned plugins allowed: development mode)".into());
    };
    let sig_path = manifest_path.with_file_name(SIGNATURE_FILE);
    let text = match std::fs::read(&sig_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IntegrityError::Unsigned { signature: sig_path })
        }
        Err(e) => {
            return Err(IntegrityError::SignatureUnreadable {
                signature: sig_path,
                reason: e.to_string(),
            })
        }
    };
    let parsed = std::str::from_utf8(&text)
        .map_err(|_| "it is not text".to_string())
        .and_then(SignatureFile::parse)
        .map_err(|reason| IntegrityError::SignatureUnreadable {
            signature: sig_path.clone(),
            reason,
        })?;
    let keys = read_trust_store(keys_dir)?;
    let Some(trusted) = keys.iter().find(|k| k.id == parsed.key_id) else {
        return Err(IntegrityError::UntrustedKey {
            key_id: parsed.key_id,
            keys_dir: keys_dir.clone(),
        });
    };
    if trusted.key.verify(manifest, &parsed.signature).is_err() {
        return Err(IntegrityError::BadSignature {
            manifest: manifest_path.to_path_buf(),
            key_id: parsed.key_id,
        });
    }
    if !pinned {
        return Err(IntegrityError::NotPinned {
            manifest: manifest_path.to_path_buf(),
        });
    }
    Ok(format!(
        "signed by key {} (trusted: {})",
        trusted.id,
        trusted.path.display()
    ))
}

/// What the integrity stage verified: the artefact's bytes (what the
/// later stages check and load), and a one-line account.
pub(crate) struct Verified {
    /// The artefact's path.
    pub(crate) entry: PathBuf,
    /// Its bytes, read once.
    pub(crate) bytes: Vec<u8>,
    /// Their SHA-256.
    pub(crate) sha256: String,
    /// What was checked, for the doctor's table.
    pub(crate) detail: String,
}

/// The integrity stage: the signature vouches for the manifest (`bytes`,
/// exactly as parsed into `manifest`), whose pin then vouches for the
/// artefact, which is read here once.
pub(crate) fn integrity(
    policy: &TrustPolicy,
    manifest: &crate::manifest::Manifest,
    manifest_path: &Path,
    bytes: &[u8],
) -> Result<Verified, IntegrityError> {
    let signed = check(policy, manifest_path, bytes, manifest.sha256.is_some())?;
    let entry = manifest.entry_path(manifest_path);
    let artefact = std::fs::read(&entry).map_err(|source| IntegrityError::Read {
        path: entry.clone(),
        source,
    })?;
    let sha256 = sha256_hex(&artefact);
    let pin = match &manifest.sha256 {
        Some(pinned) if !pinned.eq_ignore_ascii_case(&sha256) => {
            return Err(IntegrityError::Sha256Mismatch {
                path: entry,
                expected: pinned.to_lowercase(),
                actual: sha256,
            })
        }
        Some(_) => "matches the pin",
        None => "(not pinned)",
    };
    Ok(Verified {
        detail: format!("sha256 {sha256} {pin}; {signed}"),
        entry,
        bytes: artefact,
        sha256,
    })
}

/// The integrity stage alone, for `aiplug plugins verify`: the plugin at
/// `path` (a directory or its `plugin.toml`) has a valid signature by a
/// key in `keys_dir`, and its artefact matches the signed pin. Returns
/// what was verified, or the error with its fix
/// ([`LoadErrorKind::fix`](crate::LoadErrorKind::fix)).
pub fn verify(path: &Path, keys_dir: &Path) -> Result<String, crate::LoadErrorKind> {
    let (manifest, manifest_path, bytes) = crate::manifest::Manifest::read(path)?;
    let policy = TrustPolicy::RequireSigned {
        keys_dir: keys_dir.to_path_buf(),
    };
    let verified = integrity(&policy, &manifest, &manifest_path, &bytes)?;
    Ok(format!("{} ({})", verified.detail, verified.entry.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn a_signature_file_round_trips_and_bad_ones_say_why() {
        let text = sign_manifest(b"id = \"x\"\n", &key());
        let parsed = SignatureFile::parse(&text).unwrap();
        assert_eq!(parsed.key_id, key_id(&key().verifying_key()));
        assert!(key()
            .verifying_key()
            .verify(b"id = \"x\"\n", &parsed.signature)
            .is_ok());

        let truncated = &text[..text.len() - 20];
        assert!(SignatureFile::parse(truncated).is_err());
        let short = "key_id = \"ab\"\nsignature = \"AAAA\"\n";
        assert!(SignatureFile::parse(short).unwrap_err().contains("64"));
        assert!(SignatureFile::parse("garbage \u{1}").is_err());
    }

    #[test]
    fn key_ids_are_16_hex_digits_of_the_public_key() {
        let id = key_id(&key().verifying_key());
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, key_id(&SigningKey::from_bytes(&[8u8; 32]).verifying_key()));
    }

    #[test]
    fn generated_keys_read_back_and_the_private_one_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let made = generate(dir.path(), "alice").unwrap();
        let private = read_signing_key(&made.private_path).unwrap();
        let public = read_public_key(&made.public_path).unwrap();
        assert_eq!(private.verifying_key(), public);
        assert_eq!(key_id(&public), made.key_id);
        assert!(matches!(
            generate(dir.path(), "alice"),
            Err(KeyError::Exists { .. })
        ));
        assert!(matches!(
            generate(dir.path(), "../evil"),
            Err(KeyError::BadName(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&made.private_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&made.private_path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                read_signing_key(&made.private_path),
                Err(KeyError::Permissions { mode: 0o644, .. })
            ));
        }
    }
}
