//! Fuzz target `h1_head`: see `tidegate::fuzzing::h1::h1_head`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::h1::h1_head(data));
