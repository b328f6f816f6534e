//! Format stage: is the artefact a shared library for this OS and CPU?
//!
//! Read with the `object` crate before anything is handed to `dlopen`, so a
//! text file, a truncated library or one built for another platform gets a
//! diagnosis that says so, instead of a loader message (or a crash).

use std::path::Path;

use object::{Architecture, BinaryFormat, Object, ObjectKind, ObjectSection, ObjectSegment};

use crate::error::FormatError;

/// Checks that `bytes` (read from `path`) are a complete shared library for
/// the host's OS and architecture.
pub(crate) fn check_shared_library(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let file = object::File::parse(bytes).map_err(|e| FormatError::NotAnObject {
        path: path.to_path_buf(),
        reason: describe_unparsable(bytes, &e.to_string()),
    })?;

    let (expected_format, expected_arch) = (host_format(), host_architecture());
    if Some(file.format()) != expected_format || Some(file.architecture()) != expected_arch {
        return Err(FormatError::WrongPlatform {
            path: path.to_path_buf(),
            found_format: format_name(file.format()).to_string(),
            found_arch: format!("{:?}", file.architecture()).to_lowercase(),
            expected_os: std::env::consts::OS,
            expected_arch: std::env::consts::ARCH,
        });
    }
    match file.kind() {
        ObjectKind::Dynamic => {}
        other => {
            return Err(FormatError::NotShared {
                path: path.to_path_buf(),
                found: match other {
                    ObjectKind::Executable => "executable",
                    ObjectKind::Relocatable => "relocatable object (.o)",
                    ObjectKind::Core => "core dump",
                    _ => "file of unknown kind",
                }
                .to_string(),
            })
        }
    }

    // A truncated library often still has an intact header; the loader would
    // then fail with "file too short" or, worse, map garbage. Every segment
    // and section must lie inside the file.
    let len = bytes.len() as u64;
    let past_end = |start: u64, size: u64| start.checked_add(size).is_none_or(|end| end > len);
    for segment in file.segments() {
        let (start, size) = segment.file_range();
        if past_end(start, size) {
            return Err(truncated(path, len, start.saturating_add(size)));
        }
    }
    for section in file.sections() {
        if let Some((start, size)) = section.file_range() {
            if past_end(start, size) {
                return Err(truncated(path, len, start.saturating_add(size)));
            }
        }
    }
    Ok(())
}

fn truncated(path: &Path, len: u64, needed: u64) -> FormatError {
    FormatError::NotAnObject {
        path: path.to_path_buf(),
        reason: format!(
            "the file is truncated: it has {len} bytes, its headers describe data up to byte {needed}"
        ),
    }
}

/// A reason that helps: text files and truncated copies are the common
/// mistakes.
fn describe_unparsable(bytes: &[u8], reader_says: &str) -> String {
    if bytes.is_empty() {
        "the file is empty".to_string()
    } else if let Some(needed) = elf_section_headers_end(bytes).filter(|&end| end > bytes.len() as u64) {
        format!(
            "the file is truncated: it has {} bytes, its ELF header describes data up to byte {needed}",
            bytes.len()
        )
    } else if bytes
        .iter()
        .take(512)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "the file is text, not a compiled library".to_string()
    } else {
        format!("not a recognised object file ({reader_says})")
    }
}

/// Where an ELF file's section header table ends, from its file header
/// (ELF32/ELF64, either byte order); `None` when it is not ELF.
fn elf_section_headers_end(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let little = bytes[5] == 1;
    let read = |at: usize, width: usize| -> u64 {
        let field = &bytes[at..at + width];
        let mut value = 0u64;
        for i in 0..width {
            let byte = if little { field[width - 1 - i] } else { field[i] };
            value = (value << 8) | u64::from(byte);
        }
        value
    };
    let (shoff, shentsize, shnum) = match bytes[4] {
        1 => (read(0x20, 4), read(0x2E, 2), read(0x30, 2)),
        2 => (read(0x28, 8), read(0x3A, 2), read(0x3C, 2)),
        _ => return None,
    };
    shoff.checked_add(shentsize.checked_mul(shnum)?)
}

fn format_name(format: BinaryFormat) -> &'static str {
    match format {
        BinaryFormat::Elf => "ELF",
        BinaryFormat::MachO => "Mach-O",
        BinaryFormat::Pe => "PE",
        BinaryFormat::Coff => "COFF",
        BinaryFormat::Wasm => "WebAssembly",
        BinaryFormat::Xcoff => "XCOFF",
        _ => "unknown-format",
    }
}

fn host_format() -> Option<BinaryFormat> {
    match std::env::consts::OS {
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "solaris" | "illumos" => {
            Some(BinaryFormat::Elf)
        }
        "macos" | "ios" => Some(BinaryFormat::MachO),
        "windows" => Some(BinaryFormat::Pe),
        _ => None,
    }
}

fn host_architecture() -> Option<Architecture> {
    Some(match std::env::consts::ARCH {
        "x86_64" => Architecture::X86_64,
        "x86" => Architecture::I386,
        "aarch64" => Architecture::Aarch64,
        "arm" => Architecture::Arm,
        "riscv64" => Architecture::Riscv64,
        "powerpc64" => Architecture::PowerPc64,
        "s390x" => Architecture::S390x,
        "loongarch64" => Architecture::LoongArch64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8]) -> Result<(), FormatError> {
        check_shared_library(Path::new("lib.so"), bytes)
    }

    #[test]
    fn text_file_is_called_text() {
        let err = check(b"#!/bin/sh\necho hello\n").unwrap_err();
        assert!(matches!(err, FormatError::NotAnObject { .. }));
        assert!(err.to_string().contains("text"), "{err}");
    }

    #[test]
    fn truncated_elf_is_called_truncated() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = check(&exe[..exe.len() / 2]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64", target_endian = "little"))]
    fn segment_ending_past_u64_max_is_called_truncated() {
        // Found by fuzz/run.sh (native_format): a program header whose
        // p_offset + p_filesz overflows made the diagnosis itself panic.
        let mut elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            &elf[..6],
            b"\x7fELF\x02\x01",
            "this test patches an ELF64 little-endian header"
        );
        let field = |at: usize, width: usize| {
            let mut bytes = [0u8; 8];
            bytes[..width].copy_from_slice(&elf[at..at + width]);
            u64::from_le_bytes(bytes) as usize
        };
        let (phoff, phentsize, phnum) = (field(0x20, 8), field(0x36, 2), field(0x38, 2));
        let load = (0..phnum)
            .map(|i| phoff + i * phentsize)
            .find(|&at| field(at, 4) == 1)
            .expect("a PT_LOAD segment");
        elf[0x10..0x12].copy_from_slice(&3u16.to_le_bytes()); // e_type: ET_DYN, a shared object
        elf[load + 8..load + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // p_offset
        elf[load + 32..load + 40].copy_from_slice(&2u64.to_le_bytes()); // p_filesz
        let err = check(&elf).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn empty_file_is_called_empty() {
        assert!(check(b"").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn the_running_test_binary_is_an_executable_not_a_library() {
        // Test binaries are PIE executables on most Linux toolchains, which ELF
        // marks as shared objects; either way this must not be WrongPlatform.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        match check(&exe) {
            Ok(()) | Err(FormatError::NotShared { .. }) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
}
