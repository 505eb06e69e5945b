//! Fuzz target `guard`: see `tidegate::fuzzing::guard`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::guard(data));
