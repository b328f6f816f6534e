//! The native format stage on arbitrary bytes: a broken or hostile shared
//! object must be refused with an error before it reaches `dlopen`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| aiplug_host::fuzzing::native_format(bytes));
