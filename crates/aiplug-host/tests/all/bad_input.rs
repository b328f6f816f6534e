//! Every class of bad plugin gets a precise diagnosis naming its stage, and
//! the host keeps serving the plugins it already has.

use std::path::Path;

use aiplug_host::{
    AbiError, CallError, CallOptions, FormatError, Host, IdentityError, InitError, IntegrityError, LoadError,
    LoadErrorKind, PluginState, Stage, SymbolsError,
};
use aiplug_testkit as kit;

use crate::{behaviour, fixture, host, tempdir};

/// Loads a healthy plugin first, runs `bad` against the host, then checks
/// the healthy plugin still answers.
fn refused(bad: impl FnOnce(&Host, &Path) -> LoadError) -> LoadError {
    let dir = tempdir();
    let host = host();
    let good = fixture(dir.path(), "healthy", &[("FIXTURE_TASK", "\"ping\"")], "");
    host.load(&good).expect("healthy plugin loads");
    let error = bad(&host, dir.path());
    let out = host
        .invoke("ping", b"still here", &CallOptions::new())
        .expect("host keeps serving");
    assert_eq!(&*out, b"healthy:still here");
    assert!(
        host.plugins()
            .iter()
            .any(|p| p.state == PluginState::Failed && p.diagnosis.is_some()),
        "the failure is kept for `plugins list`"
    );
    error
}

fn stage_bytes(parent: &Path, id: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = parent.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), kit::manifest(id, "libbad.so", "")).unwrap();
    std::fs::write(dir.join("libbad.so"), bytes).unwrap();
    dir
}

#[test]
fn text_file_is_not_a_shared_object() {
    let error = refused(|host, parent| {
        host.load(&stage_bytes(
            parent,
            "text",
            b"#!/bin/sh\necho I am a shell script\n",
        ))
        .unwrap_err()
    });
    assert_eq!(error.stage(), Stage::Format);
    assert!(matches!(
        error.kind(),
        LoadErrorKind::Format(FormatError::NotAnObject { .. })
    ));
    assert!(error.to_string().contains("text"), "{error}");
    assert!(error.fix().contains("shared library"), "{}", error.fix());
}

#[test]
fn truncated_library_is_caught_before_dlopen() {
    let real = std::fs::read(kit::cargo_plugin("test-behaviour")).unwrap();
    let error = refused(|host, parent| {
        host.load(&stage_bytes(parent, "cut", &real[..real.len() / 3]))
            .unwrap_err()
    });
    assert_eq!(error.stage(), Stage::Format, "{error}");
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn library_for_another_architecture_is_named() {
    let mut bytes = std::fs::read(kit::cargo_plugin("test-behaviour")).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "this test crafts an ELF header");
    // e_machine at offset 18 (little-endian): claim the other common CPU.
    let (other, name) = if cfg!(target_arch = "aarch64") {
        (62u16, "x86_64")
    } else {
        (183u16, "aarch64")
    };
    bytes[18..20].copy_from_slice(&other.to_le_bytes());
    let error = refused(|host, parent| host.load(&stage_bytes(parent, "arm", &bytes)).unwrap_err());
    assert!(
        matches!(
            error.kind(),
            LoadErrorKind::Format(FormatError::WrongPlatform { .. })
        ),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(name) && text.contains(std::env::consts::ARCH),
        "{text}"
    );
    assert!(error.fix().contains("rebuild"), "{}", error.fix());
}

#[test]
fn library_without_entry_symbol() {
    let error = refused(|host, parent| {
        host.load(&fixture(parent, "noentry", &[("FIXTURE_NO_ENTRY", "1")], ""))
            .unwrap_err()
    });
    assert!(
        matches!(
            error.kind(),
            LoadErrorKind::Symbols(SymbolsError::MissingEntry { .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("aiplug_plugin_entry"));
    assert!(error.fix().contains("export_plugin!"));
}

#[test]
fn abi_major_mismatch() {
    let error = refused(|host, parent| {
        host.load(&fixture(parent, "abi2", &[("FIXTURE_ABI_MAJOR", "2")], ""))
            .unwrap_err()
    });
    assert!(
        matches!(
            error.kind(),
            LoadErrorKind::Abi(AbiError::MajorMismatch {
                found: 2,
                supported: 1
            })
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("ABI major 2 is not supported by this host (supports 1)"),
        "{error}"
    );
}

#[test]
fn vtable_too_small() {
    let error = refused(|host, parent| {
        host.load(&fixture(parent, "tiny", &[("FIXTURE_VTABLE_SIZE", "16")], ""))
            .unwrap_err()
    });
    assert!(
        matches!(
            error.kind(),
            LoadErrorKind::Abi(AbiError::VtableTooSmall { size: 16, .. })
        ),
        "{error}"
    );
}

#[test]
fn null_vtable() {
    let error = refused(|host, parent| {
        host.load(&fixture(parent, "null", &[("FIXTURE_NULL_VTABLE", "1")], ""))
            .unwrap_err()
    });
    assert!(
        matches!(error.kind(), LoadErrorKind::Abi(AbiError::NullVtable)),
        "{error}"
    );
}

#[test]
fn manifest_declaring_a_hook_the_library_lacks() {
    let error = refused(|host, parent| {
        host.load(&fixture(parent, "liar", &[], "hooks = [\"on_response\"]\n"))
            .unwrap_err()
    });
    assert!(
        matches!(
            error.kind(),
            LoadErrorKind::Abi(AbiError::MissingHook { hook: "on_response" })
        ),
        "{error}"
    );
}

#[test]
fn duplicate_id_is_refused_never_double_registered() {
    let dir = tempdir();
    let host = host();
    let first = fixture(dir.path(), "twin", &[("FIXTURE_TASK", "\"t\"")], "");
    host.load(&first).unwrap();

    // The same files twice: the same version, so nothing happens (on_load
    // runs once per version).
    let again = host.load(&first).unwrap();
    assert_eq!(again.id, "twin");
    // The same directory with other files is another version of an active
    // plugin: a load refuses it (reload is the way to replace it).
    let manifest = first.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n# changed\n")).unwrap();
    let error = host.load(&first).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            LoadErrorKind::Identity(IdentityError::DuplicateId { .. })
        ),
        "{error}"
    );
    // A copy in another directory.
    let other = dir.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    let copy = fixture(&other, "twin", &[("FIXTURE_TASK", "\"t\"")], "");
    let error = host.load(&copy).unwrap_err();
    assert!(error.to_string().contains("already registered"), "{error}");

    let active: Vec<_> = host
        .plugins()
        .into_iter()
        .filter(|p| p.state == PluginState::Active)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(&*host.invoke("t", b"x", &CallOptions::new()).unwrap(), b"twin:x");
}

#[test]
fn manifest_missing_or_mistyped_field_is_named() {
    let error = refused(|host, parent| {
        let dir = parent.join("nofield");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("plugin.toml"),
            "id = \"nofield\"\nversion = \"0.1.0\"\nkind = \"native\"\n",
        )
        .unwrap();
        host.load(&dir).unwrap_err()
    });
    assert_eq!(error.stage(), Stage::Manifest);
    assert!(error.to_string().contains("entry"), "{error}");

    let error = refused(|host, parent| {
        let dir = parent.join("typo");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("plugin.toml"),
            kit::manifest("typo", "libx.so", "[limits]\nmax_concurency = 4\n"),
        )
        .unwrap();
        host.load(&dir).unwrap_err()
    });
    assert!(error.to_string().contains("max_concurency"), "{error}");

    let error = refused(|host, parent| {
        let dir = parent.join("range");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("plugin.toml"),
            kit::manifest("range", "libx.so", "[limits]\ntimeout_ms = 0\n"),
        )
        .unwrap();
        host.load(&dir).unwrap_err()
    });
    assert!(error.to_string().contains("limits.timeout_ms"), "{error}");
}

#[test]
fn sha256_mismatch_names_both_hashes_and_the_pin_to_set() {
    let zeros = "0".repeat(64);
    let error = refused(|host, parent| {
        host.load(&fixture(
            parent,
            "pinned",
            &[],
            &format!("sha256 = \"{zeros}\"\n"),
        ))
        .unwrap_err()
    });
    let LoadErrorKind::Integrity(IntegrityError::Sha256Mismatch { expected, actual, .. }) = error.kind()
    else {
        panic!("expected a sha256 mismatch, got {error}");
    };
    assert_eq!(expected, &zeros);
    assert_eq!(actual.len(), 64);
    assert!(error.fix().contains(actual.as_str()));

    // The right pin loads.
    let dir = tempdir();
    let host = host();
    let ok = fixture(dir.path(), "pinned-ok", &[], "");
    let sha = {
        let report = host.doctor(&ok, &Default::default());
        report.sha256.expect("doctor reports the hash")
    };
    std::fs::write(
        ok.join("plugin.toml"),
        kit::manifest("pinned-ok", "libfixture.so", &format!("sha256 = \"{sha}\"\n")),
    )
    .unwrap();
    host.load(&ok).expect("correctly pinned plugin loads");
}

#[test]
fn on_load_returning_an_error() {
    let error = refused(|host, parent| {
        host.load(&behaviour(parent, "fails", "mode = \"fail-load\""))
            .unwrap_err()
    });
    assert!(
        matches!(error.kind(), LoadErrorKind::Init(InitError::Failed { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("configured to fail"), "{error}");

    let error = refused(|host, parent| {
        host.load(&fixture(parent, "cfail", &[("FIXTURE_FAIL_LOAD", "1")], ""))
            .unwrap_err()
    });
    assert!(error.to_string().contains("fixture refuses to load"), "{error}");
}

#[test]
fn on_load_that_hangs_times_out() {
    let error = refused(|host, parent| {
        host.load(&behaviour(
            parent,
            "hangs",
            "mode = \"hang-load\"\nsleep_ms = 30000",
        ))
        .unwrap_err()
    });
    assert!(
        matches!(error.kind(), LoadErrorKind::Init(InitError::TimedOut { .. })),
        "{error}"
    );
}

#[test]
fn plugin_that_panics_in_every_hook() {
    let error = refused(|host, parent| {
        host.load(&behaviour(parent, "panics-early", "mode = \"panic-load\""))
            .unwrap_err()
    });
    assert!(
        matches!(error.kind(), LoadErrorKind::Init(InitError::Panicked { .. })),
        "{error}"
    );
    assert!(
        error.to_string().contains("configured to panic in on_load"),
        "{error}"
    );

    let dir = tempdir();
    let host = host();
    let good = fixture(dir.path(), "healthy", &[("FIXTURE_TASK", "\"ping\"")], "");
    host.load(&good).unwrap();
    host.load(&behaviour(dir.path(), "panics", "mode = \"panic\""))
        .expect("loads; panics later");
    let options = CallOptions::new().session("s1");

    for _ in 0..3 {
        let error = host.invoke("echo", b"x", &options).unwrap_err();
        assert!(
            matches!(error, CallError::Panicked { hook: "invoke", .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("configured to panic in invoke"),
            "{error}"
        );
    }
    let error = host.filter_request(br#"{"messages":[]}"#, &options).unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Panicked {
                hook: "on_request",
                ..
            }
        ),
        "{error}"
    );
    let error = host
        .filter_response(b"{}", br#"{"choices":[]}"#, &options)
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Panicked {
                hook: "on_response",
                ..
            }
        ),
        "{error}"
    );
    let error = host.unload("test-behaviour").unwrap_err();
    assert!(
        error.to_string().contains("configured to panic in on_unload"),
        "{error}"
    );

    assert_eq!(&*host.invoke("ping", b"ok", &options).unwrap(), b"healthy:ok");
}
