//! Fuzz target `config`: see `tidegate::fuzzing::config`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::config(data));
