//! Fuzz target `rewrite`: see `tidegate::fuzzing::rewrite`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::rewrite(data));
