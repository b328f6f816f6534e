//! The committed C header must match what cbindgen generates from the Rust
//! definitions. `AIPLUG_BLESS=1 cargo test -p aiplug-abi --test header`
//! rewrites it after an intended ABI change.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header_path = crate_dir.join("../../include/aiplug.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("crates/aiplug-abi/cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");

    if std::env::var_os("AIPLUG_BLESS").is_some() {
        std::fs::write(&header_path, &generated).expect("write include/aiplug.h");
        return;
    }
    let committed = std::fs::read_to_string(&header_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/aiplug.h is stale: the ABI in crates/aiplug-abi/src/lib.rs changed. \
         Run `AIPLUG_BLESS=1 cargo test -p aiplug-abi --test header` and commit the result."
    );
}
