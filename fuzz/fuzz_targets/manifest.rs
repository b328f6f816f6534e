//! The manifest stage on arbitrary bytes: a `plugin.toml` must be refused
//! with an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| aiplug_host::fuzzing::manifest(bytes));
