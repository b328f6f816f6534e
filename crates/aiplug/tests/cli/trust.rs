//! Signing from the command line: `aiplug keys generate`, `aiplug plugins
//! sign` / `verify`, and a host that requires signatures (no
//! `AIPLUG_ALLOW_UNSIGNED`) loading what was signed and refusing tampering.

use std::path::Path;

use crate::{aiplug_env, behaviour, tempdir, Run};

/// Runs `aiplug` with `home` as `AIPLUG_HOME` and signatures required.
fn strict(cwd: &Path, home: &Path, args: &[&str]) -> Run {
    aiplug_env(
        cwd,
        args,
        b"",
        &[
            ("AIPLUG_HOME", Some(home.to_str().unwrap())),
            ("AIPLUG_ALLOW_UNSIGNED", None),
        ],
    )
}

#[test]
fn generate_sign_verify_load_and_refuse_tampering() {
    let work = tempdir();
    let home = tempdir();
    let cwd = work.path();
    let plugins = cwd.join("plugins");
    let plugin = behaviour(&plugins, "behaviour", "");
    let plugin_arg = plugin.to_str().unwrap();

    // Unsigned: refused, and the message says what to do.
    let run = strict(cwd, home.path(), &["run", "word-count", "--text", "a b c"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("not signed") && run.stderr.contains("aiplug plugins sign"),
        "{}",
        run.stderr
    );

    let run = strict(cwd, home.path(), &["keys", "generate", "ci", "--trust"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let key = home.path().join("keys/ci.key");
    assert!(home.path().join("trusted-keys/ci.pub").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let key_id = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id "))
        .expect("the key id is printed")
        .to_string();

    // The manifest pins nothing yet: signing says so, --pin fixes it.
    let run = strict(
        cwd,
        home.path(),
        &["plugins", "sign", plugin_arg, "--key", key.to_str().unwrap()],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--pin"), "{}", run.stderr);
    let run = strict(
        cwd,
        home.path(),
        &[
            "plugins",
            "sign",
            plugin_arg,
            "--key",
            key.to_str().unwrap(),
            "--pin",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(std::fs::read_to_string(plugin.join("plugin.toml"))
        .unwrap()
        .contains("sha256 = \""));

    let run = strict(cwd, home.path(), &["plugins", "verify", plugin_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("signed by key {key_id}")),
        "{}",
        run.stdout
    );
    let run = strict(cwd, home.path(), &["run", "word-count", "--text", "a b c"]);
    assert_eq!((run.code, run.stdout.trim()), (0, "3"), "{}", run.stderr);
    let run = strict(cwd, home.path(), &["doctor", plugin_arg]);
    assert!(
        !run.stdout.contains("sha256 to pin"),
        "already pinned: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("integrity") && l.contains("ok") && l.contains(&key_id)),
        "{}",
        run.stdout
    );

    // Tampered: the artefact grows a byte.
    let entry = plugin.join("libtest_behaviour.so");
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes.push(0);
    std::fs::write(&entry, bytes).unwrap();
    let run = strict(cwd, home.path(), &["plugins", "verify", plugin_arg]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("integrity stage") && run.stderr.contains("sha256"),
        "{}",
        run.stderr
    );
    let run = strict(cwd, home.path(), &["run", "word-count", "--text", "a b c"]);
    assert_ne!(run.code, 0);
    let run = strict(cwd, home.path(), &["doctor", plugin_arg]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("integrity") && l.contains("FAILED")),
        "{}",
        run.stdout
    );

    // Re-pinning by hand is a manifest change the signature catches.
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    let unpinned: String = manifest
        .lines()
        .filter(|l| !l.starts_with("sha256"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(plugin.join("plugin.toml"), unpinned).unwrap();
    let run = strict(cwd, home.path(), &["plugins", "verify", plugin_arg]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("changed after it was signed"),
        "{}",
        run.stderr
    );

    // Development mode loads it anyway (no pin, no signature checked), and says so.
    let run = strict(
        cwd,
        home.path(),
        &["--allow-unsigned", "run", "word-count", "--text", "a b c"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("DEVELOPMENT MODE"), "{}", run.stderr);
}

#[test]
fn a_private_key_others_can_read_is_refused() {
    let work = tempdir();
    let home = tempdir();
    let plugin = behaviour(work.path(), "behaviour", "");
    let run = strict(work.path(), home.path(), &["keys", "generate", "loose"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let key = home.path().join("keys/loose.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let run = strict(
            work.path(),
            home.path(),
            &[
                "plugins",
                "sign",
                plugin.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                "--pin",
            ],
        );
        assert_ne!(run.code, 0);
        assert!(
            run.stderr.contains("readable by others") && run.stderr.contains("chmod 600"),
            "{}",
            run.stderr
        );
        assert!(!plugin.join("plugin.toml.sig").exists());
    }
    // A second key of the same name is not written over the first.
    let run = strict(work.path(), home.path(), &["keys", "generate", "loose"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
}
