//! A cheap look at a GGUF file before llama.cpp gets it: the magic, the
//! version, the metadata the provider shows before loading (architecture,
//! training context, chat template), and the size the tensor table implies,
//! so a truncated download is caught with a clear message instead of a
//! failed (or worse, partial) load.
//!
//! Only the header and the tensor table are read (a few MB for a model whose
//! tokenizer is in the metadata), never the weights.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The file magic, `GGUF` in ASCII.
const MAGIC: [u8; 4] = *b"GGUF";
/// Data alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// What a GGUF header says about a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufSummary {
    /// Format version (2 or 3).
    pub version: u32,
    /// Number of tensors.
    pub tensor_count: u64,
    /// `general.architecture` (`llama`, `gemma3`, ...).
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `{architecture}.context_length`: the context the model was trained with.
    pub context_length: Option<u64>,
    /// Whether `tokenizer.chat_template` is present.
    pub has_chat_template: bool,
    /// The file size the header and tensor table imply (data start plus the
    /// end of the last tensor); tensors of a type this reader does not know
    /// count by their offset only.
    pub required_size: u64,
    /// The actual file size.
    pub file_size: u64,
}

/// Why a file is not a usable GGUF. The messages are written for people:
/// they say what is wrong; the caller adds the path and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(String),
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file (it starts with {found:?}, a GGUF file starts with \"GGUF\")")]
    NotGguf {
        /// The first bytes, lossily decoded.
        found: String,
    },
    /// A version llama.cpp does not read.
    #[error("GGUF version {0} is not supported (versions 2 and 3 are)")]
    Version(u32),
    /// The file ends before its header, tensor table or tensor data do.
    #[error(
        "truncated: the file is {actual} bytes but its GGUF header and tensor table need {needed} bytes"
    )]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The header holds something impossible (an unknown value type, an
    /// absurd length).
    #[error("corrupt GGUF header: {0}")]
    Corrupt(String),
}

/// Reads the header and tensor table of `path`.
pub fn inspect(path: &Path) -> Result<GgufSummary, GgufError> {
    let file = File::open(path).map_err(|e| GgufError::Io(e.to_string()))?;
    let file_size = file.metadata().map_err(|e| GgufError::Io(e.to_string()))?.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        file_size,
    };

    let mut magic = [0u8; 4];
    r.fill(&mut magic)?;
    if magic != MAGIC {
        return Err(GgufError::NotGguf {
            found: String::from_utf8_lossy(&magic).into_owned(),
        });
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;

    let mut summary = GgufSummary {
        version,
        tensor_count,
        architecture: None,
        name: None,
        context_length: None,
        has_chat_template: false,
        required_size: 0,
        file_size,
    };
    let mut alignment = DEFAULT_ALIGNMENT;
    // Context lengths by key, resolved once the architecture is known (the
    // architecture key usually comes first, but nothing requires it).
    let mut context_lengths: Vec<(String, u64)> = Vec::new();

    for _ in 0..kv_count {
        let key = r.string()?;
        let kind = r.u32()?;
        match (key.as_str(), kind) {
            ("general.architecture", STRING) => summary.architecture = Some(r.string()?),
            ("general.name", STRING) => summary.name = Some(r.string()?),
            ("general.alignment", UINT32) => alignment = u64::from(r.u32()?),
            ("tokenizer.chat_template", STRING) => {
                summary.has_chat_template = true;
                r.skip_value(kind)?;
            }
            (k, _) if k.ends_with(".context_length") => {
                if let Some(n) = r.integer(kind)? {
                    context_lengths.push((k.to_string(), n));
                }
            }
            _ => r.skip_value(kind)?,
        }
    }
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(GgufError::Corrupt(format!("general.alignment is {alignment}")));
    }
    if let Some(arch) = &summary.architecture {
        let wanted = format!("{arch}.context_length");
        summary.context_length = context_lengths
            .iter()
            .find(|(k, _)| *k == wanted)
            .map(|(_, n)| *n);
    }

    let mut data_end = 0u64;
    for _ in 0..tensor_count {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > 8 {
            return Err(GgufError::Corrupt(format!(
                "tensor {name:?} has {n_dims} dimensions"
            )));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            elements = elements.saturating_mul(r.u64()?);
        }
        let ty = r.u32()?;
        let offset = r.u64()?;
        let bytes = tensor_bytes(ty, elements).unwrap_or(0);
        data_end = data_end.max(offset.saturating_add(bytes));
    }
    let data_start = r.pos.div_ceil(alignment).saturating_mul(alignment);
    summary.required_size = data_start.saturating_add(data_end);
    if summary.required_size > file_size {
        return Err(GgufError::Truncated {
            needed: summary.required_size,
            actual: file_size,
        });
    }
    Ok(summary)
}

// GGUF metadata value types.
const UINT8: u32 = 0;
const INT8: u32 = 1;
const UINT16: u32 = 2;
const INT16: u32 = 3;
const UINT32: u32 = 4;
const INT32: u32 = 5;
const FLOAT32: u32 = 6;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const UINT64: u32 = 10;
const INT64: u32 = 11;
const FLOAT64: u32 = 12;

/// Bytes of a tensor of `elements` elements of ggml type `ty` (None: a type
/// this reader does not know). Block sizes from ggml's `ggml-common.h`.
fn tensor_bytes(ty: u32, elements: u64) -> Option<u64> {
    let (block_bytes, block_elements): (u64, u64) = match ty {
        0 => (4, 1),     // F32
        1 => (2, 1),     // F16
        2 => (18, 32),   // Q4_0
        3 => (20, 32),   // Q4_1
        6 => (22, 32),   // Q5_0
        7 => (24, 32),   // Q5_1
        8 => (34, 32),   // Q8_0
        9 => (36, 32),   // Q8_1
        10 => (84, 256), // Q2_K
        11 => (110, 256),
        12 => (144, 256),
        13 => (176, 256),
        14 => (210, 256),
        15 => (292, 256), // Q8_K
        16 => (66, 256),  // IQ2_XXS
        17 => (74, 256),  // IQ2_XS
        18 => (98, 256),  // IQ3_XXS
        19 => (50, 256),  // IQ1_S
        20 => (18, 32),   // IQ4_NL
        21 => (110, 256), // IQ3_S
        22 => (82, 256),  // IQ2_S
        23 => (136, 256), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (2, 1),     // I16
        26 => (4, 1),     // I32
        27 => (8, 1),     // I64
        28 => (8, 1),     // F64
        29 => (56, 256),  // IQ1_M
        30 => (2, 1),     // BF16
        34 => (54, 256),  // TQ1_0
        35 => (66, 256),  // TQ2_0
        39 => (17, 32),   // MXFP4
        _ => return None,
    };
    Some(elements.div_ceil(block_elements).saturating_mul(block_bytes))
}

/// A little-endian reader that knows its position and turns a short read
/// into [`GgufError::Truncated`].
struct Reader {
    inner: BufReader<File>,
    pos: u64,
    file_size: u64,
}

impl Reader {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GgufError> {
        let needed = self.pos + buf.len() as u64;
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => GgufError::Truncated {
                needed,
                actual: self.file_size,
            },
            _ => GgufError::Io(e.to_string()),
        })?;
        self.pos = needed;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        let needed = self.pos.saturating_add(n);
        if needed > self.file_size {
            return Err(GgufError::Truncated {
                needed,
                actual: self.file_size,
            });
        }
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| GgufError::Io(e.to_string()))?;
        if copied != n {
            return Err(GgufError::Truncated {
                needed,
                actual: self.file_size,
            });
        }
        self.pos = needed;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if self.pos.saturating_add(len) > self.file_size {
            return Err(GgufError::Truncated {
                needed: self.pos.saturating_add(len),
                actual: self.file_size,
            });
        }
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// An integer value of any integer type (None: not an integer; skipped).
    fn integer(&mut self, kind: u32) -> Result<Option<u64>, GgufError> {
        Ok(match kind {
            UINT32 | INT32 => Some(u64::from(self.u32()?)),
            UINT64 | INT64 => Some(self.u64()?),
            _ => {
                self.skip_value(kind)?;
                None
            }
        })
    }

    fn skip_value(&mut self, kind: u32) -> Result<(), GgufError> {
        match kind {
            STRING => {
                let len = self.u64()?;
                self.skip(len)
            }
            ARRAY => {
                let elem = self.u32()?;
                let count = self.u64()?;
                if let Some(size) = scalar_size(elem) {
                    return self.skip(count.saturating_mul(size));
                }
                if count > self.file_size {
                    return Err(GgufError::Corrupt(format!("an array claims {count} elements")));
                }
                for _ in 0..count {
                    self.skip_value(elem)?;
                }
                Ok(())
            }
            other => match scalar_size(other) {
                Some(size) => self.skip(size),
                None => Err(GgufError::Corrupt(format!("unknown metadata value type {other}"))),
            },
        }
    }
}

fn scalar_size(kind: u32) -> Option<u64> {
    match kind {
        UINT8 | INT8 | BOOL => Some(1),
        UINT16 | INT16 => Some(2),
        UINT32 | INT32 | FLOAT32 => Some(4),
        UINT64 | INT64 | FLOAT64 => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal GGUF v3: `kvs` metadata strings and one F32 tensor of
    /// `elements` elements whose data is `data_len` bytes long.
    fn gguf(kvs: &[(&str, &str)], elements: u64, data_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&(kvs.len() as u64 + 1).to_le_bytes());
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for (k, v) in kvs {
            string(&mut out, k);
            out.extend_from_slice(&STRING.to_le_bytes());
            string(&mut out, v);
        }
        string(&mut out, "llama.context_length");
        out.extend_from_slice(&UINT32.to_le_bytes());
        out.extend_from_slice(&8192u32.to_le_bytes());
        string(&mut out, "w");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&elements.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&0u64.to_le_bytes());
        while out.len() % 32 != 0 {
            out.push(0);
        }
        out.extend(std::iter::repeat_n(0u8, data_len));
        out
    }

    fn write(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_metadata_and_checks_the_size() {
        let bytes = gguf(
            &[
                ("general.architecture", "llama"),
                ("tokenizer.chat_template", "x"),
            ],
            4,
            16,
        );
        let (_dir, path) = write(&bytes);
        let summary = inspect(&path).unwrap();
        assert_eq!(summary.architecture.as_deref(), Some("llama"));
        assert_eq!(summary.context_length, Some(8192));
        assert!(summary.has_chat_template);
        assert_eq!(summary.required_size, bytes.len() as u64);
    }

    #[test]
    fn short_tensor_data_is_truncation() {
        let bytes = gguf(&[("general.architecture", "llama")], 4, 15);
        let (_dir, path) = write(&bytes);
        match inspect(&path) {
            Err(GgufError::Truncated { needed, actual }) => {
                assert_eq!((needed, actual), (actual + 1, actual))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cut_header_is_truncation_and_other_files_are_not_gguf() {
        let bytes = gguf(&[("general.architecture", "llama")], 4, 16);
        for cut in [6, 20, 40, 70] {
            let (_dir, path) = write(&bytes[..cut]);
            assert!(
                matches!(inspect(&path), Err(GgufError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let (_dir, path) = write(b"PK\x03\x04 a zip file");
        assert!(matches!(inspect(&path), Err(GgufError::NotGguf { .. })));
        let mut v1 = bytes.clone();
        v1[4] = 1;
        let (_dir, path) = write(&v1);
        assert_eq!(inspect(&path), Err(GgufError::Version(1)));
    }
}
