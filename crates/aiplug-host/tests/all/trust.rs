//! Signed plugins and the trust store: a signed plugin loads; every kind of
//! tampering, an untrusted signer, a damaged signature and a broken trust
//! store are refused at the integrity stage with a precise diagnosis; hot
//! reload applies the same policy.

use std::path::{Path, PathBuf};

use aiplug_host::trust::{self, TrustPolicy, SIGNATURE_FILE};
use aiplug_host::{CallOptions, Host, HostBuilder, IntegrityError, LoadError, LoadErrorKind, Stage};
use aiplug_testkit as kit;

use crate::tempdir;

const ENTRY: &str = "libsigned.so";

/// A key pair under `dir`: (private key path, key id).
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let made = trust::generate(dir, name).expect("key pair");
    (made.private_path, made.key_id)
}

/// A trust store under `root` holding the public key `name` of `keys`.
fn store(root: &Path, keys: &Path, names: &[&str]) -> PathBuf {
    let store = root.join("trusted");
    std::fs::create_dir_all(&store).unwrap();
    for name in names {
        std::fs::copy(
            keys.join(format!("{name}.pub")),
            store.join(format!("{name}.pub")),
        )
        .unwrap();
    }
    store
}

/// The fixture plugin answering `answer`, staged under `root/signed`,
/// its artefact pinned, signed with `key` when given.
fn plugin(root: &Path, answer: &str, key: Option<&Path>) -> PathBuf {
    let answer = format!("\"{answer}\"");
    let lib = kit::c_plugin(
        "test-plugins/fixture.c",
        &[
            ("FIXTURE_ID", "\"signed\""),
            ("FIXTURE_TASK", "\"signed-task\""),
            ("FIXTURE_ANSWER", answer.as_str()),
        ],
    );
    let sha = trust::sha256_hex(&std::fs::read(&lib).unwrap());
    let manifest = kit::manifest("signed", ENTRY, &format!("sha256 = \"{sha}\"\n"));
    let dir = kit::stage(root, "signed", &manifest, &lib, ENTRY);
    if let Some(key) = key {
        sign(&dir, key);
    }
    dir
}

fn sign(dir: &Path, key: &Path) {
    let key = trust::read_signing_key(key).unwrap();
    let manifest = std::fs::read(dir.join("plugin.toml")).unwrap();
    std::fs::write(dir.join(SIGNATURE_FILE), trust::sign_manifest(&manifest, &key)).unwrap();
}

fn host(store: &Path) -> Host {
    HostBuilder::new()
        .trust(TrustPolicy::RequireSigned {
            keys_dir: store.to_path_buf(),
        })
        .build()
}

/// Loads `dir`, which must be refused at the integrity stage; returns the
/// error and its fix.
fn refused(host: &Host, dir: &Path) -> (LoadError, String) {
    let error = host.load(dir).expect_err("refused");
    assert_eq!(error.stage(), Stage::Integrity, "{error}");
    let fix = error.fix();
    (error, fix)
}

/// The integrity error inside `error`.
fn integrity(error: &LoadError) -> &IntegrityError {
    match error.kind() {
        LoadErrorKind::Integrity(e) => e,
        other => panic!("not an integrity error: {other:?}"),
    }
}

fn answer(host: &Host) -> String {
    let out = host
        .invoke("signed-task", b"x", &CallOptions::new())
        .expect("the plugin answers");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_plugin_signed_by_a_trusted_key_loads_and_the_doctor_names_the_key() {
    let root = tempdir();
    let (key, id) = keypair(&root.path().join("keys"), "alice");
    let store = store(root.path(), &root.path().join("keys"), &["alice"]);
    let dir = plugin(root.path(), "A", Some(&key));
    let host = host(&store);
    host.load(&dir).expect("a signed plugin loads");
    assert_eq!(answer(&host), "A:x");

    let report = host.doctor(&dir, &Default::default());
    let integrity = report
        .rows
        .iter()
        .find(|r| r.stage == Stage::Integrity)
        .expect("an integrity row");
    match &integrity.outcome {
        aiplug_host::StageOutcome::Passed(detail) => {
            assert!(detail.contains(&format!("signed by key {id}")), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        trust::verify(&dir, &store).map(|d| d.contains(&id)).ok(),
        Some(true)
    );
}

#[test]
fn an_unsigned_plugin_is_refused_unless_unsigned_plugins_are_allowed() {
    let root = tempdir();
    let (_, _) = keypair(&root.path().join("keys"), "alice");
    let store = store(root.path(), &root.path().join("keys"), &["alice"]);
    let dir = plugin(root.path(), "A", None);
    let (error, fix) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::Unsigned { signature } if signature.ends_with(SIGNATURE_FILE))
    );
    assert!(
        fix.contains("aiplug plugins sign") && fix.contains("--allow-unsigned"),
        "{fix}"
    );

    let dev = HostBuilder::new().trust(TrustPolicy::AllowUnsigned).build();
    dev.load(&dir).expect("development mode loads it");
    assert_eq!(answer(&dev), "A:x");
}

#[test]
fn a_manifest_changed_after_signing_is_refused() {
    let root = tempdir();
    let (key, id) = keypair(&root.path().join("keys"), "alice");
    let store = store(root.path(), &root.path().join("keys"), &["alice"]);
    let dir = plugin(root.path(), "A", Some(&key));
    // One byte more: a raised priority sneaks the plugin ahead of others.
    let mut manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    manifest.push_str("priority = 1000\n");
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    let (error, fix) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::BadSignature { key_id, .. } if *key_id == id),
        "{error}"
    );
    assert!(
        error.to_string().contains("changed after it was signed"),
        "{error}"
    );
    assert!(fix.contains("do not load it"), "{fix}");
}

#[test]
fn an_artefact_changed_after_signing_is_refused() {
    let root = tempdir();
    let (key, _) = keypair(&root.path().join("keys"), "alice");
    let store = store(root.path(), &root.path().join("keys"), &["alice"]);
    let dir = plugin(root.path(), "A", Some(&key));
    let other = kit::c_plugin(
        "test-plugins/fixture.c",
        &[
            ("FIXTURE_ID", "\"signed\""),
            ("FIXTURE_TASK", "\"signed-task\""),
            ("FIXTURE_ANSWER", "\"EVIL\""),
        ],
    );
    std::fs::copy(other, dir.join(ENTRY)).unwrap();
    let (error, fix) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::Sha256Mismatch { .. }),
        "{error}"
    );
    assert!(fix.contains("sign it again"), "{fix}");
    assert!(trust::verify(&dir, &store).is_err());
}

#[test]
fn a_signature_by_an_untrusted_key_names_the_key_and_the_store() {
    let root = tempdir();
    let keys = root.path().join("keys");
    let (_, _) = keypair(&keys, "alice");
    let (mallory, mallory_id) = keypair(&keys, "mallory");
    let store = store(root.path(), &keys, &["alice"]);
    let dir = plugin(root.path(), "A", Some(&mallory));
    let (error, fix) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::UntrustedKey { key_id, keys_dir } if *key_id == mallory_id && *keys_dir == store),
        "{error}"
    );
    assert!(error.to_string().contains(&mallory_id), "{error}");
    assert!(fix.contains(&store.display().to_string()), "{fix}");
}

#[test]
fn a_signature_that_claims_a_trusted_key_but_was_made_by_another_is_refused() {
    // Mallory copies Alice's key id into her signature file.
    let root = tempdir();
    let keys = root.path().join("keys");
    let (_, alice_id) = keypair(&keys, "alice");
    let (mallory, mallory_id) = keypair(&keys, "mallory");
    let store = store(root.path(), &keys, &["alice"]);
    let dir = plugin(root.path(), "A", Some(&mallory));
    let forged = std::fs::read_to_string(dir.join(SIGNATURE_FILE))
        .unwrap()
        .replace(&mallory_id, &alice_id);
    std::fs::write(dir.join(SIGNATURE_FILE), forged).unwrap();
    let (error, _) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::BadSignature { key_id, .. } if *key_id == alice_id),
        "{error}"
    );
}

#[test]
fn a_truncated_or_garbage_signature_file_is_refused_saying_why() {
    let root = tempdir();
    let (key, _) = keypair(&root.path().join("keys"), "alice");
    let store = store(root.path(), &root.path().join("keys"), &["alice"]);
    let dir = plugin(root.path(), "A", Some(&key));
    let good = std::fs::read(dir.join(SIGNATURE_FILE)).unwrap();
    let host = host(&store);
    for (label, bytes) in [
        ("truncated", good[..good.len() - 30].to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"\x00\xff\x13 not a signature \x7f".to_vec()),
        (
            "short signature",
            b"key_id = \"0123456789abcdef\"\nsignature = \"AAAA\"\n".to_vec(),
        ),
    ] {
        std::fs::write(dir.join(SIGNATURE_FILE), &bytes).unwrap();
        let (error, fix) = refused(&host, &dir);
        assert!(
            matches!(integrity(&error), IntegrityError::SignatureUnreadable { .. }),
            "{label}: {error}"
        );
        assert!(fix.contains("sign the plugin again"), "{label}: {fix}");
    }
}

#[test]
fn a_missing_or_unreadable_trust_store_is_named() {
    let root = tempdir();
    let keys = root.path().join("keys");
    let (key, _) = keypair(&keys, "alice");
    let dir = plugin(root.path(), "A", Some(&key));

    let missing = root.path().join("no-such-store");
    let (error, fix) = refused(&host(&missing), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::TrustStore { dir, reason } if *dir == missing && reason.contains("does not exist")),
        "{error}"
    );
    assert!(fix.contains(&format!("create {}", missing.display())), "{fix}");

    // A file where the directory should be.
    let file = root.path().join("store-file");
    std::fs::write(&file, "not a directory").unwrap();
    let (error, _) = refused(&host(&file), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::TrustStore { reason, .. } if reason.contains("cannot be read")),
        "{error}"
    );

    // A store holding something that is not a public key.
    let store = store(root.path(), &keys, &["alice"]);
    std::fs::write(store.join("broken.pub"), "-----BEGIN PUBLIC KEY-----\ngarbage\n").unwrap();
    let (error, _) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::TrustStore { reason, .. } if reason.contains("broken.pub")),
        "{error}"
    );
}

#[test]
fn a_signed_manifest_must_pin_its_artefact() {
    let root = tempdir();
    let (key, _) = keypair(&root.path().join("keys"), "alice");
    let store = store(root.path(), &root.path().join("keys"), &["alice"]);
    let lib = kit::c_plugin("test-plugins/fixture.c", &[("FIXTURE_ID", "\"signed\"")]);
    let dir = kit::stage(
        root.path(),
        "signed",
        &kit::manifest("signed", ENTRY, ""),
        &lib,
        ENTRY,
    );
    sign(&dir, &key);
    let (error, fix) = refused(&host(&store), &dir);
    assert!(
        matches!(integrity(&error), IntegrityError::NotPinned { .. }),
        "{error}"
    );
    assert!(fix.contains("--pin"), "{fix}");
}

#[test]
fn hot_reload_loads_a_re_signed_version_and_refuses_a_tampered_one() {
    let root = tempdir();
    let keys = root.path().join("keys");
    let (key, _) = keypair(&keys, "alice");
    let store = store(root.path(), &keys, &["alice"]);
    let plugins = root.path().join("plugins");
    let dir = plugin(&plugins, "A", Some(&key));
    let host = host(&store);
    host.load(&dir).expect("v1 loads");
    assert_eq!(answer(&host), "A:x");

    // A new build, pinned and signed: it replaces the old one.
    let staging = root.path().join("staging");
    let v2 = plugin(&staging, "B", Some(&key));
    for file in [ENTRY, "plugin.toml", SIGNATURE_FILE] {
        std::fs::copy(v2.join(file), dir.join(file)).unwrap();
    }
    host.reload("signed").expect("the re-signed version loads");
    assert_eq!(answer(&host), "B:x");

    // The artefact swapped for another, signature untouched: refused, and
    // the signed version keeps serving.
    let v3 = plugin(&root.path().join("evil"), "EVIL", None);
    std::fs::copy(v3.join(ENTRY), dir.join(ENTRY)).unwrap();
    let error = host.reload("signed").expect_err("a tampered artefact is refused");
    assert!(error.to_string().contains("sha256"), "{error}");
    assert_eq!(answer(&host), "B:x");
    // The manifest re-pinned to the new artefact but not re-signed: refused.
    std::fs::copy(v3.join("plugin.toml"), dir.join("plugin.toml")).unwrap();
    let error = host
        .reload("signed")
        .expect_err("a re-pinned, unsigned manifest is refused");
    assert!(
        error.to_string().contains("changed after it was signed"),
        "{error}"
    );
    assert_eq!(answer(&host), "B:x");
    let info = host.plugins().into_iter().find(|p| p.id == "signed").unwrap();
    assert!(
        info.diagnosis
            .as_deref()
            .is_some_and(|d| d.contains("integrity stage")),
        "{info:?}"
    );
}
