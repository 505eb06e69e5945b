//! Fuzz target `route`: see `tidegate::fuzzing::route`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::route(data));
