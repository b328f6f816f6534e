//! Where model files live, and who they are: a model file is identified by
//! its SHA-256, computed once (streamed, with progress) and cached by path,
//! size, mtime and inode, so a 4 GB GGUF is hashed once, not at every start.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// aiplug's data directory: `$AIPLUG_HOME`, else `aiplug` under the user's
/// cache directory (`~/.cache/aiplug` on Linux), else `./.aiplug`.
pub fn aiplug_home() -> PathBuf {
    if let Some(home) = std::env::var_os("AIPLUG_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    dirs::cache_dir()
        .map(|d| d.join("aiplug"))
        .unwrap_or_else(|| PathBuf::from(".aiplug"))
}

/// Where pulled models go: `aiplug_home()/models`.
pub fn models_dir() -> PathBuf {
    aiplug_home().join("models")
}

/// Progress of a long read: `(bytes done, bytes total)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Stamp {
            size: meta.len(),
            mtime_ns,
            inode,
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    /// Canonical path → (stamp, sha256).
    entries: HashMap<PathBuf, (Stamp, String)>,
}

/// The SHA-256 cache. One per process is enough ([`HashCache::global`]); it
/// persists to `aiplug_home()/sha256-cache.json`.
pub struct HashCache {
    file: PathBuf,
    entries: Mutex<CacheFile>,
}

impl HashCache {
    /// A cache persisted at `file` (loaded now if it exists; a corrupt cache
    /// file is ignored and rewritten).
    pub fn at(file: PathBuf) -> HashCache {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        HashCache {
            file,
            entries: Mutex::new(entries),
        }
    }

    /// The process-wide cache under [`aiplug_home`].
    pub fn global() -> &'static HashCache {
        static GLOBAL: std::sync::OnceLock<HashCache> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| HashCache::at(aiplug_home().join("sha256-cache.json")))
    }

    /// The lowercase hex SHA-256 of `path`, from the cache when the file's
    /// size, mtime and inode are unchanged, else streamed from disk (calling
    /// `progress` as it goes) and cached.
    pub fn sha256(&self, path: &Path, progress: Option<Progress<'_>>) -> std::io::Result<String> {
        let canonical = path.canonicalize()?;
        let stamp = Stamp::of(&canonical)?;
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((cached, sha)) = entries.entries.get(&canonical) {
                if *cached == stamp {
                    return Ok(sha.clone());
                }
            }
        }
        let sha = sha256_file(&canonical, progress)?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.entries.insert(canonical, (stamp, sha.clone()));
        // Best effort: a read-only home only costs a re-hash next time.
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(bytes) = serde_json::to_vec(&*entries) {
            let tmp = self.file.with_extension("json.tmp");
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &self.file);
            }
        }
        Ok(sha)
    }
}

/// Streams `path` through SHA-256 (1 MiB reads), reporting progress.
pub fn sha256_file(path: &Path, mut progress: Option<Progress<'_>>) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let total = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        if let Some(report) = progress.as_mut() {
            report(done, total);
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_once_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HashCache::at(dir.path().join("cache.json"));
        let file = dir.path().join("weights.gguf");
        std::fs::write(&file, b"abc").unwrap();
        let mut calls = 0;
        let sha = cache.sha256(&file, Some(&mut |_, _| calls += 1)).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(calls, 1);
        let mut again = 0;
        assert_eq!(cache.sha256(&file, Some(&mut |_, _| again += 1)).unwrap(), sha);
        assert_eq!(again, 0, "served from the cache");

        // A new cache reads the persisted entries.
        let reopened = HashCache::at(dir.path().join("cache.json"));
        let mut third = 0;
        assert_eq!(reopened.sha256(&file, Some(&mut |_, _| third += 1)).unwrap(), sha);
        assert_eq!(third, 0);

        std::fs::write(&file, b"abcd").unwrap();
        assert_ne!(cache.sha256(&file, None).unwrap(), sha, "size changed: re-hashed");
    }
}
