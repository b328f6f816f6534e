//! The wasm format and symbols stages on arbitrary bytes: validation, compile,
//! world version and imports of a component; errors only, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| aiplug_host::fuzzing::wasm_validation(bytes));
